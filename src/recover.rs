//! `recover`: close every interrupted transaction so that the system is in the
//! old or the new state, never in between; and the boot-time check.
//!
//! Decisions are made from facts, not from the journal alone: which snapshot is
//! the default, whether the new snapshot is sealed, and which livepatches the
//! running kernel has. The journal says what the transaction meant to do.

use crate::initrd;
use crate::journal::{Entry, Journal, Kind, Lock, Outcome, Step};
use crate::livepatch::Kernel;
use crate::snapshot::Snapshot;
use crate::system::{Progress, System};
use crate::transaction::{live_matches, reconcile_live, require_root};
use anyhow::{Context, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoverAction {
    pub transaction: String,
    /// "rolled-forward" or "rolled-back".
    pub action: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecoverReport {
    pub actions: Vec<RecoverAction>,
    /// Snapshots left in progress by no open transaction, deleted.
    pub stray_snapshots_deleted: Vec<u32>,
}

pub fn recover(
    sys: &System,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<RecoverReport> {
    require_root()?;
    let _lock = Lock::acquire(&sys.root, "recover")?;
    recover_locked(sys, kernel, progress)
}

fn recover_locked(
    sys: &System,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<RecoverReport> {
    let journal = Journal::open(&sys.root)?;
    let snaps = sys.snapshots();
    let lp = sys.livepatch(kernel);
    let live_ok = lp.sysfs.supported();
    let running = sys.running_kernel()?;
    let mut report = RecoverReport::default();

    for mut entry in journal.open_entries()? {
        let default = snaps.default_snapshot()?;
        let target: Option<Snapshot> = match entry.target {
            Some(n) => snaps.get(n)?,
            None => None,
        };
        let target_stack = |t: &Snapshot| initrd::read_stack(&t.path, &running);
        let action = match (entry.kind, &target) {
            // The default already points at the target: the switch happened,
            // only the bookkeeping (and maybe the running kernel) is behind.
            (_, Some(t)) if t.id == default.id => {
                if entry.live && live_ok {
                    reconcile_live(&lp, &t.path, &target_stack(t)?, progress)?;
                }
                close(&journal, &mut entry, Outcome::Committed)?;
                RecoverAction {
                    transaction: entry.id.clone(),
                    action: "rolled-forward".into(),
                    detail: format!("snapshot {} was already the default", t.number),
                }
            }
            // The kernel already runs the target's set and the target is
            // complete: finish by switching the default.
            (kind, Some(t))
                if entry.live
                    && live_ok
                    && t.readonly
                    && !t.in_progress
                    && (kind == Kind::Rollback || entry.step >= Step::Sealed)
                    && entry.step >= Step::LiveDone
                    && live_matches(&lp, &target_stack(t)?)? =>
            {
                snaps.set_default(t)?;
                close(&journal, &mut entry, Outcome::Committed)?;
                RecoverAction {
                    transaction: entry.id.clone(),
                    action: "rolled-forward".into(),
                    detail: format!(
                        "the running kernel had the livepatches of snapshot {}; made it the default",
                        t.number
                    ),
                }
            }
            // Anything else: back to the default, which was never switched.
            (kind, _) => {
                if entry.live && live_ok {
                    let stack = initrd::read_stack(&default.path, &running)?;
                    reconcile_live(&lp, &default.path, &stack, progress).context(
                        "returning the running kernel to the default snapshot's livepatches",
                    )?;
                }
                let mut detail = format!("snapshot {} stays the default", default.number);
                if kind == Kind::Apply
                    && let Some(t) = &target
                {
                    snaps.delete(t.number)?;
                    detail.push_str(&format!("; incomplete snapshot {} deleted", t.number));
                }
                close(&journal, &mut entry, Outcome::Aborted)?;
                RecoverAction {
                    transaction: entry.id.clone(),
                    action: "rolled-back".into(),
                    detail,
                }
            }
        };
        progress.message(&format!(
            "transaction {}: {}, {}",
            action.transaction, action.action, action.detail
        ));
        report.actions.push(action);
    }

    // A snapshot still marked in progress that no open transaction owns (the
    // entry was lost, or written after the marker): it never became default.
    let default = snaps.default_snapshot()?;
    for s in snaps.list()? {
        if s.in_progress && s.id != default.id {
            snaps.delete(s.number)?;
            progress.message(&format!("deleted incomplete snapshot {}", s.number));
            report.stray_snapshots_deleted.push(s.number);
        }
    }
    Ok(report)
}

fn close(journal: &Journal, entry: &mut Entry, outcome: Outcome) -> Result<()> {
    entry.recovered = true;
    entry.close(journal, outcome, None)
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BootCheckReport {
    pub recover: RecoverReport,
    /// Livepatches of the booted snapshot the initrd did not load, loaded now.
    pub loaded: Vec<String>,
    /// Livepatches of the booted snapshot that could not be loaded.
    pub failed: Vec<String>,
    pub in_sync: bool,
}

/// At boot: recover, then make sure every livepatch the booted snapshot
/// carries for the running kernel is live (the initrd should have loaded them;
/// this is the fallback), and report drift.
pub fn boot_check(
    sys: &System,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<BootCheckReport> {
    require_root()?;
    let _lock = Lock::acquire(&sys.root, "boot-check")?;
    let recover = recover_locked(sys, kernel, progress)?;
    let mut report = BootCheckReport {
        recover,
        ..Default::default()
    };
    let lp = sys.livepatch(kernel);
    if !lp.sysfs.supported() {
        report.in_sync = true;
        progress.message("the running kernel has no livepatch support; nothing to load");
        return Ok(report);
    }
    let running = sys.running_kernel()?;
    let snaps = sys.snapshots();
    let Some(booted) = snaps.booted()? else {
        progress.message("the root is not a numbered snapshot; nothing to check");
        report.in_sync = true;
        return Ok(report);
    };
    let stack = initrd::read_stack(&booted.path, &running)?;
    let live = lp.sysfs.enabled_names()?;
    for s in &stack {
        if live.contains(&s.name) {
            continue;
        }
        match crate::transaction::load_from_snapshot(&lp, &booted.path, s, &|m| progress.message(m))
        {
            Ok(_) => {
                progress.message(&format!(
                    "livepatch {} was not loaded by the initrd; loaded it now",
                    s.name
                ));
                report.loaded.push(s.name.clone());
            }
            Err(e) => {
                progress.message(&format!("livepatch {} could not be loaded: {e:#}", s.name));
                report.failed.push(s.name.clone());
            }
        }
    }
    report.in_sync = live_matches(&lp, &stack)?;
    Ok(report)
}
