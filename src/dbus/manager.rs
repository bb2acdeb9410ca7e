//! The service's root object: read-only state for anyone, changing operations
//! for whom polkit authorizes.

use super::error::DaemonError;
use super::polkit;
use super::transaction::Operation;
use super::{OBJECT_PATH, Shared};
use crate::error::FailureKind;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedObjectPath, OwnedVariant, fdo, interface};

pub struct Manager {
    pub(super) shared: Arc<Shared>,
}

type Options = HashMap<String, OwnedVariant>;

fn usage(msg: String) -> DaemonError {
    DaemonError::new(FailureKind::Usage, msg)
}

/// Check `options` against the keys a method knows.
fn check_keys(options: &Options, known: &[&str]) -> Result<(), DaemonError> {
    for k in options.keys() {
        if !known.contains(&k.as_str()) {
            return Err(usage(format!(
                "unknown option \"{k}\" (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn bool_option(options: &Options, key: &str) -> Result<bool, DaemonError> {
    match options.get(key) {
        None => Ok(false),
        Some(v) => {
            bool::try_from(v).map_err(|_| usage(format!("option \"{key}\" must be a boolean (b)")))
        }
    }
}

fn u32_option(options: &Options, key: &str) -> Result<Option<u32>, DaemonError> {
    match options.get(key) {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| usage(format!("option \"{key}\" must be an unsigned integer (u)"))),
    }
}

/// Open the package the caller named, once, for the child to read through
/// this handle. Only a regular file reached without a symlink as its last
/// component is accepted; O_NONBLOCK keeps a FIFO from blocking the open.
pub fn open_package(path: &Path) -> Result<File, DaemonError> {
    use std::os::unix::fs::OpenOptionsExt;
    let invalid = |m: String| DaemonError::new(FailureKind::InvalidPackage, m);
    if !path.is_absolute() {
        return Err(invalid(format!(
            "the package path must be absolute: {}",
            path.display()
        )));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => invalid(format!(
                "{} is a symbolic link; name the package file itself",
                path.display()
            )),
            _ => invalid(format!("cannot open {}: {e}", path.display())),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| invalid(format!("cannot stat {}: {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(invalid(format!("{} is not a regular file", path.display())));
    }
    Ok(file)
}

/// The sender of the call `hdr`, once polkit has authorized it for `action`.
async fn authorized_caller(
    hdr: &Header<'_>,
    conn: &Connection,
    action: &str,
) -> Result<zbus::names::UniqueName<'static>, DaemonError> {
    let sender = hdr
        .sender()
        .ok_or_else(|| DaemonError::new(FailureKind::NotAuthorized, "call without a sender"))?
        .to_owned();
    polkit::authorize(conn, &sender, action).await?;
    Ok(sender)
}

impl Manager {
    /// Authorize the caller, then start `op` as a transaction.
    async fn start(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        action: &str,
        op: Operation,
    ) -> Result<OwnedObjectPath, DaemonError> {
        self.shared.touch();
        let sender = authorized_caller(hdr, conn, action).await?;
        // Only now, authorized, is the caller's path opened.
        let package = match &op {
            Operation::Apply { package, .. } => Some(open_package(package)?),
            _ => None,
        };
        self.shared.start(conn, op, &sender, package).await
    }

    async fn status_value(&self) -> fdo::Result<Arc<crate::status::Status>> {
        self.shared
            .status()
            .await
            .map_err(|e| fdo::Error::Failed(e.message))
    }
}

/// transactional-livepatch: kernel livepatches applied as one transaction on a
/// btrfs snapshot root, so that what runs equals what boots. Reading the state
/// needs no authorization; Inspect, CheckUpdates, Apply, Update, Rollback and
/// Recover are authorized by polkit (actions
/// org.opensuse.transactionallivepatch.inspect, .check, .apply (Apply and
/// Update), .rollback, .recover). Errors are
/// org.opensuse.TransactionalLivepatch1.Error.NAME, NAME being a failure kind
/// of the command line (NotAuthorized, Busy, InvalidPackage, KernelUnsupported, ...).
#[interface(name = "org.opensuse.TransactionalLivepatch1.Manager")]
impl Manager {
    /// The same JSON document as `transactional-livepatch status --json`
    /// (with its schema_version).
    async fn status(&self) -> Result<String, DaemonError> {
        self.shared.touch();
        let s = self.shared.status().await?;
        serde_json::to_string_pretty(&*s)
            .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))
    }

    /// The transaction history as JSON, as `transactional-livepatch list --json`.
    async fn list_transactions(&self) -> Result<String, DaemonError> {
        self.shared.touch();
        let root = self.shared.opts.root.clone();
        let entries = tokio::task::spawn_blocking(move || {
            crate::journal::Journal::open_readonly(&root).entries()
        })
        .await
        .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))?
        .map_err(|e| DaemonError::from_anyhow(&e))?;
        serde_json::to_string_pretty(&entries)
            .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))
    }

    /// The snapshots as a JSON array (the "snapshots" member of Status).
    async fn get_snapshots(&self) -> Result<String, DaemonError> {
        self.shared.touch();
        let s = self.shared.status().await?;
        serde_json::to_string_pretty(&s.snapshots)
            .map_err(|e| DaemonError::new(FailureKind::Internal, e.to_string()))
    }

    /// Check the livepatch RPM at `package` as Apply would, changing nothing,
    /// and return what was learned as JSON, the document `transactional-livepatch
    /// inspect --against-default --json` prints: name, NEVRA, target kernel,
    /// livepatch modules, digests, CVEs, and in "against_default" the signature
    /// verdict, what it would replace in the default snapshot and why Apply
    /// would refuse it. Authorized by polkit (action
    /// org.opensuse.transactionallivepatch.inspect: the file is read with the
    /// service's rights); the path is opened once, as for Apply. No options yet.
    async fn inspect(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        package: &str,
        options: Options,
    ) -> Result<String, DaemonError> {
        self.shared.touch();
        check_keys(&options, &[])?;
        authorized_caller(&hdr, conn, polkit::ACTION_INSPECT).await?;
        let file = open_package(Path::new(package))?;
        let _running = self.shared.call_guard();
        super::transaction::inspect(&self.shared.opts, file).await
    }

    /// Ask the configured repositories for a newer livepatch for the running
    /// kernel, changing nothing, and return the JSON document
    /// `transactional-livepatch check --json` prints: for each configured
    /// package the edition installed in the default snapshot, the newest
    /// available one, its repository, the advisories that bring it (with
    /// severity) and their CVEs; "update_available" says whether Update
    /// would install anything. It runs `check` as a child, which holds the
    /// transaction lock while it looks (a running transaction makes it
    /// Busy). Authorized by polkit (action
    /// org.opensuse.transactionallivepatch.check: it contacts the
    /// repositories). No options yet.
    async fn check_updates(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: Options,
    ) -> Result<String, DaemonError> {
        self.shared.touch();
        check_keys(&options, &[])?;
        authorized_caller(&hdr, conn, polkit::ACTION_CHECK).await?;
        let _running = self.shared.call_guard();
        super::transaction::check(&self.shared.opts).await
    }

    /// Apply the livepatch RPM at `package` (an absolute path to a regular
    /// file, opened once after authorization). Options: "boot-only" (b): stage
    /// for the next boot only. Returns the transaction object at once.
    #[zbus(out_args("transaction"))]
    async fn apply(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        package: &str,
        options: Options,
    ) -> Result<OwnedObjectPath, DaemonError> {
        self.shared.touch();
        check_keys(&options, &["boot-only"])?;
        let op = Operation::Apply {
            package: PathBuf::from(package),
            boot_only: bool_option(&options, "boot-only")?,
        };
        self.start(&hdr, conn, polkit::ACTION_APPLY, op).await
    }

    /// Install the newest livepatch for the running kernel from the
    /// configured repositories (what CheckUpdates reports), downloaded and
    /// signature-checked by zypper, through the same transaction as Apply;
    /// already up to date is success. Options: "boot-only" (b): stage for
    /// the next boot only. Authorized by polkit as Apply (action
    /// org.opensuse.transactionallivepatch.apply: it installs a package).
    /// Returns the transaction object at once; its Report is the JSON of
    /// `transactional-livepatch update --json`.
    #[zbus(out_args("transaction"))]
    async fn update(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: Options,
    ) -> Result<OwnedObjectPath, DaemonError> {
        self.shared.touch();
        check_keys(&options, &["boot-only"])?;
        let op = Operation::Update {
            boot_only: bool_option(&options, "boot-only")?,
        };
        self.start(&hdr, conn, polkit::ACTION_APPLY, op).await
    }

    /// Return boot (and the running kernel) to the snapshot that was the
    /// default before the last apply. Options: "snapshot" (u): the snapshot to
    /// return to; "boot-only" (b). Returns the transaction object at once.
    #[zbus(out_args("transaction"))]
    async fn rollback(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: Options,
    ) -> Result<OwnedObjectPath, DaemonError> {
        self.shared.touch();
        check_keys(&options, &["snapshot", "boot-only"])?;
        let op = Operation::Rollback {
            snapshot: u32_option(&options, "snapshot")?,
            boot_only: bool_option(&options, "boot-only")?,
        };
        self.start(&hdr, conn, polkit::ACTION_ROLLBACK, op).await
    }

    /// Finish or undo an interrupted transaction. Returns the transaction object at once.
    #[zbus(out_args("transaction"))]
    async fn recover(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<OwnedObjectPath, DaemonError> {
        self.start(&hdr, conn, polkit::ACTION_RECOVER, Operation::Recover)
            .await
    }

    /// The running transaction's object, or "/" when none runs.
    #[zbus(property)]
    fn active_transaction(&self) -> OwnedObjectPath {
        self.shared.active_path()
    }

    /// The running kernel's release.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn running_kernel(&self) -> fdo::Result<String> {
        Ok(self.status_value().await?.running_kernel.clone())
    }

    /// Whether the running kernel can load livepatches.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn livepatch_supported(&self) -> fdo::Result<bool> {
        Ok(self.status_value().await?.livepatch_supported)
    }

    /// The snapshot the next boot uses.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn default_snapshot(&self) -> fdo::Result<u32> {
        Ok(self.status_value().await?.default_snapshot)
    }

    /// The snapshot that runs now; 0 when the root is not a numbered snapshot.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn booted_snapshot(&self) -> fdo::Result<u32> {
        Ok(self.status_value().await?.booted_snapshot.unwrap_or(0))
    }

    /// The default snapshot is not the booted one: the next boot changes the root.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn reboot_pending(&self) -> fdo::Result<bool> {
        Ok(self.status_value().await?.reboot_pending)
    }

    /// No drift: the running kernel's livepatches equal the default snapshot's.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn in_sync(&self) -> fdo::Result<bool> {
        Ok(self.status_value().await?.drift.in_sync)
    }

    /// The livepatches enabled in the running kernel, in load order.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn live_livepatches(&self) -> fdo::Result<Vec<String>> {
        let s = self.status_value().await?;
        Ok(s.live_livepatches
            .iter()
            .filter(|p| p.enabled)
            .map(|p| p.name.clone())
            .collect())
    }

    /// The livepatches the default snapshot loads at boot for the running kernel.
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn default_livepatches(&self) -> fdo::Result<Vec<String>> {
        let s = self.status_value().await?;
        Ok(s.default_livepatches
            .iter()
            .filter(|k| k.kernel_release == s.running_kernel)
            .flat_map(|k| k.livepatches.iter().map(|p| p.name.clone()))
            .collect())
    }

    /// The directory a client with administrative access uploads a package to
    /// before Inspect and Apply (root-only, on the shared /var). A package
    /// there is removed when its Apply has finished.
    #[zbus(property(emits_changed_signal = "const"))]
    fn spool_directory(&self) -> String {
        super::spool_dir(&self.shared.opts.root)
            .display()
            .to_string()
    }

    /// The version of this service.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

/// Tell clients that every state property may have changed (after a transaction).
pub(super) async fn state_changed(conn: &Connection) {
    let Ok(iface) = conn
        .object_server()
        .interface::<_, Manager>(OBJECT_PATH)
        .await
    else {
        return;
    };
    let e: &SignalEmitter<'_> = iface.signal_emitter();
    let m = iface.get().await;
    let _ = m.active_transaction_changed(e).await;
    let _ = m.running_kernel_invalidate(e).await;
    let _ = m.livepatch_supported_invalidate(e).await;
    let _ = m.default_snapshot_invalidate(e).await;
    let _ = m.booted_snapshot_invalidate(e).await;
    let _ = m.reboot_pending_invalidate(e).await;
    let _ = m.in_sync_invalidate(e).await;
    let _ = m.live_livepatches_invalidate(e).await;
    let _ = m.default_livepatches_invalidate(e).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let mut o = Options::new();
        o.insert("boot-only".into(), OwnedVariant::from(true));
        assert!(check_keys(&o, &["boot-only"]).is_ok());
        assert!(bool_option(&o, "boot-only").unwrap());
        assert_eq!(u32_option(&o, "snapshot").unwrap(), None);
        let e = u32_option(&o, "boot-only").unwrap_err();
        assert_eq!(e.kind, FailureKind::Usage);
        o.insert("force".into(), OwnedVariant::from(true));
        let e = check_keys(&o, &["boot-only"]).unwrap_err();
        assert!(e.message.contains("unknown option \"force\""), "{e}");
    }

    #[test]
    fn only_regular_files_reached_directly_are_opened() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("p.rpm");
        std::fs::write(&f, b"x").unwrap();
        assert!(open_package(&f).is_ok());
        let l = d.path().join("link.rpm");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = open_package(&l).unwrap_err();
        assert_eq!(e.kind, FailureKind::InvalidPackage);
        assert!(e.message.contains("symbolic link"), "{e}");
        let e = open_package(d.path()).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
        let e = open_package(Path::new("relative.rpm")).unwrap_err();
        assert!(e.message.contains("absolute"), "{e}");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = open_package(&fifo).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
    }
}
