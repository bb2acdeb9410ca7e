//! The running kernel's livepatches: load, wait out the transition, reverse,
//! unload (Documentation/livepatch/livepatch.rst).
//!
//! Every path is taken relative to an injectable root (`/` normally), so the
//! state machine is tested against a temp-dir sysfs; the syscalls themselves
//! (finit_module, delete_module) sit behind [`Kernel`] for the same reason.

mod sysfs;

pub use sysfs::{Blocker, LivePatch, Sysfs};

use crate::error::{FailureKind, failure};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The syscalls that change the kernel.
pub trait Kernel {
    /// finit_module on an open module file.
    fn load_module(&self, file: &std::fs::File) -> Result<()>;
    /// delete_module with O_NONBLOCK.
    fn unload_module(&self, name: &str) -> Result<()>;
}

/// The real kernel.
pub struct RealKernel;

impl Kernel for RealKernel {
    fn load_module(&self, file: &std::fs::File) -> Result<()> {
        nix::kmod::finit_module(file, c"", nix::kmod::ModuleInitFlags::empty())
            .context("finit_module")
    }
    fn unload_module(&self, name: &str) -> Result<()> {
        let c = std::ffi::CString::new(name)?;
        nix::kmod::delete_module(&c, nix::kmod::DeleteModuleFlags::O_NONBLOCK)
            .with_context(|| format!("delete_module {name}"))
    }
}

/// Timing of transitions.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub grace: Duration,
    pub timeout: Duration,
    pub reverse_timeout: Duration,
    pub poll: Duration,
}

impl Timing {
    pub fn from_config(c: &crate::config::LivepatchConfig) -> Timing {
        Timing {
            grace: c.grace(),
            timeout: c.timeout(),
            reverse_timeout: c.reverse_timeout(),
            poll: Duration::from_millis(100),
        }
    }
}

/// Something to tell the user while we wait.
pub type Report<'a> = &'a dyn Fn(&str);

/// Livepatch operations on one kernel.
pub struct Livepatch<'k> {
    pub sysfs: Sysfs,
    pub kernel: &'k dyn Kernel,
    pub timing: Timing,
}

fn describe_blockers(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return "no blocking task found".into();
    }
    let mut parts: Vec<String> = blockers
        .iter()
        .take(8)
        .map(|b| {
            let mut s = format!("{} (pid {})", b.comm, b.tid);
            if let Some(f) = &b.top_frame {
                s.push_str(&format!(" in {f}"));
            }
            s
        })
        .collect();
    if blockers.len() > 8 {
        parts.push(format!("and {} more", blockers.len() - 8));
    }
    parts.join(", ")
}

impl Livepatch<'_> {
    /// Refuse before any change when the kernel has no livepatch support.
    pub fn require_support(&self) -> Result<()> {
        if self.sysfs.supported() {
            Ok(())
        } else {
            Err(failure(
                FailureKind::KernelUnsupported,
                format!(
                    "the running kernel {} does not support livepatching ({} is missing); use --boot-only to stage the patch for the next boot",
                    self.sysfs.kernel_release().unwrap_or_else(|_| "?".into()),
                    self.sysfs.livepatch_dir().display()
                ),
            ))
        }
    }

    /// Wait until patch `name` finishes its transition. `enabling` tells the
    /// direction: when disabling, the sysfs directory vanishing means done.
    /// Returns Ok(true) when done, Ok(false) on timeout (the caller reverses).
    fn wait(&self, name: &str, enabling: bool, timeout: Duration, report: Report) -> Result<bool> {
        let start = Instant::now();
        let mut reported = false;
        loop {
            match self.sysfs.patch(name)? {
                None if !enabling => return Ok(true),
                None => {
                    return Err(failure(
                        FailureKind::LoadFailed,
                        format!("livepatch {name} vanished from sysfs while being enabled"),
                    ));
                }
                Some(p) if !p.transition => return Ok(!enabling || p.enabled),
                Some(_) => {}
            }
            let waited = start.elapsed();
            if !reported && waited >= self.timing.grace {
                reported = true;
                let blockers = self.sysfs.blockers(if enabling { 0 } else { 1 })?;
                report(&format!(
                    "livepatch {name} still in transition after {}s; blocked by: {}",
                    waited.as_secs(),
                    describe_blockers(&blockers)
                ));
            }
            if waited >= timeout {
                return Ok(false);
            }
            std::thread::sleep(self.timing.poll);
        }
    }

    /// Load the module at `path` (a livepatch) and wait until it is fully
    /// applied. On a stalled transition the patch is reversed and the module
    /// removed, and the error names the blocking tasks. Returns the patches
    /// that were enabled before and are gone now (replaced by a cumulative
    /// patch): their modules are removed too.
    pub fn load(&self, path: &Path, name: &str, report: Report) -> Result<Vec<String>> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening livepatch module {}", path.display()))?;
        self.load_file(&file, &path.display().to_string(), name, report)
    }

    /// [`Livepatch::load`] of a module file already opened (inside a
    /// snapshot, see [`crate::inroot`]); `display` names it in messages.
    pub fn load_file(
        &self,
        file: &std::fs::File,
        display: &str,
        name: &str,
        report: Report,
    ) -> Result<Vec<String>> {
        let before = self.sysfs.enabled_names()?;
        if self.sysfs.module_loaded(name) && self.sysfs.patch(name)?.is_none() {
            // A leftover module of a disabled patch: it must go before a new load.
            self.kernel.unload_module(name)?;
        }
        if let Err(e) = self.kernel.load_module(file) {
            return Err(failure(
                FailureKind::LoadFailed,
                format!("the kernel refused livepatch module {display}: {e:#}"),
            ));
        }
        report(&format!(
            "livepatch {name} loaded, waiting for its transition"
        ));
        if !self.wait(name, true, self.timing.timeout, report)? {
            let blockers = self.sysfs.blockers(0)?;
            let who = describe_blockers(&blockers);
            report(&format!(
                "livepatch {name} transition stalled; reversing it (blocked by: {who})"
            ));
            self.disable(name, report).with_context(|| {
                format!("reversing stalled livepatch {name} (blocked by: {who})")
            })?;
            return Err(failure(
                FailureKind::TransitionStalled,
                format!(
                    "livepatch {name} could not be applied: its transition did not finish within {}s, blocked by {who}; it was reversed and removed",
                    self.timing.timeout.as_secs()
                ),
            ));
        }
        let after: Vec<String> = self.sysfs.patches()?.into_iter().map(|p| p.name).collect();
        let replaced: Vec<String> = before
            .into_iter()
            .filter(|b| b != name && !after.contains(b))
            .collect();
        for old in &replaced {
            if self.sysfs.module_loaded(old) {
                self.unload_when_released(old).with_context(|| {
                    format!("removing module of livepatch {old}, replaced by {name}")
                })?;
                report(&format!(
                    "livepatch {old} was replaced by {name}; module removed"
                ));
            }
        }
        Ok(replaced)
    }

    /// Disable patch `name` (a reverse transition when one is running), wait
    /// until it is gone, then remove its module. Never writes `force`.
    pub fn disable(&self, name: &str, report: Report) -> Result<()> {
        if let Some(p) = self.sysfs.patch(name)?
            && (p.enabled || p.transition)
        {
            self.sysfs.write_enabled(name, false)?;
            if !self.wait(name, false, self.timing.reverse_timeout, report)? {
                let blockers = self.sysfs.blockers(1)?;
                return Err(failure(
                    FailureKind::UnloadFailed,
                    format!(
                        "livepatch {name} could not be disabled: transition did not finish within {}s, blocked by {}",
                        self.timing.reverse_timeout.as_secs(),
                        describe_blockers(&blockers)
                    ),
                ));
            }
        }
        if self.sysfs.module_loaded(name) {
            self.unload_when_released(name).map_err(|e| {
                failure(
                    FailureKind::UnloadFailed,
                    format!(
                        "livepatch {name} is disabled but its module could not be removed: {e:#}"
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Remove the module of a disabled patch. The kernel drops its own
    /// reference to the module from a work item shortly after the patch's
    /// sysfs directory goes, so delete_module may report EAGAIN/EBUSY for a
    /// moment: retry for up to the reverse timeout.
    fn unload_when_released(&self, name: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            match self.kernel.unload_module(name) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let transient = e.chain().any(|c| {
                        c.downcast_ref::<nix::errno::Errno>().is_some_and(|n| {
                            matches!(n, nix::errno::Errno::EAGAIN | nix::errno::Errno::EBUSY)
                        })
                    });
                    if !transient || start.elapsed() >= self.timing.reverse_timeout {
                        return Err(e);
                    }
                    std::thread::sleep(self.timing.poll);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
