//! `status` and `list`: what runs, what boots, and whether they agree.
//!
//! `status --json` is a versioned contract (docs/status-schema.json): bump
//! [`SCHEMA_VERSION`] on any incompatible change.

use crate::initrd;
use crate::journal::{Entry, Journal, Outcome};
use crate::snapshot::Snapshot;
use crate::system::System;
use crate::transaction::module_sha256;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotStatus {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub default: bool,
    pub booted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootPatch {
    pub name: String,
    pub path: String,
    pub package: Option<String>,
    pub sha256: Option<String>,
    /// CVE ids its package names (summary, description, changelog,
    /// /usr/share/livepatch/info/), sorted; empty when none or unknown.
    pub cves: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelPatches {
    pub kernel_release: String,
    pub livepatches: Vec<BootPatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveStatus {
    pub name: String,
    pub enabled: bool,
    pub transition: bool,
    pub replace: Option<bool>,
    /// sha256 of the module file in the booted snapshot, where it is there.
    pub module_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// The running kernel's livepatches equal the default snapshot's for it.
    pub in_sync: bool,
    /// Live now, but the default snapshot would not load them at boot.
    pub only_live: Vec<String>,
    /// The default snapshot loads them at boot, but they are not live.
    pub only_boot: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema_version: u32,
    pub running_kernel: String,
    pub livepatch_supported: bool,
    pub booted_snapshot: Option<u32>,
    pub default_snapshot: u32,
    /// The default is not what runs: the next boot changes the root.
    pub reboot_pending: bool,
    pub snapshots: Vec<SnapshotStatus>,
    /// Livepatches in the default snapshot, per installed kernel.
    pub default_livepatches: Vec<KernelPatches>,
    pub live_livepatches: Vec<LiveStatus>,
    pub drift: Drift,
    /// Open (interrupted or running) transactions: `recover` closes them.
    pub incomplete_transactions: Vec<Entry>,
    /// The last transactions, newest last (at most 10).
    pub last_transactions: Vec<Entry>,
}

fn kernels_in(snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for base in ["lib/modules", "usr/lib/modules"] {
        if let Ok(rd) = std::fs::read_dir(snapshot.path.join(base)) {
            for e in rd.flatten() {
                let k = e.file_name().to_string_lossy().into_owned();
                if e.path().join("modules.order").exists() && !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out.sort();
    out
}

pub fn status(sys: &System) -> Result<Status> {
    let snaps = sys.snapshots();
    // One listing for all three: each reads every snapshot.
    let list = snaps.list()?;
    let default = snaps.default_in(&list)?;
    let booted = snaps.booted_in(&list)?;
    let running = sys.running_kernel()?;
    let sysfs = sys.sysfs();

    let mut default_livepatches = Vec::new();
    let mut kernels = kernels_in(&default);
    if !kernels.contains(&running) && default.path.join("lib/modules").join(&running).exists() {
        kernels.push(running.clone());
    }
    // CVEs come from the stack, recorded at apply time. Only a stack entry
    // without that record (written by an older version, or a module installed
    // by other means) costs an rpm query, one per package, not per module.
    let mut cves_of: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut cves = |entry: &initrd::StackEntry| -> Vec<String> {
        if let Some(recorded) = &entry.cves {
            return recorded.clone();
        }
        let Some(p) = &entry.package else {
            return Vec::new();
        };
        cves_of
            .entry(p.clone())
            .or_insert_with(|| {
                crate::package::rpmdb::installed_cves(&default.path, p)
                    .unwrap_or_else(|e| {
                        tracing::warn!("reading the CVEs of {p}: {e:#}");
                        None
                    })
                    .unwrap_or_default()
            })
            .clone()
    };
    for k in kernels {
        let stack = initrd::read_stack(&default.path, &k)?;
        default_livepatches.push(KernelPatches {
            kernel_release: k,
            livepatches: stack
                .into_iter()
                .map(|s| BootPatch {
                    sha256: module_sha256(&default.path, &s.path),
                    cves: cves(&s),
                    name: s.name,
                    path: s.path,
                    package: s.package,
                })
                .collect(),
        });
    }
    let boot_names: Vec<String> = default_livepatches
        .iter()
        .filter(|k| k.kernel_release == running)
        .flat_map(|k| k.livepatches.iter().map(|p| p.name.clone()))
        .collect();

    let booted_stack = match &booted {
        Some(b) => initrd::read_stack(&b.path, &running).unwrap_or_default(),
        None => Vec::new(),
    };
    let live: Vec<LiveStatus> = sysfs
        .live_in_load_order()?
        .into_iter()
        .map(|p| LiveStatus {
            module_sha256: booted_stack
                .iter()
                .find(|s| s.name == p.name)
                .and_then(|s| {
                    booted
                        .as_ref()
                        .and_then(|b| module_sha256(&b.path, &s.path))
                }),
            name: p.name,
            enabled: p.enabled,
            transition: p.transition,
            replace: p.replace,
        })
        .collect();
    let live_names: Vec<String> = live
        .iter()
        .filter(|p| p.enabled)
        .map(|p| p.name.clone())
        .collect();
    let only_live: Vec<String> = live_names
        .iter()
        .filter(|n| !boot_names.contains(n))
        .cloned()
        .collect();
    let only_boot: Vec<String> = if sysfs.supported() {
        boot_names
            .iter()
            .filter(|n| !live_names.contains(n))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };

    let journal = Journal::open_readonly(&sys.root);
    let entries = journal.entries().unwrap_or_default();
    let incomplete: Vec<Entry> = entries
        .iter()
        .filter(|e| e.outcome == Outcome::Open)
        .cloned()
        .collect();
    let last: Vec<Entry> = entries.iter().rev().take(10).rev().cloned().collect();

    Ok(Status {
        schema_version: SCHEMA_VERSION,
        livepatch_supported: sysfs.supported(),
        running_kernel: running,
        booted_snapshot: booted.as_ref().map(|b| b.number),
        default_snapshot: default.number,
        reboot_pending: booted.as_ref().is_none_or(|b| b.id != default.id),
        snapshots: list
            .into_iter()
            .map(|s| SnapshotStatus {
                default: s.id == default.id,
                booted: booted.as_ref().is_some_and(|b| b.id == s.id),
                snapshot: s,
            })
            .collect(),
        default_livepatches,
        live_livepatches: live,
        drift: Drift {
            in_sync: only_live.is_empty() && only_boot.is_empty(),
            only_live,
            only_boot,
        },
        incomplete_transactions: incomplete,
        last_transactions: last,
    })
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Running kernel:   {}{}",
        s.running_kernel,
        if s.livepatch_supported {
            ""
        } else {
            " (no livepatch support)"
        }
    );
    let _ = writeln!(
        o,
        "Booted snapshot:  {}",
        s.booted_snapshot
            .map_or("(not a numbered snapshot)".into(), |n| n.to_string())
    );
    let _ = writeln!(
        o,
        "Default snapshot: {}{}",
        s.default_snapshot,
        if s.reboot_pending {
            " (reboot pending: the next boot uses it)"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "\nLivepatches in the running kernel:");
    if s.live_livepatches.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for p in &s.live_livepatches {
        let state = match (p.enabled, p.transition) {
            (true, false) => "enabled",
            (true, true) => "enabled, in transition",
            (false, true) => "disabling, in transition",
            (false, false) => "disabled",
        };
        let _ = writeln!(o, "  {} ({state})", p.name);
    }
    let _ = writeln!(
        o,
        "\nLivepatches the default snapshot {} boots with:",
        s.default_snapshot
    );
    let mut any = false;
    for k in &s.default_livepatches {
        for p in &k.livepatches {
            any = true;
            let _ = writeln!(
                o,
                "  {} for {} from {}  sha256 {}",
                p.name,
                k.kernel_release,
                p.package.as_deref().unwrap_or("(unknown package)"),
                p.sha256.as_deref().map_or("?", |h| &h[..16.min(h.len())])
            );
            if !p.cves.is_empty() {
                let _ = writeln!(o, "    fixes {}", p.cves.join(", "));
            }
        }
    }
    if !any {
        let _ = writeln!(o, "  none");
    }
    let _ = writeln!(o);
    if s.drift.in_sync {
        let _ = writeln!(o, "Drift: none (what runs equals what boots)");
    } else {
        let _ = writeln!(o, "Drift: YES");
        if !s.drift.only_live.is_empty() {
            let _ = writeln!(
                o,
                "  live but not in the default snapshot: {}",
                s.drift.only_live.join(", ")
            );
        }
        if !s.drift.only_boot.is_empty() {
            let _ = writeln!(
                o,
                "  in the default snapshot but not live: {}",
                s.drift.only_boot.join(", ")
            );
        }
    }
    for e in &s.incomplete_transactions {
        let _ = writeln!(
            o,
            "Interrupted transaction {} ({:?}, step {:?}): run `transactional-livepatch recover`",
            e.id, e.kind, e.step
        );
    }
    if let Some(e) = s.last_transactions.last() {
        let _ = writeln!(o, "\nLast transaction: {}", describe(e));
    }
    o
}

pub fn describe(e: &Entry) -> String {
    let what = match (&e.kind, &e.package) {
        (crate::journal::Kind::Apply, Some(p)) => format!("apply {}", p.nevra),
        (crate::journal::Kind::Apply, None) => "apply".to_string(),
        (crate::journal::Kind::Rollback, _) => "rollback".to_string(),
        (crate::journal::Kind::Update, _) => e
            .update
            .as_ref()
            .map_or_else(|| "update".to_string(), |u| u.describe()),
    };
    let arrow = match (e.kind, e.target) {
        (_, Some(t)) => format!("{} -> {}", e.base, t),
        (crate::journal::Kind::Update, None) => e.base.to_string(),
        (_, None) => format!("{} -> ?", e.base),
    };
    let outcome = match e.outcome {
        Outcome::Open => "open".to_string(),
        Outcome::Committed => "committed".to_string(),
        Outcome::Aborted => "aborted".to_string(),
    };
    let mut s = format!(
        "{}  {}  snapshot {}  {}{}",
        e.id,
        what,
        arrow,
        outcome,
        if e.recovered { " (by recover)" } else { "" }
    );
    if let Some(err) = &e.error {
        s.push_str(&format!(": {err}"));
    }
    s
}
