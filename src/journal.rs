//! The transaction journal and the lock.
//!
//! Both live on the shared `/var` subvolume (`/var/lib/transactional-livepatch`),
//! so they survive a rollback of the root: the history of what was done must not
//! roll back with the system. One JSON file per transaction, replaced atomically
//! (write, fsync, rename, fsync the directory) at every step, so after a crash
//! the file says which step was reached. The directory is 0700 and files 0600.

use crate::error::{FailureKind, failure};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::format_description::BorrowedFormatItem;

pub const STATE_DIR: &str = "var/lib/transactional-livepatch";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Apply,
    Rollback,
    /// An automatic `update` run (the timer): what it found and did. Written
    /// closed, in one go; an apply it made has its own `apply` entry.
    Update,
}

/// How far a transaction got. Order matters: later steps compare greater.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Entry written, nothing changed yet.
    Started,
    /// The new read-write snapshot exists.
    SnapshotCreated,
    /// The package is installed in the snapshot.
    Installed,
    /// The new initrd is in place and verified.
    InitrdBuilt,
    /// The snapshot is read-only and complete.
    Sealed,
    /// The running kernel was changed (patches loaded or removed).
    LiveDone,
    /// The default subvolume points at the target.
    DefaultSet,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Still running, or interrupted: `recover` must look at it.
    Open,
    Committed,
    /// Undone: the system is in the state before the transaction.
    Aborted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PackageRecord {
    pub file: String,
    pub nevra: String,
    pub sha256: String,
    pub kernel_release: String,
    pub modules: Vec<String>,
}

/// The outcome of an automatic update run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    /// Nothing newer in the repositories.
    UpToDate,
    /// Something newer is there; policy "check" left it alone.
    Available,
    /// Something newer was applied (see `transactions`).
    Applied,
    /// The run failed (see `error`); nothing, or only what `transactions`
    /// lists, was changed.
    Failed,
}

/// One package an update run looked at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpdatePackage {
    pub name: String,
    /// Edition in the default snapshot.
    pub installed: Option<String>,
    /// Newest edition in the repositories.
    pub available: Option<String>,
    #[serde(default)]
    pub cves: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpdateRecord {
    /// Started by the timer (`update --automatic`) rather than by hand.
    pub automatic: bool,
    /// "apply" or "check".
    pub policy: String,
    pub result: UpdateResult,
    #[serde(default)]
    pub packages: Vec<UpdatePackage>,
    /// The apply transactions the run made.
    #[serde(default)]
    pub transactions: Vec<String>,
}

impl UpdateRecord {
    /// One line for `list` and `status`.
    pub fn describe(&self) -> String {
        let who = if self.automatic { "automatic " } else { "" };
        let what = |p: &UpdatePackage| match (&p.installed, &p.available) {
            (Some(i), Some(a)) if i != a => format!("{} {i} -> {a}", p.name),
            (_, Some(a)) => format!("{} {a}", p.name),
            (Some(i), None) => format!("{} {i}", p.name),
            (None, None) => format!("{} (none)", p.name),
        };
        let pkgs: Vec<String> = self.packages.iter().map(what).collect();
        let result = match self.result {
            UpdateResult::UpToDate => "up to date",
            UpdateResult::Available => "update available",
            UpdateResult::Applied => "applied",
            UpdateResult::Failed => "failed",
        };
        let mut s = format!("{who}update ({}): {result}", self.policy);
        if !pkgs.is_empty() {
            s.push_str(&format!(" [{}]", pkgs.join(", ")));
        }
        s
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub id: String,
    pub kind: Kind,
    pub started: String,
    pub finished: Option<String>,
    /// Snapshot number that was the default when the transaction began.
    pub base: u32,
    /// Snapshot number the transaction makes the default (new for apply).
    pub target: Option<u32>,
    pub package: Option<PackageRecord>,
    /// Whether the running kernel is part of the transaction.
    pub live: bool,
    pub step: Step,
    pub outcome: Outcome,
    /// Set when `recover` closed the entry instead of the process that opened it.
    #[serde(default)]
    pub recovered: bool,
    pub error: Option<String>,
    pub error_kind: Option<FailureKind>,
    /// For `update` entries: what the run found and did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateRecord>,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

/// Journal ids start with the UTC time in this form, so they sort by time.
pub const ID_STAMP: &[BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]");

/// The current UTC time in `format`, the one place stamps are made from the
/// clock (journal ids, snapper's info.xml dates).
pub fn utc_now(format: &[BorrowedFormatItem<'_>]) -> String {
    time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_else(|_| "unknown".into())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Write `bytes` to `path` atomically and durably, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let start = std::time::Instant::now();
    let dir = path.parent().context("path without parent")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    fsync_dir(dir)?;
    // bench/run.sh sums these (the durable writes of journal and metadata).
    tracing::debug!(
        path = %path.display(),
        elapsed_ms = start.elapsed().as_secs_f64() * 1000.0,
        "written durably"
    );
    Ok(())
}

pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// The journal of the system mounted at `root`, creating its directory.
    pub fn open(root: &Path) -> Result<Journal> {
        let state = root.join(STATE_DIR);
        let dir = state.join("transactions");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        for d in [&state, &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", d.display()))?;
        }
        Ok(Journal { dir })
    }

    /// Read-only view; a missing journal reads as empty.
    pub fn open_readonly(root: &Path) -> Journal {
        Journal {
            dir: root.join(STATE_DIR).join("transactions"),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn write(&self, entry: &Entry) -> Result<()> {
        let text = serde_json::to_vec_pretty(entry)?;
        write_atomic(&self.path(&entry.id), &text)
            .with_context(|| format!("recording transaction {}", entry.id))
    }

    /// A new entry with a unique, time-ordered id.
    pub fn begin(&self, kind: Kind, base: u32) -> Result<Entry> {
        let entry = self.fresh(kind, base);
        self.write(&entry)?;
        Ok(entry)
    }

    /// Write a finished entry in one go (never seen open): for records of
    /// runs that change nothing themselves, like an automatic update run.
    /// Call with the lock held (ids are unique among lock holders).
    pub fn record(
        &self,
        kind: Kind,
        base: u32,
        outcome: Outcome,
        error: Option<&anyhow::Error>,
        fill: impl FnOnce(&mut Entry),
    ) -> Result<Entry> {
        let mut entry = self.fresh(kind, base);
        fill(&mut entry);
        entry.outcome = outcome;
        entry.finished = Some(now_rfc3339());
        if let Some(e) = error {
            entry.error = Some(format!("{e:#}"));
            entry.error_kind = Some(crate::error::kind_of(e));
        }
        self.write(&entry)?;
        Ok(entry)
    }

    fn fresh(&self, kind: Kind, base: u32) -> Entry {
        let stamp = utc_now(ID_STAMP);
        let mut n = 0;
        let id = loop {
            let id = format!("{stamp}-{n:03}");
            if !self.path(&id).exists() {
                break id;
            }
            n += 1;
        };
        Entry {
            id,
            kind,
            started: now_rfc3339(),
            finished: None,
            base,
            target: None,
            package: None,
            live: false,
            step: Step::Started,
            outcome: Outcome::Open,
            recovered: false,
            error: None,
            error_kind: None,
            update: None,
        }
    }

    /// Every entry, oldest first. Unreadable files are reported, not skipped.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let p = e?.path();
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            let entry: Entry =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
            out.push(entry);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Delete all but the newest `keep` entries that `repeats` selects: a
    /// bound for records that say the same again (up-to-date update runs).
    /// Call with the lock held. Returns how many were deleted.
    pub fn prune(&self, keep: usize, repeats: impl Fn(&Entry) -> bool) -> Result<usize> {
        let entries = self.entries()?;
        let hits: Vec<&Entry> = entries.iter().filter(|e| repeats(e)).collect();
        let excess = hits.len().saturating_sub(keep);
        for e in &hits[..excess] {
            let p = self.path(&e.id);
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        if excess > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(excess)
    }

    pub fn open_entries(&self) -> Result<Vec<Entry>> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.outcome == Outcome::Open)
            .collect())
    }
}

impl Entry {
    /// The record of an automatic update run that found nothing new: the
    /// kind `update` prunes (see [`Journal::prune`]).
    pub fn is_up_to_date_run(&self) -> bool {
        self.kind == Kind::Update
            && self.outcome == Outcome::Committed
            && self
                .update
                .as_ref()
                .is_some_and(|u| u.automatic && u.result == UpdateResult::UpToDate)
    }

    pub fn step(&mut self, journal: &Journal, step: Step) -> Result<()> {
        self.step = step;
        journal.write(self)
    }

    pub fn close(
        &mut self,
        journal: &Journal,
        outcome: Outcome,
        error: Option<&anyhow::Error>,
    ) -> Result<()> {
        self.outcome = outcome;
        self.finished = Some(now_rfc3339());
        if let Some(e) = error {
            self.error = Some(format!("{e:#}"));
            self.error_kind = Some(crate::error::kind_of(e));
        }
        journal.write(self)
    }
}

/// The exclusive transaction lock, shared by the CLI and the daemon (which runs
/// changing operations through this same library). Held until dropped; the
/// kernel releases it if the process dies.
pub struct Lock {
    _file: nix::fcntl::Flock<File>,
}

impl Lock {
    pub fn acquire(root: &Path, what: &str) -> Result<Lock> {
        let dir = root.join(STATE_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut locked =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                    // The holder names itself right after it took the lock:
                    // give it a moment, so the message names it.
                    let mut holder = String::new();
                    for _ in 0..40 {
                        holder = std::fs::read_to_string(&path).unwrap_or_default();
                        if !holder.trim().is_empty() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    if holder.trim().is_empty() {
                        holder = "holder unknown".into();
                    }
                    drop(file);
                    return Err(failure(
                        FailureKind::Busy,
                        format!(
                            "another transaction is running ({}); try again when it has finished",
                            holder.trim()
                        ),
                    ));
                }
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            };
        // Say who holds it, for the Busy message of the next caller.
        locked.set_len(0).ok();
        let _ = writeln!(
            &mut *locked,
            "{what}, pid {}, since {}",
            std::process::id(),
            now_rfc3339()
        );
        Ok(Lock { _file: locked })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that finds the lock taken names the holder, also when it
    /// comes in between the holder's lock and its name.
    #[test]
    fn busy_names_the_holder_even_right_after_it_locked() {
        let d = tempfile::tempdir().unwrap();
        let held = Lock::acquire(d.path(), "apply x").unwrap();
        let busy = |d: &Path| match Lock::acquire(d, "apply y") {
            Ok(_) => panic!("the lock was taken twice"),
            Err(e) => format!("{e:#}"),
        };
        let msg = busy(d.path());
        assert!(msg.contains("(apply x, pid "), "{msg}");
        // Locked, its name not written yet: written 30 ms later.
        let path = d.path().join(STATE_DIR).join("lock");
        drop(held);
        let file = File::options().write(true).open(&path).unwrap();
        let locked =
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
        locked.set_len(0).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let mut locked = locked;
            writeln!(&mut *locked, "rollback, pid 7").unwrap();
            locked
        });
        let msg = busy(d.path());
        assert!(msg.contains("(rollback, pid 7)"), "{msg}");
        // A holder that never says who it is.
        let locked = writer.join().unwrap();
        locked.set_len(0).unwrap();
        let msg = busy(d.path());
        assert!(msg.contains("(holder unknown)"), "{msg}");
    }

    #[test]
    fn entries_roundtrip_and_stay_private() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let mut e = j.begin(Kind::Apply, 1).unwrap();
        e.target = Some(2);
        e.step(&j, Step::SnapshotCreated).unwrap();
        let e2 = j.begin(Kind::Rollback, 2).unwrap();
        assert_ne!(e.id, e2.id);
        // Time-ordered ids: "20261123T103000-000".
        let shape: String =
            e.id.chars()
                .map(|c| if c.is_ascii_digit() { '9' } else { c })
                .collect();
        assert_eq!(shape, "99999999T999999-999", "{}", e.id);
        let all = j.entries().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].step, Step::SnapshotCreated);
        assert_eq!(j.open_entries().unwrap().len(), 2);
        e.close(&j, Outcome::Committed, None).unwrap();
        assert_eq!(j.open_entries().unwrap().len(), 1);
        let mode = std::fs::metadata(j.path(&e.id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&j.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn closing_with_error_records_kind() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let mut e = j.begin(Kind::Apply, 1).unwrap();
        let err = failure(FailureKind::InitrdFailed, "dracut failed");
        e.close(&j, Outcome::Aborted, Some(&err)).unwrap();
        let back = &j.entries().unwrap()[0];
        assert_eq!(back.error_kind, Some(FailureKind::InitrdFailed));
        assert_eq!(back.error.as_deref(), Some("dracut failed"));
    }

    #[test]
    fn update_records_and_old_entries_read_back() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let rec = UpdateRecord {
            automatic: true,
            policy: "check".into(),
            result: UpdateResult::Available,
            packages: vec![UpdatePackage {
                name: "kernel-livepatch-x".into(),
                installed: Some("1-1".into()),
                available: Some("2-1".into()),
                cves: vec!["CVE-2026-0002".into()],
            }],
            transactions: vec![],
        };
        let e = j
            .record(Kind::Update, 3, Outcome::Committed, None, |e| {
                e.update = Some(rec.clone())
            })
            .unwrap();
        assert!(j.open_entries().unwrap().is_empty());
        let back = &j.entries().unwrap()[0];
        assert_eq!(back.id, e.id);
        assert_eq!(back.kind, Kind::Update);
        assert_eq!(back.update.as_ref(), Some(&rec));
        assert_eq!(
            rec.describe(),
            "automatic update (check): update available [kernel-livepatch-x 1-1 -> 2-1]"
        );
        // An entry written before update records existed still reads.
        let old = r#"{"id":"20260101T000000-000","kind":"apply","started":"x","finished":"y","base":1,"target":2,"package":null,"live":false,"step":"default-set","outcome":"committed","error":null,"error_kind":null}"#;
        std::fs::write(j.path("20260101T000000-000"), old).unwrap();
        let all = j.entries().unwrap();
        assert_eq!(all[0].kind, Kind::Apply);
        assert_eq!(all[0].update, None);
        // and an apply entry written now has no `update` key at all.
        let text = serde_json::to_string(&all[0]).unwrap();
        assert!(!text.contains("\"update\""), "{text}");
    }

    #[test]
    fn second_lock_is_busy() {
        let d = tempfile::tempdir().unwrap();
        let first = Lock::acquire(d.path(), "apply x").unwrap();
        let e = Lock::acquire(d.path(), "apply y").err().unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::Busy);
        assert!(e.to_string().contains("apply x"), "{e}");
        drop(first);
        Lock::acquire(d.path(), "apply z").unwrap();
    }
}
