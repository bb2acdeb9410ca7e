//! The D-Bus service (`transactional-livepatch daemon`), for Cockpit and any
//! other admin tool: everything the CLI does, over the system bus.
//!
//! - Bus name [`BUS_NAME`], object [`OBJECT_PATH`] with the interface
//!   `org.opensuse.TransactionalLivepatch1.Manager`; each changing call returns at
//!   once a transaction object below [`TRANSACTION_PATH`] with the interface
//!   `org.opensuse.TransactionalLivepatch1.Transaction` that reports progress
//!   by signals. The interface XML is dbus/org.opensuse.TransactionalLivepatch1.xml.
//! - Changing calls are authorized by polkit for the caller ([`polkit`]); one
//!   transaction runs at a time, a second call gets `…Error.Busy` naming it.
//! - Started by bus activation; exits after an idle time without calls or a
//!   running transaction. SIGTERM waits for a running transaction to end.

pub mod error;
pub mod manager;
pub mod polkit;
pub mod transaction;

use crate::error::FailureKind;
use crate::status::Status;
use anyhow::{Context, Result};
use error::DaemonError;
use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use transaction::{Operation, Transaction};
use zbus::names::UniqueName;
use zbus::{Connection, OwnedObjectPath};

pub const BUS_NAME: &str = "org.opensuse.TransactionalLivepatch1";
pub const OBJECT_PATH: &str = "/org/opensuse/TransactionalLivepatch1";
pub const TRANSACTION_PATH: &str = "/org/opensuse/TransactionalLivepatch1/Transaction";
pub const MANAGER_INTERFACE: &str = "org.opensuse.TransactionalLivepatch1.Manager";
pub const TRANSACTION_INTERFACE: &str = "org.opensuse.TransactionalLivepatch1.Transaction";

/// Where a client with administrative access (Cockpit, as root) uploads a
/// package for Inspect and Apply, below the managed root: root-only (0700), on
/// the shared /var so that every snapshot sees the same. The daemon removes a
/// spooled package when the Apply of it has finished, and at start any
/// spooled file older than [`SPOOL_MAX_AGE`] (an upload nobody applied).
pub const SPOOL_DIR: &str = "var/lib/transactional-livepatch/spool";
const SPOOL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The spool directory of the system at `root`.
pub fn spool_dir(root: &std::path::Path) -> PathBuf {
    root.join(SPOOL_DIR)
}

/// Whether `package` names a file directly in the spool of `root`.
pub fn in_spool(root: &std::path::Path, package: &std::path::Path) -> bool {
    package.parent() == Some(spool_dir(root).as_path())
        && package
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// Create the spool if needed (0700 root) and drop stale uploads. A spool
/// that is not a root-owned directory reachable without a symlink is left
/// alone and reported: nothing is ever removed through it.
fn prepare_spool(root: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = spool_dir(root);
    let state = dir.parent().context("spool parent")?;
    if !root.join("var").is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state)
        .with_context(|| format!("creating {}", state.display()))?;
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta =
        std::fs::symlink_metadata(&dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} is not a directory of root's with mode 0700; uploads through it are not served",
            dir.display()
        );
    }
    for e in std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
    {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        let old = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > SPOOL_MAX_AGE);
        if m.is_file() && old {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!("removed the stale upload {}", e.path().display()),
                Err(err) => tracing::warn!("removing {}: {err}", e.path().display()),
            }
        }
    }
    Ok(())
}

/// Finished transaction objects kept for late readers; older ones are removed.
const KEEP_FINISHED: usize = 10;
/// How long a status read serves later property reads.
const STATUS_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub root: PathBuf,
    pub kernel_root: PathBuf,
    pub config: Option<PathBuf>,
    /// Exit after this long without a call or a running transaction (None: never).
    pub idle_exit: Option<Duration>,
}

struct Active {
    path: OwnedObjectPath,
    description: String,
}

struct State {
    next: u64,
    active: Option<Active>,
    finished: VecDeque<OwnedObjectPath>,
    last_activity: Instant,
    /// Set when the daemon decided to exit: no new transaction starts.
    stopping: bool,
    status: Option<(Instant, Arc<Status>)>,
    /// Method calls that run a child and answer when it ends (Inspect,
    /// CheckUpdates): the idle exit waits for them as for a transaction.
    calls: usize,
}

/// What the interfaces and the transactions share.
pub struct Shared {
    pub opts: DaemonOptions,
    state: Mutex<State>,
    /// Woken when a transaction ends.
    ended: tokio::sync::Notify,
}

impl Shared {
    fn new(opts: DaemonOptions) -> Shared {
        Shared {
            opts,
            state: Mutex::new(State {
                next: 1,
                active: None,
                finished: VecDeque::new(),
                last_activity: Instant::now(),
                stopping: false,
                status: None,
                calls: 0,
            }),
            ended: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the service down with a poisoned lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call arrived: the idle time starts over.
    pub fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    /// A long call begins; the idle time starts over when it ends (the guard drops).
    pub fn call_guard(self: &Arc<Self>) -> CallGuard {
        let mut st = self.lock();
        st.calls += 1;
        st.last_activity = Instant::now();
        CallGuard(self.clone())
    }

    pub fn active_path(&self) -> OwnedObjectPath {
        self.lock()
            .active
            .as_ref()
            .map(|a| a.path.clone())
            .unwrap_or_else(|| OwnedObjectPath::try_from("/").expect("root path"))
    }

    /// The status, read at most every [`STATUS_TTL`] (property reads come in bursts).
    pub async fn status(&self) -> Result<Arc<Status>, DaemonError> {
        if let Some((at, s)) = &self.lock().status
            && at.elapsed() < STATUS_TTL
        {
            return Ok(s.clone());
        }
        let opts = self.opts.clone();
        let s = tokio::task::spawn_blocking(move || -> Result<Status> {
            let sys =
                crate::system::System::new(&opts.root, &opts.kernel_root, opts.config.as_deref())?;
            crate::status::status(&sys)
        })
        .await
        .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))?
        .map_err(|e| DaemonError::from_anyhow(&e))?;
        let s = Arc::new(s);
        self.lock().status = Some((Instant::now(), s.clone()));
        Ok(s)
    }

    /// Claim the one transaction slot and start `op` in it.
    async fn start(
        self: &Arc<Self>,
        conn: &Connection,
        op: Operation,
        caller: &UniqueName<'_>,
        package: Option<File>,
    ) -> Result<OwnedObjectPath, DaemonError> {
        let path = {
            let mut st = self.lock();
            if let Some(a) = &st.active {
                return Err(DaemonError::new(
                    FailureKind::Busy,
                    format!(
                        "transaction {} ({}) is running; try again when it has finished",
                        a.path.as_str(),
                        a.description
                    ),
                ));
            }
            if st.stopping {
                return Err(DaemonError::new(
                    FailureKind::Busy,
                    "the service is exiting; call again to start it anew",
                ));
            }
            // The CLI may hold the transaction lock: say so now rather than
            // in a transaction that fails at once.
            drop(
                crate::journal::Lock::acquire(&self.opts.root, "transactional-livepatch daemon")
                    .map_err(|e| DaemonError::from_anyhow(&e))?,
            );
            let path = OwnedObjectPath::try_from(format!("{TRANSACTION_PATH}/{}", st.next))
                .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))?;
            st.next += 1;
            st.active = Some(Active {
                path: path.clone(),
                description: op.describe(),
            });
            st.last_activity = Instant::now();
            path
        };
        let release = |e: zbus::Error| {
            self.lock().active = None;
            DaemonError::from(e)
        };
        let server = conn.object_server();
        server
            .at(&path, Transaction::new(&op, caller.as_str()))
            .await
            .map_err(release)?;
        let iface = server
            .interface::<_, Transaction>(&path)
            .await
            .map_err(release)?;
        tracing::info!("{}: {} for {caller}", path.as_str(), op.describe());
        tokio::spawn(transaction::run(
            self.clone(),
            conn.clone(),
            iface,
            op,
            package,
        ));
        manager::state_changed(conn).await;
        Ok(path)
    }

    /// The transaction at `path` has ended: free the slot, keep its object
    /// for late readers, drop the oldest ones.
    async fn finish(&self, conn: &Connection, path: &zbus::ObjectPath<'_>) {
        let expired: Vec<OwnedObjectPath> = {
            let mut st = self.lock();
            st.active = None;
            st.status = None;
            st.last_activity = Instant::now();
            st.finished.push_back(path.to_owned().into());
            let n = st.finished.len().saturating_sub(KEEP_FINISHED);
            st.finished.drain(..n).collect()
        };
        for p in expired {
            let _ = conn.object_server().remove::<Transaction, _>(&p).await;
        }
        self.ended.notify_waiters();
        manager::state_changed(conn).await;
    }

    /// If idle long enough, mark the daemon stopping (atomically with the check).
    fn stop_if_idle(&self) -> bool {
        let Some(idle) = self.opts.idle_exit else {
            return false;
        };
        let mut st = self.lock();
        if st.active.is_none() && st.calls == 0 && st.last_activity.elapsed() >= idle {
            st.stopping = true;
        }
        st.stopping
    }

    /// Refuse new transactions and wait for the running one to end.
    async fn drain(&self) {
        loop {
            let ended = self.ended.notified();
            {
                let mut st = self.lock();
                st.stopping = true;
                if st.active.is_none() {
                    return;
                }
            }
            ended.await;
        }
    }
}

/// A running long call (see [`Shared::call_guard`]).
pub struct CallGuard(Arc<Shared>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.calls -= 1;
        st.last_activity = Instant::now();
    }
}

/// The bus this daemon serves: the one that activated it, else the system bus
/// (`DBUS_SYSTEM_BUS_ADDRESS` or the standard socket).
fn bus() -> zbus::connection::Builder<'static> {
    match std::env::var("DBUS_STARTER_ADDRESS") {
        Ok(a) if !a.is_empty() => zbus::connection::Builder::address(a.as_str()),
        _ => zbus::connection::Builder::system(),
    }
}

/// Run the service until it is idle (or told to stop).
pub fn serve(opts: DaemonOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve_async(opts))
}

async fn serve_async(opts: DaemonOptions) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if let Err(e) = prepare_spool(&opts.root) {
        tracing::warn!("the upload spool: {e:#}");
    }
    let shared = Arc::new(Shared::new(opts));
    let manager = manager::Manager {
        shared: shared.clone(),
    };
    let conn = bus()
        .serve_at(OBJECT_PATH, manager)
        .name(BUS_NAME)
        .build()
        .await
        .with_context(|| format!("connecting to the bus as {BUS_NAME}"))?;
    tracing::info!(
        "serving {BUS_NAME} on {}",
        conn.unique_name().map(|n| n.as_str()).unwrap_or("?")
    );
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if shared.stop_if_idle() {
                    tracing::info!("idle: exiting");
                    break;
                }
            }
            _ = conn.closed() => { tracing::warn!("the bus connection closed: exiting after the running transaction"); break; }
            _ = term.recv() => { tracing::info!("SIGTERM: exiting after the running transaction"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: exiting after the running transaction"); break; }
        }
    }
    shared.drain().await;
    if !conn.is_closed() {
        // Give up the name first: a call from now on activates a new instance.
        let _ = conn.release_name(BUS_NAME).await;
        conn.graceful_shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A long call (CheckUpdates refreshing slow repositories) keeps the
    /// service from exiting idle under it; when it ends the idle time
    /// starts over.
    #[test]
    fn the_idle_exit_waits_for_long_calls() {
        let shared = Arc::new(Shared::new(DaemonOptions {
            root: "/nonexistent".into(),
            kernel_root: "/".into(),
            config: None,
            idle_exit: Some(Duration::from_millis(20)),
        }));
        let call = shared.call_guard();
        std::thread::sleep(Duration::from_millis(40));
        assert!(!shared.stop_if_idle(), "exited under a running call");
        drop(call);
        assert!(!shared.stop_if_idle(), "the idle time did not start over");
        std::thread::sleep(Duration::from_millis(40));
        assert!(shared.stop_if_idle());
    }

    #[test]
    fn only_files_directly_in_the_spool_are_spooled() {
        let root = Path::new("/sysroot");
        let spool = "/sysroot/var/lib/transactional-livepatch/spool";
        assert!(in_spool(root, Path::new(&format!("{spool}/upload-1.rpm"))));
        assert!(!in_spool(root, Path::new(&format!("{spool}/.hidden.rpm"))));
        assert!(!in_spool(root, Path::new(&format!("{spool}/../lock"))));
        assert!(!in_spool(root, Path::new(&format!("{spool}/sub/x.rpm"))));
        assert!(!in_spool(
            root,
            Path::new("/var/lib/transactional-livepatch/spool/x.rpm")
        ));
        assert!(!in_spool(root, Path::new(spool)));
    }
}
