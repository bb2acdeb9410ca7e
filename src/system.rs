//! The system a command acts on: the managed root, where /sys and /proc are,
//! and the configuration. Everything is a path below an injectable root, so the
//! tests drive a loop-mounted image (and unit tests a temp dir) through exactly
//! the code that runs on `/`.

use crate::config::Config;
use crate::livepatch::{Kernel, Livepatch, RealKernel, Sysfs, Timing};
use crate::snapshot::Snapshots;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct System {
    /// Where the running system's root is mounted, with its `/.snapshots`
    /// and shared `/var` mounted below it as fstab does (`/` normally).
    pub root: PathBuf,
    /// The root of /sys and /proc of the running kernel (`/` normally).
    pub kernel_root: PathBuf,
    pub config: Config,
}

impl System {
    pub fn new(root: &Path, kernel_root: &Path, config_file: Option<&Path>) -> Result<System> {
        let config = Config::load(root, config_file)?;
        // Absolute: subprocesses (rpm --root, chroot) run elsewhere and
        // rpm silently misreads a relative --root.
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Ok(System {
            root: abs(root),
            kernel_root: abs(kernel_root),
            config,
        })
    }

    pub fn snapshots(&self) -> Snapshots {
        Snapshots::new(
            &self.root,
            self.config.snapshots.backend,
            &self.config.snapshots.snapper_config,
        )
    }

    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.kernel_root)
    }

    pub fn livepatch<'k>(&self, kernel: &'k dyn Kernel) -> Livepatch<'k> {
        Livepatch {
            sysfs: self.sysfs(),
            kernel,
            timing: Timing::from_config(&self.config.livepatch),
        }
    }

    pub fn real_kernel() -> &'static RealKernel {
        &RealKernel
    }

    pub fn running_kernel(&self) -> Result<String> {
        self.sysfs().kernel_release()
    }

    /// The shared /var of the running system, bound into snapshots.
    pub fn shared_var(&self) -> Option<PathBuf> {
        let v = self.root.join("var");
        v.is_dir().then_some(v)
    }
}

/// What a long operation tells its caller while it runs (the CLI prints it,
/// the D-Bus daemon turns it into signals).
pub trait Progress {
    /// A step begins; `index` counts from 1 up to `total`.
    fn step(&self, index: usize, total: usize, title: &str);
    /// A free-form message within the current step.
    fn message(&self, text: &str);
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: usize, _: usize, _: &str) {}
    fn message(&self, _: &str) {}
}
