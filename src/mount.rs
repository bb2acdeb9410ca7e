//! Mounts as RAII guards, in a private mount namespace.
//!
//! A transaction first moves itself into a private mount namespace
//! ([`enter_private_namespace`]), so whatever it mounts is invisible to the rest
//! of the system and vanishes with the process even on SIGKILL. The guards still
//! unmount in reverse order on every path, so a long-lived caller (tests, the
//! daemon's worker) never accumulates mounts.

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};

/// Move this process into its own mount namespace with private propagation.
///
/// Must be called while the process is single-threaded (unshare(CLONE_NEWNS)
/// implies CLONE_FS). Idempotent in effect: calling twice gives a fresh copy.
pub fn enter_private_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("creating a private mount namespace (unshare CLONE_NEWNS)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / private in the new mount namespace")?;
    Ok(())
}

/// Refuse a mount target that is a symlink: mounting follows it, possibly out of
/// the snapshot.
fn check_target(target: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(target)
        .with_context(|| format!("inspecting mount target {}", target.display()))?;
    if md.file_type().is_symlink() {
        // Typed: a snapshot whose /run, /var … is a symlink is hostile or broken.
        return Err(crate::error::failure(
            crate::error::FailureKind::UnsafePath,
            format!(
                "refusing to mount on {}: it is a symbolic link (it could lead out of the snapshot)",
                target.display()
            ),
        ));
    }
    if !md.is_dir() {
        bail!("refusing to mount on {}: not a directory", target.display());
    }
    Ok(())
}

/// A mounted filesystem that is unmounted when dropped.
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    active: bool,
}

impl MountGuard {
    /// Bind-mount `source` on `target`.
    pub fn bind(source: &Path, target: &Path) -> Result<MountGuard> {
        check_target(target)?;
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", source.display(), target.display()))?;
        Ok(MountGuard {
            target: target.to_path_buf(),
            active: true,
        })
    }

    /// Mount a fresh filesystem of type `fstype` (proc, tmpfs, sysfs …).
    pub fn fresh(fstype: &str, target: &Path, options: Option<&str>) -> Result<MountGuard> {
        check_target(target)?;
        mount(
            Some(fstype),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            options,
        )
        .with_context(|| format!("mounting {fstype} on {}", target.display()))?;
        Ok(MountGuard {
            target: target.to_path_buf(),
            active: true,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmount now and report errors (Drop can only log them).
    pub fn unmount(mut self) -> Result<()> {
        self.active = false;
        unmount_with_retry(&self.target)
    }
}

fn unmount_with_retry(target: &Path) -> Result<()> {
    // A process started in the chroot (a scriptlet's daemon, dracut's helpers)
    // may still hold the mount for a moment: retry, then detach lazily so the
    // mount can never outlive us in the namespace.
    for attempt in 0..5 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(50 << attempt));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("unmounting {}", target.display()));
            }
        }
    }
    umount2(target, MntFlags::MNT_DETACH)
        .with_context(|| format!("lazily unmounting busy {}", target.display()))
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.active
            && let Err(e) = unmount_with_retry(&self.target)
        {
            tracing::error!("{e:#}");
        }
    }
}

/// Whether anything is mounted at or below `path`, according to /proc/self/mountinfo.
pub fn mounts_below(path: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    let mut found = Vec::new();
    for line in info.lines() {
        // Field 5 is the mount point, with spaces escaped as \040.
        if let Some(mp) = line.split(' ').nth(4) {
            let mp = PathBuf::from(mp.replace("\\040", " "));
            if mp.starts_with(path) {
                found.push(mp);
            }
        }
    }
    Ok(found)
}
