//! transactional-livepatch: apply kernel livepatches as one transaction on a
//! btrfs snapshot-rooted system, so that what runs equals what boots.

pub mod btrfs;
pub mod chroot;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod dbus;
pub mod error;
pub mod failpoints;
pub mod initrd;
pub mod inroot;
pub mod journal;
pub mod livepatch;
pub mod mount;
pub mod package;
pub mod recover;
pub mod snapshot;
pub mod status;
pub mod system;
pub mod transaction;
pub mod update;
pub mod zypper;
