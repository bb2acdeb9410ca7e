//! Raw btrfs ioctl declarations (linux/btrfs.h, linux/btrfs_tree.h) and thin
//! wrappers that are safe because every argument is a fully initialised,
//! correctly sized `#[repr(C)]` struct borrowed for the duration of the call.
//! This is the only module of the crate that contains `unsafe` (allowed by the
//! `#[allow(unsafe_code)]` on its declaration in `btrfs/mod.rs`).

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;

/// `BTRFS_VOL_NAME_MAX`: longest subvolume name.
pub const VOL_NAME_MAX: usize = 255;
/// `BTRFS_PATH_NAME_MAX`.
const PATH_NAME_MAX: usize = 4087;
/// `BTRFS_SUBVOL_NAME_MAX`.
const SUBVOL_NAME_MAX: usize = 4039;
/// `BTRFS_UUID_SIZE`.
pub const UUID_SIZE: usize = 16;
/// `BTRFS_SEARCH_ARGS_BUFSIZE` = 4096 - sizeof(struct btrfs_ioctl_search_key).
pub const SEARCH_BUF_SIZE: usize = 4096 - std::mem::size_of::<SearchKey>();

/// `BTRFS_SUBVOL_RDONLY`: flag of SNAP_CREATE_V2 and SUBVOL_{GET,SET}FLAGS.
pub const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_ROOT_SUBVOL_RDONLY`: read-only bit of the root item flags that
/// GET_SUBVOL_INFO reports.
pub const ROOT_SUBVOL_RDONLY: u64 = 1 << 0;

/// `BTRFS_ROOT_TREE_OBJECTID`: the tree of tree roots.
pub const ROOT_TREE_OBJECTID: u64 = 1;
/// `BTRFS_FS_TREE_OBJECTID`: the top-level subvolume.
pub const FS_TREE_OBJECTID: u64 = 5;
/// `BTRFS_ROOT_TREE_DIR_OBJECTID`: directory in the root tree holding "default".
pub const ROOT_TREE_DIR_OBJECTID: u64 = 6;
/// `BTRFS_DIR_ITEM_KEY`.
pub const DIR_ITEM_KEY: u32 = 84;
/// `BTRFS_ROOT_ITEM_KEY`: a subvolume's root item, keyed by its id.
pub const ROOT_ITEM_KEY: u32 = 132;
/// `BTRFS_ROOT_REF_KEY`: (parent id, ROOT_REF, child id), with the directory
/// and name under which the child is linked in the parent.
pub const ROOT_REF_KEY: u32 = 156;
/// Offset of `flags` (u64, little endian) in `struct btrfs_root_item`, after
/// the 160-byte inode item and six u64 fields.
pub const ROOT_ITEM_FLAGS_OFFSET: usize = 208;
/// `struct btrfs_root_ref` (packed, 18 bytes, little endian): dirid u64,
/// sequence u64, name_len u16, then the name.
pub const ROOT_REF_SIZE: usize = 18;
/// `BTRFS_FIRST_FREE_OBJECTID`: inode number of every subvolume's root directory.
pub const FIRST_FREE_OBJECTID: u64 = 256;

/// `struct btrfs_ioctl_search_header` (32 bytes, native endian).
pub const SEARCH_HEADER_SIZE: usize = 32;
/// `struct btrfs_dir_item` (packed, 30 bytes, little endian).
pub const DIR_ITEM_SIZE: usize = 30;

/// `struct btrfs_ioctl_vol_args` (4096 bytes).
#[repr(C)]
pub struct VolArgs {
    pub fd: i64,
    pub name: [u8; PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (4096 bytes). The first union is kept as
/// `unused[4]` (the qgroup-inherit pointer is never used here); the second as
/// the `name` member, whose first 8 bytes alias `devid`/`subvolid`.
#[repr(C)]
pub struct VolArgsV2 {
    pub fd: i64,
    pub transid: u64,
    pub flags: u64,
    pub unused: [u64; 4],
    pub name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_timespec` (16 bytes with tail padding).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Timespec {
    pub sec: u64,
    pub nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args` (504 bytes).
#[repr(C)]
pub struct GetSubvolInfoArgs {
    pub treeid: u64,
    pub name: [u8; VOL_NAME_MAX + 1],
    pub parent_id: u64,
    pub dirid: u64,
    pub generation: u64,
    pub flags: u64,
    pub uuid: [u8; UUID_SIZE],
    pub parent_uuid: [u8; UUID_SIZE],
    pub received_uuid: [u8; UUID_SIZE],
    pub ctransid: u64,
    pub otransid: u64,
    pub stransid: u64,
    pub rtransid: u64,
    pub ctime: Timespec,
    pub otime: Timespec,
    pub stime: Timespec,
    pub rtime: Timespec,
    pub reserved: [u64; 8],
}

/// `struct btrfs_ioctl_search_key` (104 bytes).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SearchKey {
    pub tree_id: u64,
    pub min_objectid: u64,
    pub max_objectid: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    pub min_transid: u64,
    pub max_transid: u64,
    pub min_type: u32,
    pub max_type: u32,
    pub nr_items: u32,
    pub unused: u32,
    pub unused1: u64,
    pub unused2: u64,
    pub unused3: u64,
    pub unused4: u64,
}

/// `struct btrfs_ioctl_search_args` (4096 bytes).
#[repr(C)]
pub struct SearchArgs {
    pub key: SearchKey,
    pub buf: [u8; SEARCH_BUF_SIZE],
}

impl VolArgs {
    pub fn new(name: &[u8]) -> Self {
        let mut a = VolArgs {
            fd: 0,
            name: [0; PATH_NAME_MAX + 1],
        };
        // Callers validate the length; never overwrite the terminating NUL.
        let n = name.len().min(PATH_NAME_MAX);
        a.name[..n].copy_from_slice(&name[..n]);
        a
    }
}

impl VolArgsV2 {
    pub fn new(fd: i64, flags: u64, name: &[u8]) -> Self {
        let mut a = VolArgsV2 {
            fd,
            transid: 0,
            flags,
            unused: [0; 4],
            name: [0; SUBVOL_NAME_MAX + 1],
        };
        let n = name.len().min(SUBVOL_NAME_MAX);
        a.name[..n].copy_from_slice(&name[..n]);
        a
    }
}

impl GetSubvolInfoArgs {
    pub fn zeroed() -> Self {
        GetSubvolInfoArgs {
            treeid: 0,
            name: [0; VOL_NAME_MAX + 1],
            parent_id: 0,
            dirid: 0,
            generation: 0,
            flags: 0,
            uuid: [0; UUID_SIZE],
            parent_uuid: [0; UUID_SIZE],
            received_uuid: [0; UUID_SIZE],
            ctransid: 0,
            otransid: 0,
            stransid: 0,
            rtransid: 0,
            ctime: Timespec::default(),
            otime: Timespec::default(),
            stime: Timespec::default(),
            rtime: Timespec::default(),
            reserved: [0; 8],
        }
    }
}

impl SearchArgs {
    pub fn new(key: SearchKey) -> Self {
        SearchArgs {
            key,
            buf: [0; SEARCH_BUF_SIZE],
        }
    }
}

mod raw {
    use super::*;
    nix::ioctl_none!(sync, MAGIC, 8);
    nix::ioctl_write_ptr!(snap_destroy, MAGIC, 15, VolArgs);
    nix::ioctl_readwrite!(tree_search, MAGIC, 17, SearchArgs);
    nix::ioctl_write_ptr!(default_subvol, MAGIC, 19, u64);
    nix::ioctl_write_ptr!(snap_create_v2, MAGIC, 23, VolArgsV2);
    nix::ioctl_read!(subvol_getflags, MAGIC, 25, u64);
    nix::ioctl_write_ptr!(subvol_setflags, MAGIC, 26, u64);
    nix::ioctl_read!(get_subvol_info, MAGIC, 60, GetSubvolInfoArgs);
    nix::ioctl_write_ptr!(snap_destroy_v2, MAGIC, 63, VolArgsV2);
}

// SAFETY (all below): `fd` is a live borrowed descriptor and each pointer comes
// from a reference to a properly sized, initialised #[repr(C)] value that
// outlives the call; the kernel reads/writes at most size_of::<T>() bytes.

/// BTRFS_IOC_SYNC on the filesystem of `fd`.
pub fn sync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    unsafe { raw::sync(fd.as_raw_fd()) }.map(drop)
}

/// BTRFS_IOC_SNAP_DESTROY: `fd` is the parent directory, `args.name` the entry.
pub fn snap_destroy(fd: BorrowedFd<'_>, args: &VolArgs) -> Result<(), Errno> {
    unsafe { raw::snap_destroy(fd.as_raw_fd(), args) }.map(drop)
}

/// BTRFS_IOC_SNAP_DESTROY_V2: `fd` is the parent directory, `args.name` the entry.
pub fn snap_destroy_v2(fd: BorrowedFd<'_>, args: &VolArgsV2) -> Result<(), Errno> {
    unsafe { raw::snap_destroy_v2(fd.as_raw_fd(), args) }.map(drop)
}

/// BTRFS_IOC_TREE_SEARCH (needs CAP_SYS_ADMIN).
pub fn tree_search(fd: BorrowedFd<'_>, args: &mut SearchArgs) -> Result<(), Errno> {
    unsafe { raw::tree_search(fd.as_raw_fd(), args) }.map(drop)
}

/// BTRFS_IOC_DEFAULT_SUBVOL.
pub fn default_subvol(fd: BorrowedFd<'_>, id: u64) -> Result<(), Errno> {
    unsafe { raw::default_subvol(fd.as_raw_fd(), &id) }.map(drop)
}

/// BTRFS_IOC_SNAP_CREATE_V2: `fd` is the destination directory, `args.fd` the source.
pub fn snap_create_v2(fd: BorrowedFd<'_>, args: &VolArgsV2) -> Result<(), Errno> {
    unsafe { raw::snap_create_v2(fd.as_raw_fd(), args) }.map(drop)
}

/// BTRFS_IOC_SUBVOL_GETFLAGS.
pub fn subvol_getflags(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let mut flags = 0u64;
    unsafe { raw::subvol_getflags(fd.as_raw_fd(), &mut flags) }?;
    Ok(flags)
}

/// BTRFS_IOC_SUBVOL_SETFLAGS.
pub fn subvol_setflags(fd: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    unsafe { raw::subvol_setflags(fd.as_raw_fd(), &flags) }.map(drop)
}

/// BTRFS_IOC_GET_SUBVOL_INFO of the subvolume containing `fd`.
pub fn get_subvol_info(fd: BorrowedFd<'_>) -> Result<GetSubvolInfoArgs, Errno> {
    let mut args = GetSubvolInfoArgs::zeroed();
    unsafe { raw::get_subvol_info(fd.as_raw_fd(), &mut args) }?;
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(size_of::<VolArgs>(), 4096);
        assert_eq!(size_of::<VolArgsV2>(), 4096);
        assert_eq!(offset_of!(VolArgsV2, name), 56);
        assert_eq!(size_of::<Timespec>(), 16);
        assert_eq!(size_of::<GetSubvolInfoArgs>(), 504);
        assert_eq!(offset_of!(GetSubvolInfoArgs, parent_id), 264);
        assert_eq!(offset_of!(GetSubvolInfoArgs, uuid), 296);
        assert_eq!(offset_of!(GetSubvolInfoArgs, otime), 392);
        assert_eq!(size_of::<SearchKey>(), 104);
        assert_eq!(size_of::<SearchArgs>(), 4096);
        assert_eq!(SEARCH_BUF_SIZE, 3992);
    }

    /// Request numbers as the kernel headers compute them (generic _IOC encoding;
    /// powerpc, mips and sparc encode differently).
    #[test]
    #[allow(clippy::unnecessary_cast)] // the code type differs between targets
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc64"
    )))]
    fn request_codes_match_the_kernel() {
        let w = |nr, size| nix::request_code_write!(MAGIC, nr, size) as u64;
        let r = |nr, size| nix::request_code_read!(MAGIC, nr, size) as u64;
        let rw = |nr, size| nix::request_code_readwrite!(MAGIC, nr, size) as u64;
        assert_eq!(nix::request_code_none!(MAGIC, 8) as u64, 0x9408);
        assert_eq!(w(15, size_of::<VolArgs>()), 0x5000940f);
        assert_eq!(rw(17, size_of::<SearchArgs>()), 0xd0009411);
        assert_eq!(w(19, size_of::<u64>()), 0x40089413);
        assert_eq!(w(23, size_of::<VolArgsV2>()), 0x50009417);
        assert_eq!(r(25, size_of::<u64>()), 0x80089419);
        assert_eq!(w(26, size_of::<u64>()), 0x4008941a);
        assert_eq!(r(60, size_of::<GetSubvolInfoArgs>()), 0x81f8943c);
        assert_eq!(w(63, size_of::<VolArgsV2>()), 0x5000943f);
    }

    #[test]
    fn name_is_nul_terminated() {
        let a = VolArgsV2::new(3, SUBVOL_RDONLY, b"snap");
        assert_eq!(&a.name[..5], b"snap\0");
        assert_eq!(a.fd, 3);
        let a = VolArgs::new(b"x");
        assert_eq!(&a.name[..2], b"x\0");
    }
}
