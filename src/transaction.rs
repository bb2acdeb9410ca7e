//! The apply and rollback transactions.
//!
//! # Order of an apply, and why
//! 1. preflight (no change), lock, journal entry (`started`)
//! 2. read-write snapshot of the *default* subvolume (not the booted one, so a
//!    pending default from another tool is built upon, never lost)
//! 3. package installed in it by its own rpm, in a chroot
//! 4. boot stack file and initrd regenerated and verified inside it
//! 5. snapshot sealed: read-only, in-progress marker cleared
//! 6. the running kernel is changed (patch loaded, transition waited out)
//! 7. the default subvolume is switched to the new snapshot (one ioctl)
//! 8. journal `committed`
//!
//! Live loading (6) comes *before* the default switch (7) because it is the
//! step most likely to fail (a refused module, a stalled transition): when it
//! fails, boot state was never touched, and undoing means reversing the patch
//! and deleting a snapshot nobody boots. The default switch is a single atomic
//! ioctl that cannot half-happen. A crash between 6 and 7 leaves a kernel that
//! runs the new set while the old snapshot is default: `recover` sees from the
//! journal and the kernel that the new, sealed snapshot is what runs and
//! finishes the switch; after a power cut the kernel booted the old default, so
//! `recover` deletes the new snapshot. Either way: old or new, never a half.

use crate::cmd::CommandRunExt;
use crate::error::{FailureKind, failure};
use crate::failpoint;
use crate::initrd::{self, StackEntry};
use crate::inroot::Root;
use crate::journal::{Entry, Journal, Kind, Lock, Outcome, PackageRecord, Step};
use crate::livepatch::{Kernel, Livepatch};
use crate::package::{self, PackageFacts};
use crate::snapshot::Snapshot;
use crate::system::{Progress, System};
use anyhow::{Context, Result};
use std::io::{Read, Seek, Write};
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Stage for the next boot only; leave the running kernel alone.
    pub boot_only: bool,
    /// Accept a package older than the version of the same package in the
    /// default snapshot (a cumulative livepatch downgrade).
    pub allow_downgrade: bool,
    /// What the history calls the package file, when the path opened is a
    /// handle (the daemon's /dev/stdin) rather than the name its caller gave.
    pub package_name: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    pub transaction: String,
    pub package: String,
    pub base_snapshot: u32,
    pub new_snapshot: u32,
    pub live: bool,
    pub loaded: Vec<String>,
    pub replaced: Vec<String>,
}

/// Refuse early when not root: nothing below may be touched otherwise.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(failure(
            FailureKind::NotAuthorized,
            "this command changes the system and must run as root",
        ))
    }
}

/// Refuse to start while an earlier transaction is still open.
pub fn require_no_open(journal: &Journal) -> Result<()> {
    if let Some(e) = journal.open_entries()?.first() {
        return Err(failure(
            FailureKind::Busy,
            format!(
                "transaction {} ({:?}) was interrupted; run `transactional-livepatch recover` first",
                e.id, e.kind
            ),
        ));
    }
    Ok(())
}

/// The kernel release directory of `kver` in a snapshot, if installed.
fn kernel_installed(snapshot_root: &Path, kver: &str) -> bool {
    let Ok(root) = Root::open(snapshot_root) else {
        return false;
    };
    ["lib/modules", "usr/lib/modules"].iter().any(|b| {
        root.exists(&format!("{b}/{kver}/modules.order"))
            || root.is_dir(&format!("{b}/{kver}/kernel"))
    })
}

fn sha256_file(mut f: std::fs::File) -> Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn module_sha256(snapshot_root: &Path, inner: &str) -> Option<String> {
    let root = Root::open(snapshot_root).ok()?;
    sha256_file(root.open_read(inner).ok()?).ok()
}

/// Copy the already verified package (through the handle that was hashed, never
/// by path again) into the chroot's private /run.
fn stage_package(file: &mut std::fs::File, env: &crate::chroot::ChrootEnv) -> Result<String> {
    let inner = "/run/transactional-livepatch/package.rpm";
    let root = Root::open(env.root())?;
    root.create_dir_all("/run/transactional-livepatch", 0o700)?;
    file.rewind()?;
    let mut out = root.create_file(inner, 0o600)?;
    std::io::copy(file, &mut out).context("copying the package into the snapshot")?;
    out.flush()?;
    Ok(inner.to_string())
}

/// Load the module of stack entry `t`, opened inside the snapshot at
/// `snapshot_root`: a symlink in the snapshot never makes the kernel load a
/// file from outside it.
pub fn load_from_snapshot(
    lp: &Livepatch,
    snapshot_root: &Path,
    t: &StackEntry,
    report: crate::livepatch::Report,
) -> Result<Vec<String>> {
    let display = initrd::host(snapshot_root, &t.path).display().to_string();
    let file = Root::open(snapshot_root)?
        .open_read(&t.path)
        .with_context(|| format!("opening livepatch module {display}"))?;
    lp.load_file(&file, &display, &t.name, report)
}

/// Bring the running kernel's livepatch set to `target` (a boot stack whose
/// paths are read below `snapshot_root`): load what is missing, in order, then
/// disable and remove what is extra, newest first. Loading first keeps the
/// system patched throughout a cumulative downgrade (the older cumulative patch
/// replaces the newer one); for stacked patches there is nothing to load and
/// the extra ones go newest first. Returns (loaded, removed).
pub fn reconcile_live(
    lp: &Livepatch,
    snapshot_root: &Path,
    target: &[StackEntry],
    progress: &dyn Progress,
) -> Result<(Vec<String>, Vec<String>)> {
    let live: Vec<String> = lp
        .sysfs
        .live_in_load_order()?
        .into_iter()
        .map(|p| p.name)
        .collect();
    let report = |m: &str| progress.message(m);
    let mut loaded = Vec::new();
    let mut removed = Vec::new();
    for t in target {
        if live.contains(&t.name) {
            continue;
        }
        progress.message(&format!("loading livepatch {}", t.name));
        let replaced = load_from_snapshot(lp, snapshot_root, t, &report)?;
        loaded.push(t.name.clone());
        removed.extend(replaced);
    }
    let now: Vec<String> = lp
        .sysfs
        .live_in_load_order()?
        .into_iter()
        .map(|p| p.name)
        .collect();
    for extra in now.iter().rev() {
        if target.iter().any(|t| &t.name == extra) {
            continue;
        }
        progress.message(&format!("disabling livepatch {extra}"));
        lp.disable(extra, &report)?;
        removed.push(extra.clone());
    }
    Ok((loaded, removed))
}

/// Undo of a failed apply or rollback: bring the running kernel back to the
/// set it had before (`before`, in load order). Patches that were live before
/// are reloaded from `base_root`'s boot stack if they were replaced meanwhile;
/// patches live before but unknown to that stack (loaded by other means) are
/// left alone, never removed.
pub fn restore_live(
    lp: &Livepatch,
    base_root: &Path,
    base_stack: &[StackEntry],
    before: &[String],
    progress: &dyn Progress,
) -> Result<()> {
    let target: Vec<StackEntry> = before
        .iter()
        .filter_map(|n| base_stack.iter().find(|s| &s.name == n).cloned())
        .collect();
    let report = |m: &str| progress.message(m);
    for t in &target {
        if lp.sysfs.patch(&t.name)?.is_some_and(|p| p.enabled) {
            continue;
        }
        load_from_snapshot(lp, base_root, t, &report)?;
    }
    let now = lp.sysfs.live_in_load_order()?;
    for p in now.iter().rev() {
        if !before.contains(&p.name) {
            progress.message(&format!("disabling livepatch {}", p.name));
            lp.disable(&p.name, &report)?;
        }
    }
    let missing: Vec<&String> = before
        .iter()
        .filter(|n| !lp.sysfs.patch(n).ok().flatten().is_some_and(|p| p.enabled))
        .collect();
    if !missing.is_empty() {
        crate::bail_kind!(
            FailureKind::UnloadFailed,
            "livepatches live before could not be restored: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Whether the running kernel's enabled set equals `target` (as a set).
pub fn live_matches(lp: &Livepatch, target: &[StackEntry]) -> Result<bool> {
    let mut live: Vec<String> = lp
        .sysfs
        .live_in_load_order()?
        .into_iter()
        .filter(|p| p.enabled && !p.transition)
        .map(|p| p.name)
        .collect();
    let mut want: Vec<String> = target.iter().map(|t| t.name.clone()).collect();
    live.sort();
    want.sort();
    Ok(live == want)
}

const APPLY_STEPS_LIVE: usize = 7;
const APPLY_STEPS_BOOT: usize = 6;

/// How many progress steps an apply announces (`update` counts them ahead).
pub fn apply_step_count(boot_only: bool) -> usize {
    if boot_only {
        APPLY_STEPS_BOOT
    } else {
        APPLY_STEPS_LIVE
    }
}

pub fn apply(
    sys: &System,
    package_path: &Path,
    opts: &ApplyOptions,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<ApplyReport> {
    require_root()?;
    let total = apply_step_count(opts.boot_only);
    let mut step = 0;
    let mut next = |title: &str| {
        step += 1;
        progress.step(step, total, title);
    };

    // 1. Preflight: nothing changes until every check passed.
    next("Checking the package");
    let mut file = std::fs::File::open(package_path).map_err(|e| {
        failure(
            FailureKind::InvalidPackage,
            format!("cannot open {}: {e}", package_path.display()),
        )
    })?;
    let facts: PackageFacts = package::inspect(&file)?;
    let kver = facts.kernel_release.clone();
    let lp = sys.livepatch(kernel);
    if !opts.boot_only {
        lp.require_support()?;
        let running = sys.running_kernel()?;
        if kver != running {
            crate::bail_kind!(
                FailureKind::WrongKernel,
                "{} is built for kernel {kver}, but the running kernel is {running}; use --boot-only to stage it for a kernel that is not running",
                facts.nevra
            );
        }
    }
    let _lock = Lock::acquire(&sys.root, &format!("apply {}", facts.nevra))?;
    let journal = Journal::open(&sys.root)?;
    require_no_open(&journal)?;
    let snaps = sys.snapshots();
    let base = snaps.default_snapshot()?;
    if !base.readonly || base.in_progress {
        crate::bail_kind!(
            FailureKind::InvalidTarget,
            "the default snapshot {} is not a complete read-only snapshot; run `transactional-livepatch recover`",
            base.number
        );
    }
    judge(
        &base,
        &file,
        &facts,
        sys.config.packages.require_signature,
        opts.allow_downgrade,
    )?;

    let live_before = if opts.boot_only {
        Vec::new()
    } else {
        lp.sysfs.enabled_names()?
    };
    let mut entry = journal.begin(Kind::Apply, base.number)?;
    entry.live = !opts.boot_only;
    entry.package = Some(PackageRecord {
        file: opts
            .package_name
            .clone()
            .unwrap_or_else(|| package_path.display().to_string()),
        nevra: facts.nevra.clone(),
        sha256: facts.sha256.clone(),
        kernel_release: kver.clone(),
        modules: facts.modules.iter().map(|m| m.name.clone()).collect(),
    });
    journal.write(&entry)?;
    failpoint!("apply::after-journal");

    let mut new: Option<Snapshot> = None;
    let result = apply_steps(
        sys, &lp, &facts, &mut file, opts, &base, &journal, &mut entry, &mut new, &mut next,
        progress,
    );
    match result {
        Ok(report) => {
            entry.close(&journal, Outcome::Committed, None)?;
            Ok(report)
        }
        Err(err) => {
            // Undo what was done: the running kernel back to the base's set,
            // the new snapshot deleted. The default was never switched (that is
            // the last step), so boot state is as before.
            let mut undo_errors = Vec::new();
            if entry.step >= Step::Sealed && !opts.boot_only {
                let base_stack = initrd::read_stack(&base.path, &kver).unwrap_or_default();
                if let Err(e) = restore_live(&lp, &base.path, &base_stack, &live_before, progress) {
                    undo_errors.push(format!("restoring the running kernel: {e:#}"));
                }
            }
            if let Some(n) = &new
                && let Err(e) = snaps.delete(n.number)
            {
                undo_errors.push(format!("deleting snapshot {}: {e:#}", n.number));
            }
            if undo_errors.is_empty() {
                entry.close(&journal, Outcome::Aborted, Some(&err))?;
            } else {
                // Leave the entry open: `recover` finishes the undo.
                entry.error = Some(format!(
                    "{err:#}; undo incomplete: {}",
                    undo_errors.join("; ")
                ));
                entry.error_kind = Some(crate::error::kind_of(&err));
                journal.write(&entry)?;
            }
            Err(err)
        }
    }
}

/// The checks of a package against the default snapshot `base` that decide
/// whether `apply` goes ahead, in apply's order; changes nothing. Trust comes
/// before anything else about the package is weighed.
fn judge(
    base: &Snapshot,
    file: &std::fs::File,
    facts: &PackageFacts,
    require_signature: bool,
    allow_downgrade: bool,
) -> Result<()> {
    package::signature::check(&base.path, base.number, file, facts, require_signature)?;
    let kver = &facts.kernel_release;
    if !kernel_installed(&base.path, kver) {
        crate::bail_kind!(
            FailureKind::WrongKernel,
            "{} is built for kernel {kver}, which is not installed in the default snapshot {}",
            facts.nevra,
            base.number
        );
    }
    let already = facts
        .modules
        .iter()
        .all(|m| module_sha256(&base.path, &m.path).as_deref() == Some(m.sha256.as_str()));
    if already {
        crate::bail_kind!(
            FailureKind::AlreadyApplied,
            "{} is already in the default snapshot {}",
            facts.nevra,
            base.number
        );
    }
    check_version(base, facts, allow_downgrade)
}

/// What `apply` would find about a package against the default snapshot,
/// found without changing anything (`inspect --against-default`, and the
/// D-Bus `Inspect`): the facts an administrator confirms before applying.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    /// The snapshot the package is judged against (the one apply builds on).
    pub default_snapshot: u32,
    pub running_kernel: String,
    pub livepatch_supported: bool,
    /// The package targets the running kernel: it can be applied live;
    /// otherwise only with boot-only.
    pub for_running_kernel: bool,
    /// "verified" (signed by a key the default snapshot trusts), "unsigned"
    /// (accepted by the configuration) or "refused".
    pub signature: String,
    /// The edition of the same package in the default snapshot, which the
    /// apply replaces (rpm -U).
    pub replaces_package: Option<String>,
    /// The livepatches of that package the default snapshot loads at boot
    /// for the package's kernel: the apply replaces them.
    pub replaces_livepatches: Vec<String>,
    /// Why apply would refuse the package (kind and message), or null when
    /// it would go ahead (boot-only at least; see `for_running_kernel`).
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub kind: String,
    pub message: String,
}

/// Judge the package behind `file` (described by `facts`) as `apply` would,
/// against the default snapshot; a refusal is reported, not returned.
pub fn preview(sys: &System, file: &std::fs::File, facts: &PackageFacts) -> Result<Preview> {
    let base = sys.snapshots().default_snapshot()?;
    let sysfs = sys.sysfs();
    let running = sys.running_kernel()?;
    let refusal = judge(
        &base,
        file,
        facts,
        sys.config.packages.require_signature,
        false,
    )
    .err()
    .map(|e| Refusal {
        kind: crate::error::kind_of(&e).name().to_string(),
        message: format!("{e:#}"),
    });
    let signature = match &refusal {
        Some(r) if r.kind == FailureKind::BadSignature.name() => "refused",
        _ if facts.signed => "verified",
        _ => "unsigned",
    };
    let replaces_package = package::rpmdb::installed(&base.path, &facts.name)?
        .into_iter()
        .max_by(package::rpmdb::compare_evr)
        .map(|evr| evr.to_string());
    let replaces_livepatches = initrd::read_stack(&base.path, &facts.kernel_release)?
        .into_iter()
        .filter(|s| {
            s.package
                .as_deref()
                .and_then(package_name_of_nevra)
                .is_some_and(|n| n == facts.name)
        })
        .map(|s| s.name)
        .collect();
    Ok(Preview {
        default_snapshot: base.number,
        livepatch_supported: sysfs.supported(),
        for_running_kernel: facts.kernel_release == running,
        running_kernel: running,
        signature: signature.to_string(),
        replaces_package,
        replaces_livepatches,
        refusal,
    })
}

/// The name of `name-version-release.arch`.
fn package_name_of_nevra(nevra: &str) -> Option<&str> {
    let mut it = nevra.rsplitn(3, '-');
    let _release_arch = it.next()?;
    let _version = it.next()?;
    it.next().filter(|n| !n.is_empty())
}

/// Compare with the version of the same package in the default snapshot `base`:
/// the same version is already applied; an older one (a cumulative livepatch
/// that would take fixes away) only with `allow_downgrade`. Reads the
/// snapshot's rpm database; changes nothing.
fn check_version(base: &Snapshot, facts: &PackageFacts, allow_downgrade: bool) -> Result<()> {
    use crate::package::rpmdb::{Evr, compare_evr, installed};
    use std::cmp::Ordering;
    let new = Evr {
        epoch: facts.epoch,
        version: facts.version.clone(),
        release: facts.release.clone(),
    };
    let Some(old) = installed(&base.path, &facts.name)?
        .into_iter()
        .max_by(compare_evr)
    else {
        return Ok(());
    };
    match compare_evr(&new, &old) {
        Ordering::Greater => Ok(()),
        Ordering::Equal => Err(failure(
            FailureKind::AlreadyApplied,
            format!(
                "{} {old} is already installed in the default snapshot {}",
                facts.name, base.number
            ),
        )),
        Ordering::Less if allow_downgrade => Ok(()),
        Ordering::Less => Err(failure(
            FailureKind::AlreadyApplied,
            format!(
                "the default snapshot {} has the newer {} {old}; refusing to downgrade to {new} (use --allow-downgrade to apply the older one)",
                base.number, facts.name
            ),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_steps(
    sys: &System,
    lp: &Livepatch,
    facts: &PackageFacts,
    file: &mut std::fs::File,
    opts: &ApplyOptions,
    base: &Snapshot,
    journal: &Journal,
    entry: &mut Entry,
    new_out: &mut Option<Snapshot>,
    next: &mut dyn FnMut(&str),
    progress: &dyn Progress,
) -> Result<ApplyReport> {
    let snaps = sys.snapshots();
    let kver = &facts.kernel_release;

    // 2. Snapshot of the default.
    next(&format!("Creating a snapshot of snapshot {}", base.number));
    let new = snaps.create(
        base,
        &format!("transactional-livepatch apply {}", facts.nevra),
    )?;
    progress.message(&format!("snapshot {} created", new.number));
    *new_out = Some(new.clone());
    entry.target = Some(new.number);
    entry.step(journal, Step::SnapshotCreated)?;
    failpoint!("apply::after-snapshot");

    // 3 + 4 in one chroot session: install, write the boot stack, build the initrd.
    next(&format!(
        "Installing {} in snapshot {}",
        facts.nevra, new.number
    ));
    let env = crate::chroot::ChrootEnv::enter(&new.path, sys.shared_var().as_deref())?;
    let inner_pkg = stage_package(file, &env)?;
    let mut rpm = env.command("rpm");
    rpm.args(["-U", "--quiet"]);
    if opts.allow_downgrade {
        rpm.arg("--oldpackage");
    }
    rpm.arg(&inner_pkg).run_ok().map_err(|e| {
        crate::error::failure_or_no_space(
            FailureKind::InstallFailed,
            format!(
                "installing {} in snapshot {} failed: {e:#}",
                facts.nevra, new.number
            ),
        )
    })?;
    let _ = Root::open(env.root()).and_then(|r| r.remove_file(&inner_pkg));
    // The package's modules go last, in package order: they load after what
    // the snapshot already had.
    let mut stack: Vec<StackEntry> = initrd::read_stack(&new.path, kver)?
        .into_iter()
        .filter(|s| !facts.modules.iter().any(|m| m.name == s.name))
        .collect();
    for m in &facts.modules {
        stack.push(StackEntry {
            name: m.name.clone(),
            path: m.path.clone(),
            package: Some(facts.nevra.clone()),
            cves: Some(facts.cves.clone()),
        });
    }
    initrd::write_stack(&new.path, kver, &stack)?;
    entry.step(journal, Step::Installed)?;
    failpoint!("apply::after-install");

    next("Building the initrd");
    let initrd_path = initrd::initrd_path(&new.path, kver, &sys.config.initrd.path);
    initrd::regenerate(
        &env,
        kver,
        &initrd_path,
        &stack,
        &sys.config.initrd.dracut_args,
    )?;
    env.leave().context("leaving the snapshot")?;
    progress.message(&format!(
        "{initrd_path} verified: it loads {} livepatch(es)",
        stack.len()
    ));
    entry.step(journal, Step::InitrdBuilt)?;
    failpoint!("apply::after-initrd");

    // 5. Seal.
    next(&format!("Sealing snapshot {}", new.number));
    snaps.seal(&new)?;
    entry.step(journal, Step::Sealed)?;
    failpoint!("apply::after-seal");

    // 6. Live.
    let mut loaded = Vec::new();
    let mut replaced = Vec::new();
    if !opts.boot_only {
        next("Loading the livepatch into the running kernel");
        let (l, r) = reconcile_live(lp, &new.path, &stack, progress)?;
        loaded = l;
        replaced = r;
        entry.step(journal, Step::LiveDone)?;
        failpoint!("apply::after-live");
    }

    // 7. Switch the default.
    next(&format!("Making snapshot {} the default", new.number));
    snaps.set_default(&new)?;
    entry.step(journal, Step::DefaultSet)?;
    failpoint!("apply::after-default");

    Ok(ApplyReport {
        transaction: entry.id.clone(),
        package: facts.nevra.clone(),
        base_snapshot: base.number,
        new_snapshot: new.number,
        live: !opts.boot_only,
        loaded,
        replaced,
    })
}

#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    pub target: Option<u32>,
    pub boot_only: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackReport {
    pub transaction: String,
    pub from_snapshot: u32,
    pub to_snapshot: u32,
    pub live: bool,
    pub loaded: Vec<String>,
    pub removed: Vec<String>,
}

/// The snapshot a plain `rollback` returns to: the base of the last committed
/// apply that produced the current default.
pub fn previous_default(journal: &Journal, default: u32) -> Result<Option<u32>> {
    Ok(journal
        .entries()?
        .into_iter()
        .rev()
        .find(|e| {
            e.kind == Kind::Apply && e.outcome == Outcome::Committed && e.target == Some(default)
        })
        .map(|e| e.base))
}

pub fn rollback(
    sys: &System,
    opts: &RollbackOptions,
    kernel: &dyn Kernel,
    progress: &dyn Progress,
) -> Result<RollbackReport> {
    require_root()?;
    let total = if opts.boot_only { 2 } else { 3 };
    progress.step(1, total, "Checking the rollback target");
    let lp = sys.livepatch(kernel);
    if !opts.boot_only {
        lp.require_support()?;
    }
    let _lock = Lock::acquire(&sys.root, "rollback")?;
    let journal = Journal::open(&sys.root)?;
    require_no_open(&journal)?;
    let snaps = sys.snapshots();
    let current = snaps.default_snapshot()?;
    let target_no = match opts.target {
        Some(n) => n,
        None => previous_default(&journal, current.number)?.ok_or_else(|| {
            failure(
                FailureKind::InvalidTarget,
                format!(
                    "no transaction of this tool produced the default snapshot {}; name the snapshot to roll back to",
                    current.number
                ),
            )
        })?,
    };
    let target = snaps.get(target_no)?.ok_or_else(|| {
        failure(
            FailureKind::InvalidTarget,
            format!("snapshot {target_no} does not exist"),
        )
    })?;
    if target.number == current.number {
        crate::bail_kind!(
            FailureKind::InvalidTarget,
            "snapshot {target_no} is already the default"
        );
    }
    if !target.readonly || target.in_progress {
        crate::bail_kind!(
            FailureKind::InvalidTarget,
            "snapshot {target_no} is not a complete read-only snapshot"
        );
    }
    let running = sys.running_kernel()?;
    let live_before = if opts.boot_only {
        Vec::new()
    } else {
        lp.sysfs.enabled_names()?
    };
    let mut entry = journal.begin(Kind::Rollback, current.number)?;
    entry.target = Some(target.number);
    entry.live = !opts.boot_only;
    journal.write(&entry)?;
    failpoint!("rollback::after-journal");

    let result = (|| -> Result<RollbackReport> {
        let mut loaded = Vec::new();
        let mut removed = Vec::new();
        if !opts.boot_only {
            progress.step(2, total, "Changing the running kernel's livepatches");
            let stack = initrd::read_stack(&target.path, &running)?;
            let (l, r) = reconcile_live(&lp, &target.path, &stack, progress)?;
            loaded = l;
            removed = r;
            entry.step(&journal, Step::LiveDone)?;
            failpoint!("rollback::after-live");
        }
        progress.step(
            total,
            total,
            &format!("Making snapshot {} the default", target.number),
        );
        snaps.set_default(&target)?;
        entry.step(&journal, Step::DefaultSet)?;
        failpoint!("rollback::after-default");
        Ok(RollbackReport {
            transaction: entry.id.clone(),
            from_snapshot: current.number,
            to_snapshot: target.number,
            live: !opts.boot_only,
            loaded,
            removed,
        })
    })();
    match result {
        Ok(r) => {
            entry.close(&journal, Outcome::Committed, None)?;
            Ok(r)
        }
        Err(err) => {
            // Put the running kernel back to what it ran before.
            let mut undo_ok = true;
            if !opts.boot_only {
                let stack = initrd::read_stack(&current.path, &running).unwrap_or_default();
                if let Err(e) = restore_live(&lp, &current.path, &stack, &live_before, progress) {
                    undo_ok = false;
                    entry.error = Some(format!(
                        "{err:#}; restoring the running kernel failed: {e:#}"
                    ));
                }
            }
            if undo_ok {
                entry.close(&journal, Outcome::Aborted, Some(&err))?;
            } else {
                entry.error_kind = Some(crate::error::kind_of(&err));
                journal.write(&entry)?;
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn package_names_of_nevras() {
        assert_eq!(
            super::package_name_of_nevra("kernel-livepatch-6_1_0-1-default-3-2.1.x86_64"),
            Some("kernel-livepatch-6_1_0-1-default")
        );
        assert_eq!(
            super::package_name_of_nevra("tlp-livepatch-simple-1-1.x86_64"),
            Some("tlp-livepatch-simple")
        );
        assert_eq!(super::package_name_of_nevra("1-1.x86_64"), None);
        assert_eq!(super::package_name_of_nevra("-1-1.x86_64"), None);
    }

    use super::*;
    use crate::livepatch::fake::{Behaviour, FakeKernel, fast, module_file, setup};

    struct Quiet;
    impl Progress for Quiet {
        fn step(&self, _: usize, _: usize, _: &str) {}
        fn message(&self, _: &str) {}
    }

    /// Progress that lets the fake kernel finish reverse transitions, which
    /// the real kernel does on its own while we wait and report.
    struct Settle<'a>(&'a FakeKernel);
    impl Progress for Settle<'_> {
        fn step(&self, _: usize, _: usize, _: &str) {}
        fn message(&self, _: &str) {
            self.0.settle_disables();
        }
    }

    /// A snapshot root holding module files, and stack entries pointing at them.
    fn stack(root: &Path, names: &[&str]) -> Vec<StackEntry> {
        let dir = root.join("lib/modules/k/livepatch");
        std::fs::create_dir_all(&dir).unwrap();
        names
            .iter()
            .map(|n| {
                let f = module_file(&dir, n);
                assert!(f.exists());
                StackEntry {
                    name: n.to_string(),
                    path: format!("/lib/modules/k/livepatch/{n}.ko"),
                    package: None,
                    cves: None,
                }
            })
            .collect()
    }

    fn lp<'k>(root: &Path, k: &'k FakeKernel) -> Livepatch<'k> {
        Livepatch {
            sysfs: crate::livepatch::Sysfs::new(root),
            kernel: k,
            timing: fast(),
        }
    }

    #[test]
    fn stacked_rollback_disables_the_extra_patch_only() {
        let (d, k) = setup(Behaviour::Immediate, false);
        k.add_patch("tlp_stack_a", false);
        k.add_patch("tlp_stack_b", false);
        let snap = tempfile::tempdir().unwrap();
        let target = stack(snap.path(), &["tlp_stack_a"]);
        let lp = lp(d.path(), &k);
        let (loaded, removed) = reconcile_live(&lp, snap.path(), &target, &Settle(&k)).unwrap();
        assert!(loaded.is_empty());
        assert_eq!(removed, ["tlp_stack_b"]);
        assert_eq!(lp.sysfs.enabled_names().unwrap(), ["tlp_stack_a"]);
        assert!(live_matches(&lp, &target).unwrap());
    }

    #[test]
    fn cumulative_downgrade_loads_the_older_one_which_replaces() {
        let (d, k) = setup(Behaviour::Immediate, true);
        k.add_patch("tlp_cumul_2", false);
        let snap = tempfile::tempdir().unwrap();
        let target = stack(snap.path(), &["tlp_cumul_1"]);
        let lp = lp(d.path(), &k);
        let (loaded, removed) = reconcile_live(&lp, snap.path(), &target, &Quiet).unwrap();
        assert_eq!(loaded, ["tlp_cumul_1"]);
        assert_eq!(removed, ["tlp_cumul_2"]);
        assert_eq!(*k.unloaded.borrow(), ["tlp_cumul_2"]);
        assert!(live_matches(&lp, &target).unwrap());
    }

    #[test]
    fn restore_after_failed_apply_returns_the_previous_set() {
        // Before: a patch the base snapshot boots, plus one loaded by hand.
        let (d, k) = setup(Behaviour::Immediate, false);
        k.add_patch("tlp_simple", false);
        k.add_patch("manual_patch", false);
        let before = vec!["tlp_simple".to_string(), "manual_patch".to_string()];
        let base = tempfile::tempdir().unwrap();
        let base_stack = stack(base.path(), &["tlp_simple"]);
        // The failed apply had loaded a new one.
        k.add_patch("tlp_new", false);
        let lp = lp(d.path(), &k);
        restore_live(&lp, base.path(), &base_stack, &before, &Settle(&k)).unwrap();
        let mut now = lp.sysfs.enabled_names().unwrap();
        now.sort();
        assert_eq!(now, ["manual_patch", "tlp_simple"]);
        assert_eq!(*k.unloaded.borrow(), ["tlp_new"]);
    }
}
