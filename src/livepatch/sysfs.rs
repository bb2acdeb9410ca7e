//! Reading the livepatch state the kernel exposes in /sys and /proc.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One livepatch as /sys/kernel/livepatch/<name> shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePatch {
    pub name: String,
    pub enabled: bool,
    pub transition: bool,
    /// The `replace` attribute, where the kernel has it (newer than 6.1).
    pub replace: Option<bool>,
}

/// A task that has not yet switched to the target patch state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// The first frame of its kernel stack, when readable.
    pub top_frame: Option<String>,
}

/// /sys and /proc below an injectable root.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

fn read_trim(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p).map(|s| s.trim().to_string())
}

fn read_flag(p: &Path) -> Result<Option<bool>> {
    match read_trim(p) {
        Ok(s) => Ok(Some(s == "1")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

impl Sysfs {
    pub fn new(root: &Path) -> Sysfs {
        Sysfs {
            root: root.to_path_buf(),
        }
    }

    pub fn livepatch_dir(&self) -> PathBuf {
        self.root.join("sys/kernel/livepatch")
    }

    pub fn supported(&self) -> bool {
        self.livepatch_dir().is_dir()
    }

    /// The running kernel's release, from /proc (injectable, unlike uname).
    pub fn kernel_release(&self) -> Result<String> {
        let p = self.root.join("proc/sys/kernel/osrelease");
        read_trim(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// One patch, or None when its directory does not exist (never loaded, or
    /// a disable finished: the kernel removes the directory then).
    pub fn patch(&self, name: &str) -> Result<Option<LivePatch>> {
        let dir = self.livepatch_dir().join(name);
        let Some(enabled) = read_flag(&dir.join("enabled"))? else {
            return Ok(None);
        };
        let transition = read_flag(&dir.join("transition"))?.unwrap_or(false);
        let replace = read_flag(&dir.join("replace"))?;
        Ok(Some(LivePatch {
            name: name.to_string(),
            enabled,
            transition,
            replace,
        }))
    }

    /// All patches, sorted by name.
    pub fn patches(&self) -> Result<Vec<LivePatch>> {
        let dir = self.livepatch_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(p) = self.patch(&name)? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Enabled (or transitioning) patches in load order, oldest first.
    /// sysfs lists them by name; /proc/modules lists modules newest first.
    pub fn live_in_load_order(&self) -> Result<Vec<LivePatch>> {
        let mut patches: Vec<LivePatch> = self
            .patches()?
            .into_iter()
            .filter(|p| p.enabled || p.transition)
            .collect();
        let modules = std::fs::read_to_string(self.root.join("proc/modules")).unwrap_or_default();
        let newest_first: Vec<&str> = modules
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let age = |name: &str| {
            newest_first
                .iter()
                .position(|m| *m == name)
                .map_or(0, |i| newest_first.len() - i)
        };
        patches.sort_by_key(|p| age(&p.name));
        Ok(patches)
    }

    /// Names of the enabled patches (transitioning ones included once
    /// enabled), in load order: the set every caller compares against.
    pub fn enabled_names(&self) -> Result<Vec<String>> {
        Ok(self
            .live_in_load_order()?
            .into_iter()
            .filter(|p| p.enabled)
            .map(|p| p.name)
            .collect())
    }

    pub fn write_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        let p = self.livepatch_dir().join(name).join("enabled");
        std::fs::write(&p, if enabled { "1" } else { "0" })
            .with_context(|| format!("writing {} to {}", enabled as u8, p.display()))
    }

    pub fn module_loaded(&self, name: &str) -> bool {
        self.root
            .join("sys/module")
            .join(name)
            .join("initstate")
            .exists()
            || self
                .root
                .join("sys/module")
                .join(name)
                .join("refcnt")
                .exists()
    }

    /// Tasks whose patch_state is `unswitched` (0 = still on the old code when
    /// patching, 1 = still on the new code when unpatching).
    pub fn blockers(&self, unswitched: i32) -> Result<Vec<Blocker>> {
        let proc_dir = self.root.join("proc");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&proc_dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(tasks) = std::fs::read_dir(e.path().join("task")) else {
                continue;
            };
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let tp = t.path();
                let Ok(state) = read_trim(&tp.join("patch_state")) else {
                    continue;
                };
                if state.parse::<i32>().ok() != Some(unswitched) {
                    continue;
                }
                let comm = read_trim(&tp.join("comm")).unwrap_or_default();
                let top_frame = read_trim(&tp.join("stack")).ok().and_then(|s| {
                    s.lines().next().map(|l| {
                        // "[<0>] schedule+0x2d/0x80" -> "schedule+0x2d/0x80"
                        l.split_once("] ").map_or(l, |(_, f)| f).to_string()
                    })
                });
                out.push(Blocker {
                    pid,
                    tid,
                    comm,
                    top_frame,
                });
            }
        }
        out.sort_by_key(|b| b.tid);
        Ok(out)
    }
}
