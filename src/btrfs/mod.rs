//! Safe wrappers over the btrfs ioctls this tool needs. STUB: being written.
//! The raw ioctl declarations live in the private `ioctl` submodule; this is the
//! only place in the crate allowed to use `unsafe`.

use anyhow::Result;
use std::path::Path;

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

/// Whether `path` is the root directory of a btrfs subvolume.
pub fn is_subvolume(_path: &Path) -> Result<bool> {
    todo!()
}
/// Info on the subvolume whose root directory is `path`.
pub fn subvolume_info(_path: &Path) -> Result<SubvolInfo> {
    todo!()
}
/// Snapshot the subvolume at `source` to `dest_dir/name`.
pub fn create_snapshot(_source: &Path, _dest_dir: &Path, _name: &str, _readonly: bool) -> Result<()> {
    todo!()
}
/// Delete the subvolume at `path` (must not contain nested subvolumes).
pub fn delete_subvolume(_path: &Path) -> Result<()> {
    todo!()
}
/// Set or clear the read-only property of the subvolume at `path`.
pub fn set_readonly(_path: &Path, _readonly: bool) -> Result<()> {
    todo!()
}
/// Id of the default subvolume of the filesystem containing `path`.
pub fn default_subvolume(_path: &Path) -> Result<u64> {
    todo!()
}
/// Make subvolume `id` the default of the filesystem containing `path`.
pub fn set_default_subvolume(_path: &Path, _id: u64) -> Result<()> {
    todo!()
}
/// Commit the filesystem containing `path` to disk (BTRFS_IOC_SYNC).
pub fn sync(_path: &Path) -> Result<()> {
    todo!()
}
