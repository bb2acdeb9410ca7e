//! Safe wrappers over the btrfs ioctls this tool needs.
//!
//! The raw ioctl declarations live in the private `ioctl` submodule, the only
//! place in the crate allowed to use `unsafe`. Every error returned here names
//! the operation and the paths involved, e.g.
//! `creating snapshot of /x as /y/z: Read-only file system (os error 30)`;
//! errno values are kept as [`std::io::Error`] at the bottom of the chain, so
//! `error::kind_of` still sees ENOSPC.
//!
//! Symbolic links: calls that act on a subvolume (snapshot, delete, read-only
//! flag, default, info, `is_subvolume`) never follow a symlink in the last
//! component of a path. Calls that only use `path` as a handle on the filesystem
//! (`default_subvolume`, `sync`, `subvolume_id`) follow it.

#[allow(unsafe_code)]
mod ioctl;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};
use nix::sys::statfs::{BTRFS_SUPER_MAGIC, fstatfs};
use std::ffi::OsStr;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Id of the top-level subvolume (`BTRFS_FS_TREE_OBJECTID`), the default of a
/// fresh filesystem.
pub const TOP_LEVEL_ID: u64 = ioctl::FS_TREE_OBJECTID;

/// Facts about one subvolume (BTRFS_IOC_GET_SUBVOL_INFO).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubvolInfo {
    /// Tree id (subvolume id).
    pub id: u64,
    /// Id of the subvolume this one lives in.
    pub parent_id: u64,
    pub readonly: bool,
    /// UUID as text.
    pub uuid: String,
    /// UUID of the subvolume this was snapshotted from, empty if none.
    pub parent_uuid: String,
    /// Creation time, seconds since the epoch.
    pub otime: i64,
}

/// Whether `path` is the root directory of a btrfs subvolume (the top-level
/// subvolume included). A path that does not exist, is not a directory or is
/// a symlink is not one; other failures (e.g. permission denied) are errors.
pub fn is_subvolume(path: &Path) -> Result<bool> {
    with_context(
        || format!("checking whether {} is a btrfs subvolume", path.display()),
        || {
            let p = strip_trailing_slashes(path);
            match std::fs::symlink_metadata(p) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e.into()),
                Ok(m) if !m.is_dir() => return Ok(false),
                Ok(_) => {}
            }
            let fd = open_dir(p, false)?;
            Ok(on_btrfs(&fd)? && fstat(&fd).map_err(io_err)?.st_ino == ioctl::FIRST_FREE_OBJECTID)
        },
    )
}

/// [`subvolume_info`] of `path` if it is the root directory of a btrfs
/// subvolume, else `None`: one open for both questions, for listing many
/// snapshots. As with [`is_subvolume`], a path that cannot be opened as a
/// directory (missing, a symlink, not a directory, not readable) is not one;
/// only a failing info ioctl on an opened subvolume root is an error.
pub fn subvolume_info_if_subvolume(path: &Path) -> Result<Option<SubvolInfo>> {
    let Ok(fd) = open_dir(path, false) else {
        return Ok(None);
    };
    if !on_btrfs(&fd).unwrap_or(false)
        || fstat(&fd).map_or(true, |st| st.st_ino != ioctl::FIRST_FREE_OBJECTID)
    {
        return Ok(None);
    }
    with_context(
        || format!("reading subvolume info of {}", path.display()),
        || info_of(&fd),
    )
    .map(Some)
}

/// [`subvolume_info_if_subvolume`] of `name` relative to the open directory
/// `dir` (the last component not followed), for listing many snapshots with
/// short lookups. The filesystem is asked (fstatfs) only when the info ioctl
/// fails, to tell "not btrfs" (not a subvolume) from a real error: on the
/// snapshots of one btrfs that never happens.
pub fn subvolume_info_at(dir: &OwnedFd, name: &str) -> Result<Option<SubvolInfo>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let Ok(fd) = nix::fcntl::openat(dir, name, flags, Mode::empty()) else {
        return Ok(None);
    };
    if fstat(&fd).map_or(true, |st| st.st_ino != ioctl::FIRST_FREE_OBJECTID) {
        return Ok(None);
    }
    match info_of(&fd) {
        Ok(info) => Ok(Some(info)),
        Err(_) if !on_btrfs(&fd).unwrap_or(false) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading subvolume info of {name}")),
    }
}

fn info_of(fd: &OwnedFd) -> Result<SubvolInfo> {
    let args = ioctl::get_subvol_info(fd.as_fd()).map_err(io_err)?;
    Ok(SubvolInfo {
        id: args.treeid,
        parent_id: args.parent_id,
        readonly: args.flags & ioctl::ROOT_SUBVOL_RDONLY != 0,
        uuid: format_uuid(&args.uuid),
        parent_uuid: format_uuid(&args.parent_uuid),
        otime: i64::try_from(args.otime.sec).unwrap_or(i64::MAX),
    })
}

/// Info on the subvolume whose root directory is `path`.
pub fn subvolume_info(path: &Path) -> Result<SubvolInfo> {
    with_context(
        || format!("reading subvolume info of {}", path.display()),
        || {
            let fd = open_subvolume_root(path)?;
            info_of(&fd)
        },
    )
}

/// Id of the subvolume that contains `path` (any directory; symlinks followed).
pub fn subvolume_id(path: &Path) -> Result<u64> {
    with_context(
        || format!("finding the subvolume containing {}", path.display()),
        || {
            let fd = open_dir(path, true)?;
            require_btrfs(&fd, path)?;
            Ok(ioctl::get_subvol_info(fd.as_fd()).map_err(io_err)?.treeid)
        },
    )
}

/// Snapshot the subvolume at `source` to `dest_dir/name`.
pub fn create_snapshot(source: &Path, dest_dir: &Path, name: &str, readonly: bool) -> Result<()> {
    with_context(
        || {
            format!(
                "creating {}snapshot of {} as {}",
                if readonly { "read-only " } else { "" },
                source.display(),
                child_display(dest_dir, name)
            )
        },
        || {
            validate_name(name)?;
            let src = open_subvolume_root(source)?;
            let dst = open_dir(dest_dir, false)?;
            require_btrfs(&dst, dest_dir)?;
            let flags = if readonly { ioctl::SUBVOL_RDONLY } else { 0 };
            let args = ioctl::VolArgsV2::new(i64::from(src.as_raw_fd()), flags, name.as_bytes());
            ioctl::snap_create_v2(dst.as_fd(), &args).map_err(io_err)?;
            Ok(())
        },
    )
}

/// Delete the subvolume at `path` (must not contain nested subvolumes).
///
/// `path` must name the subvolume itself: paths ending in `/`, `.` or `..`
/// are refused, and a symlink in the last component is not followed.
pub fn delete_subvolume(path: &Path) -> Result<()> {
    with_context(
        || format!("deleting subvolume {}", path.display()),
        || {
            let (parent, name) = split_parent(path)?;
            validate_name(name)?;
            let pfd = open_dir(parent, true)?;
            let st = fstatat(&pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io_err)?;
            let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if fmt == SFlag::S_IFLNK {
                bail!("it is a symbolic link (not followed)");
            }
            if fmt != SFlag::S_IFDIR || st.st_ino != ioctl::FIRST_FREE_OBJECTID {
                bail!("not the root directory of a btrfs subvolume");
            }
            let v2 = ioctl::VolArgsV2::new(0, 0, name.as_bytes());
            match ioctl::snap_destroy_v2(pfd.as_fd(), &v2) {
                // Kernels before 5.7 lack the v2 call.
                Err(Errno::ENOTTY) | Err(Errno::EOPNOTSUPP) => {
                    let v1 = ioctl::VolArgs::new(name.as_bytes());
                    ioctl::snap_destroy(pfd.as_fd(), &v1).map_err(io_err)?;
                }
                r => r.map_err(io_err)?,
            }
            Ok(())
        },
    )
}

/// Set or clear the read-only property of the subvolume at `path`, keeping
/// its other flags.
pub fn set_readonly(path: &Path, readonly: bool) -> Result<()> {
    with_context(
        || {
            format!(
                "{} the read-only flag of subvolume {}",
                if readonly { "setting" } else { "clearing" },
                path.display()
            )
        },
        || {
            let fd = open_subvolume_root(path)?;
            let flags = ioctl::subvol_getflags(fd.as_fd()).map_err(io_err)?;
            let new = if readonly {
                flags | ioctl::SUBVOL_RDONLY
            } else {
                flags & !ioctl::SUBVOL_RDONLY
            };
            if new != flags {
                ioctl::subvol_setflags(fd.as_fd(), new).map_err(io_err)?;
            }
            Ok(())
        },
    )
}

/// Id of the default subvolume of the filesystem containing `path` (a
/// directory). Needs CAP_SYS_ADMIN (BTRFS_IOC_TREE_SEARCH).
pub fn default_subvolume(path: &Path) -> Result<u64> {
    with_context(
        || {
            format!(
                "reading the default subvolume of the filesystem at {}",
                path.display()
            )
        },
        || {
            let fd = open_dir(path, true)?;
            require_btrfs(&fd, path)?;
            // No "default" entry: the top level is the default.
            let mut default = TOP_LEVEL_ID;
            let found = tree_search_all(
                &fd,
                ioctl::ROOT_TREE_DIR_OBJECTID,
                ioctl::ROOT_TREE_DIR_OBJECTID,
                ioctl::DIR_ITEM_KEY,
                |item| {
                    if item.objectid == ioctl::ROOT_TREE_DIR_OBJECTID
                        && item.item_type == ioctl::DIR_ITEM_KEY
                        && let Some(id) = dir_item_location(item.data, b"default")?
                    {
                        default = id;
                        return Ok(ControlFlow::Break(()));
                    }
                    Ok(ControlFlow::Continue(()))
                },
            );
            match found {
                Ok(()) => Ok(default),
                Err(SearchError::Denied) => Err(io_err(Errno::EPERM).into()),
                Err(SearchError::Other(e)) => Err(e),
            }
        },
    )
}

/// Make subvolume `id` the default of the filesystem containing `path` (a
/// directory; a symlink in the last component is not followed).
pub fn set_default_subvolume(path: &Path, id: u64) -> Result<()> {
    with_context(
        || {
            format!(
                "setting the default subvolume of the filesystem at {} to id {id}",
                path.display()
            )
        },
        || {
            let fd = open_dir(path, false)?;
            require_btrfs(&fd, path)?;
            ioctl::default_subvol(fd.as_fd(), id).map_err(io_err)?;
            Ok(())
        },
    )
}

/// Commit the filesystem containing `path` (a directory) to disk (BTRFS_IOC_SYNC).
pub fn sync(path: &Path) -> Result<()> {
    with_context(
        || format!("syncing the btrfs filesystem at {}", path.display()),
        || {
            let fd = open_dir(path, true)?;
            require_btrfs(&fd, path)?;
            ioctl::sync(fd.as_fd()).map_err(io_err)?;
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------
// helpers

fn with_context<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> Result<T>) -> Result<T> {
    f().with_context(what)
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// `dir/name` for messages, without doubling a slash.
fn child_display(dir: &Path, name: &str) -> String {
    let d = strip_trailing_slashes(dir).display().to_string();
    if d.ends_with('/') {
        format!("{d}{name}")
    } else {
        format!("{d}/{name}")
    }
}

/// Drop trailing slashes (which would make the kernel follow a final symlink),
/// keeping a lone "/".
fn strip_trailing_slashes(path: &Path) -> &Path {
    let mut b = path.as_os_str().as_bytes();
    while b.len() > 1 && b.ends_with(b"/") {
        b = &b[..b.len() - 1];
    }
    Path::new(OsStr::from_bytes(b))
}

/// Check a subvolume name before it reaches any ioctl.
fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("invalid subvolume name: empty");
    }
    if name == "." || name == ".." {
        bail!("invalid subvolume name {name:?}");
    }
    if name.contains('/') {
        bail!("invalid subvolume name {name:?}: contains '/'");
    }
    if name.contains('\0') {
        bail!("invalid subvolume name {name:?}: contains a NUL byte");
    }
    if name.len() > ioctl::VOL_NAME_MAX {
        bail!(
            "invalid subvolume name: {} bytes, longer than {}",
            name.len(),
            ioctl::VOL_NAME_MAX
        );
    }
    Ok(())
}

/// Split a path naming a subvolume into its parent directory and final name,
/// refusing forms whose final component is not a plain name.
fn split_parent(path: &Path) -> Result<(&Path, &str)> {
    let b = path.as_os_str().as_bytes();
    if b.is_empty() {
        bail!("empty path");
    }
    if b.ends_with(b"/") {
        bail!("refusing a path that ends in '/'");
    }
    let (parent, name) = match b.iter().rposition(|&c| c == b'/') {
        Some(0) => (&b"/"[..], &b[1..]),
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&b"."[..], b),
    };
    if name == b"." || name == b".." {
        bail!(
            "refusing a path that ends in '{}'",
            String::from_utf8_lossy(name)
        );
    }
    let name = std::str::from_utf8(name).context("subvolume name is not valid UTF-8")?;
    Ok((Path::new(OsStr::from_bytes(parent)), name))
}

/// Open a directory read-only. With `follow == false` a symlink in the last
/// component is refused (trailing slashes are dropped first so they cannot
/// force following it).
fn open_dir(path: &Path, follow: bool) -> Result<OwnedFd> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let p = if follow {
        path
    } else {
        flags |= OFlag::O_NOFOLLOW;
        strip_trailing_slashes(path)
    };
    open(p, flags, Mode::empty()).map_err(|e| {
        let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        if !follow && is_link && matches!(e, Errno::ELOOP | Errno::ENOTDIR) {
            anyhow::anyhow!(
                "opening {}: it is a symbolic link (not followed)",
                path.display()
            )
        } else {
            anyhow::Error::new(io_err(e)).context(format!("opening {}", path.display()))
        }
    })
}

fn on_btrfs(fd: &OwnedFd) -> Result<bool> {
    Ok(fstatfs(fd).map_err(io_err)?.filesystem_type() == BTRFS_SUPER_MAGIC)
}

fn require_btrfs(fd: &OwnedFd, path: &Path) -> Result<()> {
    if !on_btrfs(fd)? {
        bail!("{} is not on a btrfs filesystem", path.display());
    }
    Ok(())
}

/// Open `path` (symlink not followed) and check it is a subvolume root.
fn open_subvolume_root(path: &Path) -> Result<OwnedFd> {
    let fd = open_dir(path, false)?;
    require_btrfs(&fd, path)?;
    if fstat(&fd).map_err(io_err)?.st_ino != ioctl::FIRST_FREE_OBJECTID {
        bail!(
            "{} is not the root directory of a btrfs subvolume",
            path.display()
        );
    }
    Ok(fd)
}

/// Standard hyphenated lowercase text; an all-zero UUID is "".
fn format_uuid(u: &[u8; ioctl::UUID_SIZE]) -> String {
    if u.iter().all(|&b| b == 0) {
        return String::new();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Inode number of every subvolume's root directory.
pub const SUBVOLUME_ROOT_INO: u64 = ioctl::FIRST_FREE_OBJECTID;

/// A subvolume linked directly in another one, as the root tree records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSubvolume {
    pub id: u64,
    /// Inode number of the directory (in the parent subvolume) holding it.
    pub dirid: u64,
    /// Its name in that directory.
    pub name: Vec<u8>,
    pub readonly: bool,
}

/// The subvolumes linked in the subvolume that contains `dir`, anywhere in
/// it, with their read-only flags. Two tree searches of a few kilobytes each,
/// where asking each subvolume costs an open, fstat, ioctl and close; for
/// listing hundreds of snapshots. None where the search is not allowed (it
/// needs CAP_SYS_ADMIN) or not possible (not btrfs): then ask each one
/// ([`subvolume_info_at`]).
pub fn child_subvolumes(dir: &OwnedFd) -> Result<Option<Vec<ChildSubvolume>>> {
    let Ok(parent) = ioctl::get_subvol_info(dir.as_fd()) else {
        return Ok(None);
    };
    let parent = parent.treeid;
    let mut children = Vec::new();
    let refs = tree_search_all(dir, parent, parent, ioctl::ROOT_REF_KEY, |item| {
        if item.objectid != parent || item.item_type != ioctl::ROOT_REF_KEY {
            return Ok(ControlFlow::Continue(()));
        }
        let d = item.data;
        let Some(fixed) = d.get(..ioctl::ROOT_REF_SIZE) else {
            bail!("truncated root ref of subvolume {}", item.offset);
        };
        let name_len = usize::from(u16::from_le_bytes([fixed[16], fixed[17]]));
        let Some(name) = d.get(ioctl::ROOT_REF_SIZE..ioctl::ROOT_REF_SIZE + name_len) else {
            bail!("truncated root ref of subvolume {}", item.offset);
        };
        children.push(ChildSubvolume {
            id: item.offset,
            dirid: u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes")),
            name: name.to_vec(),
            readonly: false,
        });
        Ok(ControlFlow::Continue(()))
    });
    match refs {
        Ok(()) => {}
        Err(SearchError::Denied) => return Ok(None),
        Err(SearchError::Other(e)) => {
            return Err(e).context("listing the subvolumes below a directory");
        }
    }
    let (Some(min), Some(max)) = (
        children.iter().map(|c| c.id).min(),
        children.iter().map(|c| c.id).max(),
    ) else {
        return Ok(Some(children));
    };
    let mut flags: std::collections::HashMap<u64, bool> = Default::default();
    let items = tree_search_all(dir, min, max, ioctl::ROOT_ITEM_KEY, |item| {
        // The search range is a range of whole keys: between two ids it also
        // yields their other items, and other subvolumes' root items.
        if item.item_type != ioctl::ROOT_ITEM_KEY {
            return Ok(ControlFlow::Continue(()));
        }
        let o = ioctl::ROOT_ITEM_FLAGS_OFFSET;
        let Some(f) = item.data.get(o..o + 8) else {
            bail!("truncated root item of subvolume {}", item.objectid);
        };
        let f = u64::from_le_bytes(f.try_into().expect("8 bytes"));
        flags.insert(item.objectid, f & ioctl::ROOT_SUBVOL_RDONLY != 0);
        Ok(ControlFlow::Continue(()))
    });
    match items {
        Ok(()) => {}
        Err(SearchError::Denied) => return Ok(None),
        Err(SearchError::Other(e)) => {
            return Err(e).context("reading the root items of subvolumes");
        }
    }
    // A subvolume deleted between the two searches has no root item left.
    children.retain_mut(|c| match flags.get(&c.id) {
        Some(&ro) => {
            c.readonly = ro;
            true
        }
        None => false,
    });
    Ok(Some(children))
}

enum SearchError {
    /// EPERM: the search needs CAP_SYS_ADMIN.
    Denied,
    Other(anyhow::Error),
}

/// Every item of the root tree with a key from (`min_objectid`, `key_type`,
/// 0) to (`max_objectid`, `key_type`, max), in key order, handed to `each`.
/// The range is one of whole keys, so items of other types between them come
/// too: `each` filters. `each` may end the walk early with `Break`.
fn tree_search_all(
    fd: &OwnedFd,
    min_objectid: u64,
    max_objectid: u64,
    key_type: u32,
    mut each: impl FnMut(&SearchItem<'_>) -> Result<ControlFlow<()>>,
) -> Result<(), SearchError> {
    let mut key = ioctl::SearchKey {
        tree_id: ioctl::ROOT_TREE_OBJECTID,
        min_objectid,
        max_objectid,
        min_type: key_type,
        max_type: key_type,
        min_offset: 0,
        max_offset: u64::MAX,
        min_transid: 0,
        max_transid: u64::MAX,
        ..Default::default()
    };
    loop {
        key.nr_items = 4096;
        let mut args = ioctl::SearchArgs::new(key);
        match ioctl::tree_search(fd.as_fd(), &mut args) {
            Ok(()) => {}
            Err(Errno::EPERM) => return Err(SearchError::Denied),
            Err(e) => return Err(SearchError::Other(io_err(e).into())),
        }
        let items = parse_search_buf(&args.buf, args.key.nr_items).map_err(SearchError::Other)?;
        let Some(last) = items.last() else {
            return Ok(());
        };
        for item in &items {
            if each(item).map_err(SearchError::Other)?.is_break() {
                return Ok(());
            }
        }
        // Continue after the last key returned.
        let (o, t, off) = (last.objectid, last.item_type, last.offset);
        if off < u64::MAX {
            (key.min_objectid, key.min_type, key.min_offset) = (o, t, off + 1);
        } else if t < u32::from(u8::MAX) {
            (key.min_objectid, key.min_type, key.min_offset) = (o, t + 1, 0);
        } else if o < max_objectid {
            (key.min_objectid, key.min_type, key.min_offset) = (o + 1, 0, 0);
        } else {
            return Ok(());
        }
        if (key.min_objectid, key.min_type, key.min_offset) > (max_objectid, key_type, u64::MAX) {
            return Ok(());
        }
    }
}

/// One item of a BTRFS_IOC_TREE_SEARCH result.
#[derive(Debug)]
struct SearchItem<'a> {
    objectid: u64,
    offset: u64,
    item_type: u32,
    data: &'a [u8],
}

/// Split the result buffer of a tree search into its `nr` items. Headers are
/// in native byte order (filled in by the kernel).
fn parse_search_buf(buf: &[u8], nr: u32) -> Result<Vec<SearchItem<'_>>> {
    let u64_at = |b: &[u8], o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let mut items = Vec::new();
    let mut pos = 0usize;
    for _ in 0..nr {
        let Some(h) = buf.get(pos..pos + ioctl::SEARCH_HEADER_SIZE) else {
            bail!("tree search result truncated at byte {pos}");
        };
        let len = u32_at(h, 28) as usize;
        let start = pos + ioctl::SEARCH_HEADER_SIZE;
        let Some(data) = buf.get(start..start + len) else {
            bail!("tree search item at byte {pos} overruns the buffer");
        };
        items.push(SearchItem {
            objectid: u64_at(h, 8),
            offset: u64_at(h, 16),
            item_type: u32_at(h, 24),
            data,
        });
        pos = start + len;
    }
    Ok(items)
}

/// In the (little-endian, on-disk) data of a DIR_ITEM, which may hold several
/// `btrfs_dir_item`s whose names share a hash, find the one called `name`
/// and return the objectid of its location key.
fn dir_item_location(mut data: &[u8], name: &[u8]) -> Result<Option<u64>> {
    const N: usize = ioctl::DIR_ITEM_SIZE;
    while !data.is_empty() {
        if data.len() < N {
            bail!("truncated directory item");
        }
        let objectid = u64::from_le_bytes(data[0..8].try_into().expect("8 bytes"));
        let data_len = u16::from_le_bytes([data[25], data[26]]) as usize;
        let name_len = u16::from_le_bytes([data[27], data[28]]) as usize;
        let total = N + name_len + data_len;
        if data.len() < total {
            bail!("truncated directory item");
        }
        if &data[N..N + name_len] == name {
            return Ok(Some(objectid));
        }
        data = &data[total..];
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn uuid_formatting() {
        assert_eq!(format_uuid(&[0; 16]), "");
        let u = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(format_uuid(&u), "12345678-9abc-def0-0123-456789abcdef");
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(format_uuid(&one), "00000000-0000-0000-0000-000000000001");
    }

    #[test]
    fn names_are_validated() {
        for ok in ["snap", "1", "a.b", "..x", &"x".repeat(255)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "/", "a\0b", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        // Multibyte: 128 * 2 bytes = 256 bytes.
        assert!(validate_name(&"é".repeat(128)).is_err());
    }

    /// Invalid names fail before anything is opened: the source and
    /// destination do not exist, yet the error is about the name.
    #[test]
    fn bad_names_are_rejected_before_any_ioctl() {
        let long = "x".repeat(256);
        for bad in ["a/b", ".", "..", long.as_str()] {
            let e = create_snapshot(
                Path::new("/nonexistent/src"),
                Path::new("/nonexistent/dst"),
                bad,
                true,
            )
            .unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains("invalid subvolume name"), "{msg}");
            assert!(msg.contains("/nonexistent/src"), "{msg}");
        }
    }

    #[test]
    fn delete_refuses_dot_and_slash_endings() {
        for bad in ["/x/..", "/x/.", "..", ".", "/x/", "/", ""] {
            let e = delete_subvolume(Path::new(bad)).unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains("refusing") || msg.contains("empty path"),
                "{bad:?}: {msg}"
            );
        }
    }

    #[test]
    fn split_parent_forms() {
        let s = |p: &str| split_parent(Path::new(p)).map(|(a, b)| (a.to_path_buf(), b.to_string()));
        assert_eq!(s("/a/b").unwrap(), (PathBuf::from("/a"), "b".into()));
        assert_eq!(s("/b").unwrap(), (PathBuf::from("/"), "b".into()));
        assert_eq!(s("b").unwrap(), (PathBuf::from("."), "b".into()));
        assert_eq!(s("a//b").unwrap(), (PathBuf::from("a/"), "b".into()));
        assert!(s("a/b/").is_err());
        assert!(s("a/..").is_err());
    }

    #[test]
    fn trailing_slashes() {
        assert_eq!(
            strip_trailing_slashes(Path::new("/a/b//")),
            Path::new("/a/b")
        );
        assert_eq!(strip_trailing_slashes(Path::new("///")), Path::new("/"));
        assert_eq!(child_display(Path::new("/"), "n"), "/n");
        assert_eq!(child_display(Path::new("/d/"), "n"), "/d/n");
    }

    #[test]
    fn not_a_subvolume_outside_btrfs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_subvolume(&dir.path().join("missing")).unwrap());
        std::fs::write(dir.path().join("f"), b"").unwrap();
        assert!(!is_subvolume(&dir.path().join("f")).unwrap());
        // /proc is never btrfs.
        assert!(!is_subvolume(Path::new("/proc")).unwrap());
        let e = sync(Path::new("/proc")).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "syncing the btrfs filesystem at /proc: /proc is not on a btrfs filesystem"
        );
    }

    fn dir_item(objectid: u64, name: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&objectid.to_le_bytes());
        v.push(132); // ROOT_ITEM_KEY
        v.extend_from_slice(&u64::MAX.to_le_bytes());
        v.extend_from_slice(&7u64.to_le_bytes()); // transid
        v.extend_from_slice(&0u16.to_le_bytes()); // data_len
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.push(2); // BTRFS_FT_DIR
        assert_eq!(v.len(), ioctl::DIR_ITEM_SIZE);
        v.extend_from_slice(name);
        v
    }

    #[test]
    fn default_dir_item_is_found_among_colliding_names() {
        let mut data = dir_item(300, b"other");
        data.extend(dir_item(257, b"default"));
        assert_eq!(dir_item_location(&data, b"default").unwrap(), Some(257));
        assert_eq!(dir_item_location(&data, b"nope").unwrap(), None);
        assert!(dir_item_location(&data[..40], b"default").is_err());
    }

    #[test]
    fn search_buffer_is_split_into_items() {
        let item = dir_item(258, b"default");
        let mut buf = Vec::new();
        for off in [10u64, 20] {
            buf.extend_from_slice(&1u64.to_ne_bytes()); // transid
            buf.extend_from_slice(&6u64.to_ne_bytes()); // objectid
            buf.extend_from_slice(&off.to_ne_bytes());
            buf.extend_from_slice(&84u32.to_ne_bytes());
            buf.extend_from_slice(&(item.len() as u32).to_ne_bytes());
            buf.extend_from_slice(&item);
        }
        let items = parse_search_buf(&buf, 2).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[1].objectid, items[1].offset, items[1].item_type),
            (6, 20, 84)
        );
        assert_eq!(
            dir_item_location(items[0].data, b"default").unwrap(),
            Some(258)
        );
        assert!(parse_search_buf(&buf, 3).is_err());
        assert!(parse_search_buf(&buf[..50], 1).is_err());
    }
}
