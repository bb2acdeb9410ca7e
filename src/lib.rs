//! transactional-livepatch: apply kernel livepatches as one transaction on a
//! btrfs snapshot-rooted system, so that what runs equals what boots.

pub mod btrfs;
pub mod cmd;
pub mod config;
pub mod error;
pub mod package;
pub mod chroot;
pub mod journal;
pub mod livepatch;
pub mod mount;
pub mod snapshot;
pub mod initrd;
