//! `check` and `update`: livepatches from rpm-md repositories, through zypper.
//!
//! # How, and why this way
//! 1. Lock, then a throwaway read-write snapshot of the *default* snapshot
//!    (marked in progress like any snapshot of ours, so `recover` deletes it
//!    if we die). zypper runs chrooted in it with the shared `/var` bound in:
//!    the snapshot's own zypper, repositories (`/etc/zypp/repos.d`), trusted
//!    keys and rpm database — the root that boots next — and nothing it does
//!    (key imports, rpm database syncs, lock files) can touch the running
//!    root or the default snapshot. Its caches go to
//!    `/var/cache/transactional-livepatch/zypp` on the shared `/var`, apart
//!    from the administrator's zypper caches.
//! 2. `zypper refresh`: every enabled repository's metadata, with zypper's own
//!    signature checks (`repo_gpgcheck`, keys from the rpm database). Any
//!    failure stops here: a failed refresh leaves old metadata in the cache,
//!    which must never be mistaken for current.
//! 3. `zypper search` for the configured package names (SUSE's
//!    `kernel-livepatch-<kernel>` by default): newest edition in the
//!    repositories vs the edition installed in the default snapshot. Patches
//!    (updateinfo) that update the package and are still needed give the CVEs.
//! 4. `update` only: `zypper download` (package signature checked by zypper;
//!    its exit code is not trusted, see `crate::zypper`), then the throwaway
//!    snapshot is deleted and the lock released, and the downloaded file goes
//!    through [`transaction::apply`] exactly as a file given to `apply`.
//!
//! An automatic run (`update --automatic`, from the timer) honours the
//! `[update]` configuration (`enabled`, `policy`) and writes its result to
//! the transaction history as an `update` entry.

use crate::chroot::ChrootEnv;
use crate::config::UpdatePolicy;
use crate::error::{FailureKind, failure};
use crate::journal::{
    Entry, Journal, Kind, Lock, Outcome, UpdatePackage, UpdateRecord, UpdateResult,
};
use crate::livepatch::Kernel;
use crate::mount::MountGuard;
use crate::snapshot::{Snapshot, Snapshots};
use crate::system::{Progress, System};
use crate::transaction::{self, ApplyOptions, ApplyReport};
use crate::zypper::{self, Zypper};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `check --json` and `update --json` are versioned: bump on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
/// `check` exits with this when an update is available (zypper's convention).
pub const EXIT_UPDATE_AVAILABLE: i32 = 100;
/// zypper's cache (metadata and packages) inside the chroot, on the shared /var.
pub const ZYPPER_CACHE: &str = "/var/cache/transactional-livepatch/zypp";
const SNAPSHOT_DESCRIPTION: &str = "transactional-livepatch: temporary root for zypper";

/// A patch (updateinfo) that the available edition brings.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Advisory {
    pub id: String,
    pub category: String,
    pub severity: String,
    pub summary: String,
    pub cves: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackageCheck {
    pub name: String,
    /// Edition installed in the default snapshot.
    pub installed: Option<String>,
    /// Newest edition in the repositories.
    pub available: Option<String>,
    pub arch: Option<String>,
    pub repository: Option<String>,
    pub update_available: bool,
    /// Still-needed patches that update this package, where the repository
    /// has updateinfo (zypper lists patches only for installed packages).
    pub advisories: Vec<Advisory>,
    /// The CVEs of those advisories, sorted.
    pub cves: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckReport {
    pub schema_version: u32,
    /// The running kernel, whose livepatch packages were looked for.
    pub kernel_release: String,
    /// The snapshot whose rpm database says what is installed.
    pub default_snapshot: u32,
    pub update_available: bool,
    pub packages: Vec<PackageCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    pub schema_version: u32,
    pub result: UpdateResult,
    /// Automatic run: the configured policy; by hand: "apply".
    pub policy: String,
    /// None when automatic updates are disabled (nothing was looked at).
    pub check: Option<CheckReport>,
    pub applied: Vec<ApplyReport>,
}

#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    pub boot_only: bool,
    /// A run of the timer: honour `[update] enabled` and `policy`, and record
    /// the result in the transaction history.
    pub automatic: bool,
}

/// The throwaway snapshot zypper runs in, with its chroot mounts. Dropping it
/// unmounts everything and deletes the snapshot.
struct ZypperRoot {
    snaps: Snapshots,
    snapshot: Snapshot,
    env: Option<ChrootEnv>,
    extra: Vec<MountGuard>,
}

impl ZypperRoot {
    fn enter(sys: &System, base: &Snapshot) -> Result<ZypperRoot> {
        let snaps = sys.snapshots();
        let snapshot = snaps.create(base, SNAPSHOT_DESCRIPTION)?;
        let mut me = ZypperRoot {
            snaps,
            snapshot,
            env: None,
            extra: Vec::new(),
        };
        let env = ChrootEnv::enter(&me.snapshot.path, sys.shared_var().as_deref())?;
        // SUSE's /etc/resolv.conf links to /run/netconfig, and the chroot's
        // /run is a fresh tmpfs: bring the running system's in.
        let netconfig = sys.root.join("run/netconfig");
        if netconfig.is_dir() {
            let target = env.host_path("/run/netconfig");
            std::fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            me.extra.push(MountGuard::bind(&netconfig, &target)?);
        }
        me.env = Some(env);
        Ok(me)
    }

    fn zypper(&self) -> Zypper<'_> {
        Zypper::new(self.env.as_ref().expect("entered"), ZYPPER_CACHE)
    }

    fn number(&self) -> u32 {
        self.snapshot.number
    }
}

impl Drop for ZypperRoot {
    fn drop(&mut self) {
        while let Some(m) = self.extra.pop() {
            drop(m);
        }
        if let Some(env) = self.env.take()
            && let Err(e) = env.leave()
        {
            tracing::warn!("leaving the temporary snapshot: {e:#}");
        }
        if let Err(e) = self.snaps.delete(self.snapshot.number) {
            // `recover` deletes it later: it is still marked in progress.
            tracing::warn!(
                "deleting the temporary snapshot {}: {e:#}",
                self.snapshot.number
            );
        }
    }
}

/// What one resolve produced: the report and, for `update`, the downloaded
/// files (host paths) of the packages to apply, in report order.
struct Resolved {
    report: CheckReport,
    downloads: Vec<PathBuf>,
}

/// Newest of some editions.
fn newest<'a>(
    editions: impl Iterator<Item = &'a zypper::Solvable>,
) -> Option<&'a zypper::Solvable> {
    editions.max_by(|a, b| zypper::compare_editions(&a.edition, &b.edition))
}

/// The report for one package name from what `zypper search` found.
fn judge(name: &str, found: &[zypper::Solvable]) -> PackageCheck {
    let mine = || {
        found
            .iter()
            .filter(move |s| s.name == name && s.arch != "src" && s.arch != "nosrc")
    };
    let installed = newest(mine().filter(|s| s.installed()));
    // "(System Packages)": installed and in no repository.
    let best = newest(mine().filter(|s| s.repository != "(System Packages)"));
    let update_available = match (installed, best) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(i), Some(b)) => zypper::compare_editions(&b.edition, &i.edition).is_gt(),
    };
    PackageCheck {
        name: name.to_string(),
        installed: installed.map(|s| s.edition.clone()),
        available: best.map(|s| s.edition.clone()),
        arch: best.map(|s| s.arch.clone()),
        repository: best.map(|s| s.repository.clone()),
        update_available,
        advisories: Vec::new(),
        cves: Vec::new(),
    }
}

/// The host path of a file zypper downloaded into [`ZYPPER_CACHE`] (on the
/// shared /var, so it outlives the throwaway snapshot).
fn downloaded_host_path(sys: &System, inner: &str) -> Result<PathBuf> {
    let prefix = format!("{ZYPPER_CACHE}/packages/");
    let rel = inner.strip_prefix(&prefix).filter(|r| {
        Path::new(r)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    let (Some(rel), Some(var)) = (rel, sys.shared_var()) else {
        crate::bail_kind!(
            FailureKind::RepositoryFailed,
            "zypper put the package at {inner:?}, outside {prefix} on the shared /var"
        );
    };
    let host = var
        .join(ZYPPER_CACHE.trim_start_matches("/var/"))
        .join("packages")
        .join(rel);
    if !host.is_file() {
        crate::bail_kind!(
            FailureKind::RepositoryFailed,
            "zypper reported {inner} as downloaded, but {} is not there",
            host.display()
        );
    }
    Ok(host)
}

/// Steps of [`resolve`]: refresh, search, advisories, and the download.
fn resolve_steps(download: bool) -> usize {
    if download { 5 } else { 4 }
}

/// The steps of one phase of an `update` (an apply after the resolve) as
/// steps of the whole run, so that its progress (a D-Bus client's percent
/// bar) only goes forward: step `index` of the phase is step `before + index`
/// of `total`.
struct Phase<'a> {
    inner: &'a dyn Progress,
    before: usize,
    total: usize,
}

impl Progress for Phase<'_> {
    fn step(&self, index: usize, _phase_total: usize, title: &str) {
        self.inner.step(
            self.before + index,
            self.total.max(self.before + index),
            title,
        );
    }
    fn message(&self, text: &str) {
        self.inner.message(text);
    }
}

fn resolve(sys: &System, download: bool, progress: &dyn Progress) -> Result<Resolved> {
    let total = resolve_steps(download);
    let kernel_release = sys.running_kernel()?;
    let names = sys
        .config
        .update
        .package_names(&kernel_release)
        .map_err(|e| failure(FailureKind::Usage, format!("{e:#}")))?;
    let snaps = sys.snapshots();
    let base = snaps.default_snapshot()?;

    progress.step(
        1,
        total,
        &format!(
            "Preparing a temporary snapshot of snapshot {} for zypper",
            base.number
        ),
    );
    let root = ZypperRoot::enter(sys, &base)?;
    progress.message(&format!("temporary snapshot {}", root.number()));
    let z = root.zypper();

    progress.step(2, total, "Refreshing the repositories");
    z.refresh()?;

    progress.step(
        3,
        total,
        &format!(
            "Looking for {} for kernel {kernel_release}",
            names.join(", ")
        ),
    );
    let found = z.search_packages(&names)?;
    let mut packages: Vec<PackageCheck> = names.iter().map(|n| judge(n, &found)).collect();

    progress.step(4, total, "Reading the advisories");
    let mut patches: Option<Vec<zypper::Patch>> = None;
    for p in packages.iter_mut().filter(|p| p.update_available) {
        let updating = z.patches_for(&p.name)?;
        if updating.is_empty() {
            continue;
        }
        if patches.is_none() {
            patches = Some(z.list_patches()?);
        }
        for patch in patches.iter().flatten() {
            if patch.status == "needed" && updating.contains(&patch.name) {
                p.advisories.push(Advisory {
                    id: patch.name.clone(),
                    category: patch.category.clone(),
                    severity: patch.severity.clone(),
                    summary: patch.summary.clone(),
                    cves: patch.cves(),
                });
                p.cves.extend(patch.cves());
            }
        }
        p.cves.sort();
        p.cves.dedup();
    }

    let mut downloads = Vec::new();
    if download {
        for p in packages.iter().filter(|p| p.update_available) {
            progress.step(5, total, &format!("Downloading {}", p.name));
            let d = z.download(&p.name)?;
            if p.available.as_deref() != Some(d.edition.as_str()) {
                crate::bail_kind!(
                    FailureKind::RepositoryFailed,
                    "zypper downloaded {} {}, but the newest edition is {}",
                    d.name,
                    d.edition,
                    p.available.as_deref().unwrap_or("none")
                );
            }
            progress.message(&format!(
                "{}-{}.{} from {} (downloaded by zypper, checked as the repository's gpgcheck setting asks)",
                d.name, d.edition, d.arch, d.repository
            ));
            downloads.push(downloaded_host_path(sys, &d.path)?);
        }
    }
    drop(root);

    let update_available = packages.iter().any(|p| p.update_available);
    Ok(Resolved {
        report: CheckReport {
            schema_version: SCHEMA_VERSION,
            kernel_release,
            default_snapshot: base.number,
            update_available,
            packages,
        },
        downloads,
    })
}

/// Ask the repositories for newer livepatches for the running kernel.
/// Changes nothing (a temporary snapshot comes and goes).
pub fn check(sys: &System, progress: &dyn Progress) -> Result<CheckReport> {
    transaction::require_root()?;
    let _lock = Lock::acquire(&sys.root, "check")?;
    Ok(resolve(sys, false, progress)?.report)
}

/// Bring the configured livepatch packages up to date from the repositories:
/// `apply` of what zypper resolves and downloads. Already up to date is success.
pub fn update(
    sys: &System,
    opts: &UpdateOptions,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<UpdateReport> {
    transaction::require_root()?;
    let cfg = &sys.config.update;
    let policy = if opts.automatic {
        cfg.policy
    } else {
        UpdatePolicy::Apply
    };
    if opts.automatic && !cfg.enabled {
        progress.message("automatic updates are disabled ([update] enabled = false)");
        return Ok(UpdateReport {
            schema_version: SCHEMA_VERSION,
            result: UpdateResult::UpToDate,
            policy: policy.name().into(),
            check: None,
            applied: Vec::new(),
        });
    }
    let mut check: Option<CheckReport> = None;
    let mut applied: Vec<ApplyReport> = Vec::new();
    let download = policy == UpdatePolicy::Apply;
    let before = resolve_steps(download);
    let per_apply = transaction::apply_step_count(opts.boot_only);
    let run = (|| -> Result<UpdateResult> {
        let resolved = {
            let _lock = Lock::acquire(&sys.root, "update")?;
            transaction::require_no_open(&Journal::open(&sys.root)?)?;
            // Counted as one apply ahead (the usual case: one package); the
            // total grows if more packages come.
            let whole = Phase {
                inner: progress,
                before: 0,
                total: if download { before + per_apply } else { before },
            };
            resolve(sys, download, &whole)?
        };
        let report = check.insert(resolved.report);
        if !report.update_available {
            return Ok(UpdateResult::UpToDate);
        }
        if policy == UpdatePolicy::Check {
            return Ok(UpdateResult::Available);
        }
        // `..Default::default()`: whatever else apply learns stays at its default.
        #[allow(clippy::needless_update)]
        let apply_opts = ApplyOptions {
            boot_only: opts.boot_only,
            ..Default::default()
        };
        let total = before + per_apply * resolved.downloads.len();
        for (i, file) in resolved.downloads.iter().enumerate() {
            let phase = Phase {
                inner: progress,
                before: before + per_apply * i,
                total,
            };
            applied.push(transaction::apply(sys, file, &apply_opts, kernel, &phase)?);
        }
        Ok(UpdateResult::Applied)
    })();
    if opts.automatic {
        record(sys, policy, check.as_ref(), &applied, &run);
    }
    let result = run?;
    Ok(UpdateReport {
        schema_version: SCHEMA_VERSION,
        result,
        policy: policy.name().into(),
        check,
        applied,
    })
}

/// Write an automatic run's result to the transaction history. A failure to
/// record is logged, never turned into the run's result.
fn record(
    sys: &System,
    policy: UpdatePolicy,
    check: Option<&CheckReport>,
    applied: &[ApplyReport],
    run: &Result<UpdateResult>,
) {
    let go = || -> Result<()> {
        // The lock keeps ids unique; a transaction that just started elsewhere
        // is waited out for a while.
        let mut tries = 0;
        let _lock = loop {
            match Lock::acquire(&sys.root, "update (recording the result)") {
                Ok(l) => break l,
                Err(e) if crate::error::kind_of(&e) == FailureKind::Busy && tries < 120 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        };
        let journal = Journal::open(&sys.root)?;
        let base = match check {
            Some(c) => c.default_snapshot,
            None => sys.snapshots().default_snapshot()?.number,
        };
        let (result, outcome, error) = match run {
            Ok(r) => (*r, Outcome::Committed, None),
            Err(e) => (UpdateResult::Failed, Outcome::Aborted, Some(e)),
        };
        let packages = check
            .map(|c| {
                c.packages
                    .iter()
                    .map(|p| UpdatePackage {
                        name: p.name.clone(),
                        installed: p.installed.clone(),
                        available: p.available.clone(),
                        cves: p.cves.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let entry = journal.record(Kind::Update, base, outcome, error, |e| {
            e.target = applied.last().map(|a| a.new_snapshot);
            e.live = applied.iter().any(|a| a.live);
            e.update = Some(UpdateRecord {
                automatic: true,
                policy: policy.name().into(),
                result,
                packages,
                transactions: applied.iter().map(|a| a.transaction.clone()).collect(),
            });
        })?;
        tracing::info!("recorded update run as transaction {}", entry.id);
        // Up-to-date runs say the same every few hours: keep the newest few.
        let keep = sys.config.update.keep_up_to_date_runs as usize;
        match journal.prune(keep, Entry::is_up_to_date_run) {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} older up-to-date update run records"),
            Err(e) => {
                tracing::warn!("could not prune the up-to-date update run records: {e:#}")
            }
        }
        Ok(())
    };
    if let Err(e) = go() {
        tracing::warn!("could not record the update run in the history: {e:#}");
        eprintln!("warning: could not record the update run in the history: {e:#}");
    }
}

/// Human text of a check.
pub fn render_check(r: &CheckReport) -> String {
    let mut o = String::new();
    for p in &r.packages {
        let line = match (&p.installed, &p.available, p.update_available) {
            (_, None, _) => format!(
                "{}: not in the repositories (nothing for kernel {})",
                p.name, r.kernel_release
            ),
            (None, Some(a), _) => format!(
                "{}: {a} available from {}, not installed",
                p.name,
                p.repository.as_deref().unwrap_or("?")
            ),
            (Some(i), Some(a), true) => format!(
                "{}: {i} installed, {a} available from {}",
                p.name,
                p.repository.as_deref().unwrap_or("?")
            ),
            (Some(i), Some(_), false) => format!("{}: {i} installed, up to date", p.name),
        };
        o.push_str(&line);
        o.push('\n');
        for a in &p.advisories {
            o.push_str(&format!(
                "  {} ({}, {}): {}{}\n",
                a.id,
                a.category,
                a.severity,
                a.summary,
                if a.cves.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", a.cves.join(", "))
                }
            ));
        }
    }
    o.push_str(if r.update_available {
        "An update is available: `transactional-livepatch update` applies it.\n"
    } else {
        "Up to date.\n"
    });
    o
}

/// Human text of an update.
pub fn render_update(r: &UpdateReport) -> String {
    let Some(check) = &r.check else {
        return "Automatic updates are disabled ([update] enabled = false): nothing was done.\n"
            .into();
    };
    let mut o = String::new();
    match r.result {
        UpdateResult::UpToDate => {
            let have: Vec<String> = check
                .packages
                .iter()
                .filter_map(|p| p.installed.as_ref().map(|i| format!("{} {i}", p.name)))
                .collect();
            o.push_str(&if have.is_empty() {
                format!(
                    "Up to date: the repositories have no livepatch for kernel {}; nothing was changed.\n",
                    check.kernel_release
                )
            } else {
                format!(
                    "Up to date ({}); nothing was changed.\n",
                    have.join(", ")
                )
            });
        }
        UpdateResult::Available => {
            o.push_str(&render_check(check));
            o.push_str("Policy \"check\": nothing was applied.\n");
        }
        UpdateResult::Applied | UpdateResult::Failed => {
            for a in &r.applied {
                o.push_str(&if a.live {
                    format!(
                        "Applied {}: live now, and snapshot {} (the new default) boots with it.\n",
                        a.package, a.new_snapshot
                    )
                } else {
                    format!(
                        "Staged {} for the next boot: snapshot {} is the new default; the running kernel was not changed.\n",
                        a.package, a.new_snapshot
                    )
                });
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solv(name: &str, edition: &str, status: &str, repo: &str) -> zypper::Solvable {
        zypper::Solvable {
            name: name.into(),
            kind: "package".into(),
            status: status.into(),
            edition: edition.into(),
            arch: "x86_64".into(),
            repository: repo.into(),
        }
    }

    /// Issue 8: automatic runs that found nothing new are kept to the
    /// configured number (the newest); every other record stays.
    #[test]
    fn up_to_date_run_records_are_pruned_to_the_configured_number() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = System::new(d.path(), d.path(), None).unwrap();
        sys.config.update.keep_up_to_date_runs = 3;
        let check = CheckReport {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-56-amd64".into(),
            default_snapshot: 1,
            update_available: false,
            packages: Vec::new(),
        };
        let run = |r: Result<UpdateResult>| {
            record(&sys, UpdatePolicy::Check, Some(&check), &[], &r);
        };
        run(Ok(UpdateResult::UpToDate));
        run(Ok(UpdateResult::Available));
        run(Err(anyhow::anyhow!("repository unreachable")));
        for _ in 0..5 {
            run(Ok(UpdateResult::UpToDate));
        }
        let journal = Journal::open_readonly(&sys.root);
        let all = journal.entries().unwrap();
        let results: Vec<UpdateResult> = all
            .iter()
            .map(|e| e.update.as_ref().unwrap().result)
            .collect();
        use UpdateResult::*;
        assert_eq!(results, [Available, Failed, UpToDate, UpToDate, UpToDate]);
        // The ones kept are the newest: the last id recorded is among them.
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        // A manual `update` record or an apply is never pruned, however many.
        let mut manual = all[4].clone();
        manual.id = "29991231T000000-000".into();
        manual.update.as_mut().unwrap().automatic = false;
        Journal::open(&sys.root).unwrap().write(&manual).unwrap();
        assert!(!manual.is_up_to_date_run() && all[4].is_up_to_date_run());
        run(Ok(UpdateResult::UpToDate));
        let all = journal.entries().unwrap();
        assert_eq!(all.len(), 6, "{all:#?}");
        assert_eq!(all.iter().filter(|e| e.is_up_to_date_run()).count(), 3);
    }

    /// The steps an update announces, resolve then apply, count forward.
    #[test]
    fn update_phases_number_their_steps_as_one_run() {
        use std::cell::RefCell;
        struct Record(RefCell<Vec<(usize, usize)>>);
        impl Progress for Record {
            fn step(&self, index: usize, total: usize, _: &str) {
                self.0.borrow_mut().push((index, total));
            }
            fn message(&self, _: &str) {}
        }
        let r = Record(RefCell::new(Vec::new()));
        let whole = Phase {
            inner: &r,
            before: 0,
            total: 11,
        };
        whole.step(1, 5, "a");
        whole.step(5, 5, "b");
        let apply = Phase {
            inner: &r,
            before: 5,
            total: 11,
        };
        apply.step(1, 6, "c");
        apply.step(6, 6, "d");
        // A phase with more steps than counted never says "12 of 11".
        apply.step(7, 7, "e");
        assert_eq!(
            *r.0.borrow(),
            [(1, 11), (5, 11), (6, 11), (11, 11), (12, 12)]
        );
    }

    #[test]
    fn judge_picks_the_newest_against_the_installed() {
        let n = "kernel-livepatch-x";
        let found = vec![
            solv(n, "2-1", "other-version", "r"),
            solv(n, "10-1", "other-version", "r"),
            solv(n, "9-1", "installed", "r"),
            solv("other", "99-1", "not-installed", "r"),
        ];
        let p = judge(n, &found);
        assert_eq!(p.installed.as_deref(), Some("9-1"));
        assert_eq!(p.available.as_deref(), Some("10-1"));
        assert!(p.update_available);

        let p = judge(n, &[solv(n, "3-1", "not-installed", "r")]);
        assert_eq!(p.installed, None);
        assert!(p.update_available);

        let p = judge(n, &[solv(n, "3-1", "installed", "r")]);
        assert!(!p.update_available);

        // Installed, newer than anything in the repositories.
        let p = judge(
            n,
            &[
                solv(n, "4-1", "installed", "(System Packages)"),
                solv(n, "3-1", "other-version", "r"),
            ],
        );
        assert_eq!(p.available.as_deref(), Some("3-1"));
        assert!(!p.update_available);

        let p = judge(n, &[]);
        assert_eq!((p.installed, p.available), (None, None));
        assert!(!p.update_available);
    }

    #[test]
    fn downloads_must_stay_in_the_cache() {
        let d = tempfile::tempdir().unwrap();
        let sys = System::new(d.path(), d.path(), None).unwrap();
        let pkgdir = d
            .path()
            .join("var/cache/transactional-livepatch/zypp/packages/repo");
        std::fs::create_dir_all(&pkgdir).unwrap();
        std::fs::write(pkgdir.join("a.rpm"), b"x").unwrap();
        let ok =
            downloaded_host_path(&sys, &format!("{ZYPPER_CACHE}/packages/repo/a.rpm")).unwrap();
        assert_eq!(ok, pkgdir.join("a.rpm"));
        for bad in [
            "/etc/shadow".to_string(),
            format!("{ZYPPER_CACHE}/packages/../../../../etc/shadow"),
            format!("{ZYPPER_CACHE}/packages/repo/missing.rpm"),
        ] {
            let e = downloaded_host_path(&sys, &bad).unwrap_err();
            assert_eq!(
                crate::error::kind_of(&e),
                FailureKind::RepositoryFailed,
                "{bad}"
            );
        }
    }

    #[test]
    fn render_says_what_to_do() {
        let r = CheckReport {
            schema_version: SCHEMA_VERSION,
            kernel_release: "6.1.0-56-amd64".into(),
            default_snapshot: 2,
            update_available: true,
            packages: vec![PackageCheck {
                name: "kernel-livepatch-x".into(),
                installed: Some("1-1".into()),
                available: Some("2-1".into()),
                arch: Some("x86_64".into()),
                repository: Some("r".into()),
                update_available: true,
                advisories: vec![Advisory {
                    id: "SUSE-2026-1".into(),
                    category: "security".into(),
                    severity: "important".into(),
                    summary: "fix".into(),
                    cves: vec!["CVE-2026-1".into()],
                }],
                cves: vec!["CVE-2026-1".into()],
            }],
        };
        let t = render_check(&r);
        assert!(t.contains("1-1 installed, 2-1 available from r"), "{t}");
        assert!(t.contains("CVE-2026-1"), "{t}");
        assert!(t.contains("update` applies it"), "{t}");
    }
}
