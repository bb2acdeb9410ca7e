//! Run commands inside a snapshot, with explicit binds.
//!
//! The snapshot gets /dev and /sys bound from the host, a fresh /proc, a fresh
//! tmpfs on /run and /tmp, and the shared /var subvolume of the running system
//! (on SLE Micro /var is its own subvolume, so a new snapshot's /var is an empty
//! mountpoint: rpm scriptlets and dracut's temp files need the real one). The
//! commands are the snapshot's own binaries, started through `chroot` with the
//! fixed environment of [`crate::cmd`] plus `TRANSACTIONAL_UPDATE=true`, which
//! SUSE scriptlets test to know they run inside a transaction.

use crate::cmd;
use crate::mount::MountGuard;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct ChrootEnv {
    root: PathBuf,
    // Unmounted in reverse order of mounting.
    mounts: Vec<MountGuard>,
}

impl ChrootEnv {
    /// Prepare `root` (a read-write snapshot). `shared_var` is the running
    /// system's /var, bound in when it exists.
    pub fn enter(root: &Path, shared_var: Option<&Path>) -> Result<ChrootEnv> {
        let mut env = ChrootEnv {
            root: root.to_path_buf(),
            mounts: Vec::new(),
        };
        env.setup(shared_var)
            .with_context(|| format!("preparing {} for chroot", root.display()))?;
        Ok(env)
    }

    fn dir(&self, rel: &str) -> Result<PathBuf> {
        let p = self.root.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", p.display())),
        }
        Ok(p)
    }

    fn setup(&mut self, shared_var: Option<&Path>) -> Result<()> {
        let t = self.dir("dev")?;
        self.mounts.push(MountGuard::bind(Path::new("/dev"), &t)?);
        let t = self.dir("proc")?;
        self.mounts.push(MountGuard::fresh("proc", &t, None)?);
        let t = self.dir("sys")?;
        self.mounts.push(MountGuard::bind(Path::new("/sys"), &t)?);
        let t = self.dir("run")?;
        self.mounts
            .push(MountGuard::fresh("tmpfs", &t, Some("mode=0755"))?);
        let t = self.dir("tmp")?;
        self.mounts
            .push(MountGuard::fresh("tmpfs", &t, Some("mode=1777"))?);
        if let Some(var) = shared_var {
            let t = self.dir("var")?;
            self.mounts.push(MountGuard::bind(var, &t)?);
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A host path for a path inside the chroot.
    pub fn host_path(&self, inner: &str) -> PathBuf {
        self.root.join(inner.trim_start_matches('/'))
    }

    /// A command that runs `program` inside the chroot.
    pub fn command(&self, program: &str) -> Command {
        let mut c = cmd::command("chroot");
        c.arg(&self.root).arg(program);
        c.env("TRANSACTIONAL_UPDATE", "true");
        c.env("SYSTEMD_OFFLINE", "1");
        c
    }

    /// Unmount everything now, reporting the first error.
    pub fn leave(mut self) -> Result<()> {
        let mut first = None;
        while let Some(m) = self.mounts.pop() {
            if let Err(e) = m.unmount()
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for ChrootEnv {
    fn drop(&mut self) {
        while let Some(m) = self.mounts.pop() {
            drop(m);
        }
    }
}
