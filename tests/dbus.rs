//! D-Bus tier: the service on a real `dbus-daemon` with a private system-bus
//! configuration and a real `polkitd` on it, the service started by bus
//! activation from this repository's activation file and bus policy, driven by
//! real clients (`busctl`, `gdbus`, as root and as `nobody`) and by a zbus proxy.
//!
//! Run as root: the bus policy lets only root own the name, polkitd drops to
//! its own user, and the apply tests use the loop-btrfs system of the
//! privileged tier. The private bus is tests/common/bus.rs.

mod common;

use common::bus::*;
use common::*;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use zbus::{OwnedObjectPath, Variant};

macro_rules! require {
    ($btrfs:expr) => {
        if !dbus_prerequisites($btrfs) {
            return;
        }
    };
}

fn out_text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The string a `busctl --json=short call` returned.
fn busctl_string(o: &Output) -> String {
    assert!(o.status.success(), "{}", out_text(o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["type"], "s", "{v}");
    v["data"][0].as_str().unwrap().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[zbus::proxy(
    interface = "org.opensuse.TransactionalLivepatch1.Manager",
    default_service = "org.opensuse.TransactionalLivepatch1",
    default_path = "/org/opensuse/TransactionalLivepatch1"
)]
trait Manager {
    fn status(&self) -> zbus::Result<String>;
    fn list_transactions(&self) -> zbus::Result<String>;
    fn apply(
        &self,
        package: &str,
        options: HashMap<&str, Variant<'_>>,
    ) -> zbus::Result<OwnedObjectPath>;
    fn rollback(&self, options: HashMap<&str, Variant<'_>>) -> zbus::Result<OwnedObjectPath>;
    fn recover(&self) -> zbus::Result<OwnedObjectPath>;
    #[zbus(property)]
    fn default_snapshot(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn active_transaction(&self) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.opensuse.TransactionalLivepatch1.Transaction",
    default_service = "org.opensuse.TransactionalLivepatch1"
)]
trait Transaction {
    #[zbus(property)]
    fn running(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn success(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn error_name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn report(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
}

fn boot_only() -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([("boot-only", Variant::from(true))])
}

/// One signal of a transaction, as observed.
#[derive(Debug, Clone, PartialEq)]
enum Sig {
    TaskBegin(String),
    TaskEnd(String),
    Message(String),
    Percent(String, u32),
    Finished(bool, String, String),
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sig::TaskBegin(t) => write!(f, "TaskBegin({t:?})"),
            Sig::TaskEnd(t) => write!(f, "TaskEnd({t:?})"),
            Sig::Message(t) => write!(f, "Message({t:?})"),
            Sig::Percent(t, p) => write!(f, "PercentProgress({t:?}, {p})"),
            Sig::Finished(s, n, m) => write!(f, "Finished({s}, {n:?}, {m:?})"),
        }
    }
}

/// Every signal of the transaction interface, subscribed before any call.
async fn subscribe(conn: &zbus::Connection) -> zbus::MessageStream {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(TRANSACTION)
        .path_namespace("/org/opensuse/TransactionalLivepatch1/Transaction")
        .build()
        .unwrap();
    zbus::MessageStream::for_match_rule(rule, conn, None)
        .await
        .unwrap()
}

/// The signals of the transaction at `path`, up to and with its Finished.
async fn collect(stream: &mut zbus::MessageStream, path: &str, limit: Duration) -> Vec<Sig> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no Finished within {limit:?}; got {out:#?}"))
            .expect("signal stream ended")
            .unwrap();
        let h = msg.header();
        if h.path().map(|p| p.as_str()) != Some(path) {
            continue;
        }
        let body = msg.body();
        let sig = match h.member().map(|m| m.as_str()) {
            Some("TaskBegin") => Sig::TaskBegin(body.deserialize().unwrap()),
            Some("TaskEnd") => Sig::TaskEnd(body.deserialize().unwrap()),
            Some("Message") => Sig::Message(body.deserialize().unwrap()),
            Some("PercentProgress") => {
                let (t, p): (String, u32) = body.deserialize().unwrap();
                Sig::Percent(t, p)
            }
            Some("Finished") => {
                let (s, n, m): (bool, String, String) = body.deserialize().unwrap();
                Sig::Finished(s, n, m)
            }
            other => panic!("unexpected signal {other:?}"),
        };
        let end = matches!(sig, Sig::Finished(..));
        out.push(sig);
        if end {
            return out;
        }
    }
}

/// Steps begin and end in order, each announced with its percentage, the
/// percentage never goes back, and Finished comes last.
fn assert_well_ordered(sigs: &[Sig]) {
    let mut open: Option<&str> = None;
    let mut last_pct = 0;
    for (i, s) in sigs.iter().enumerate() {
        match s {
            Sig::TaskBegin(t) => {
                assert!(
                    open.is_none(),
                    "TaskBegin({t}) while {open:?} runs: {sigs:#?}"
                );
                assert!(
                    matches!(&sigs[i + 1], Sig::Percent(pt, _) if pt == t),
                    "TaskBegin({t}) without its PercentProgress: {sigs:#?}"
                );
                open = Some(t);
            }
            Sig::TaskEnd(t) => {
                assert_eq!(open, Some(t.as_str()), "{sigs:#?}");
                open = None;
            }
            Sig::Percent(_, p) => {
                assert!(*p >= last_pct && *p <= 100, "{sigs:#?}");
                last_pct = *p;
            }
            Sig::Message(_) => {}
            Sig::Finished(..) => assert_eq!(i, sigs.len() - 1),
        }
    }
}

/// The signals of a transaction that succeeded: Finished(true) last, and
/// well ordered ([`assert_well_ordered`]).
fn assert_succeeded(sigs: &[Sig], bus: &Bus) {
    assert_eq!(
        sigs.last(),
        Some(&Sig::Finished(true, String::new(), String::new())),
        "{sigs:#?}\n{}",
        bus.logs()
    );
    assert_well_ordered(sigs);
}

/// The titles of the steps begun, in order.
fn task_titles(sigs: &[Sig]) -> Vec<&str> {
    sigs.iter()
        .filter_map(|s| match s {
            Sig::TaskBegin(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn print_sequence(what: &str, sigs: &[Sig]) {
    eprintln!("--- signals of {what}:");
    for s in sigs {
        eprintln!("  {s}");
    }
}

#[test]
fn unprivileged_callers_read_status_and_are_denied_changes_by_polkit() {
    require!(true);
    let sys = TestSystem::new();
    let bus = Bus::start(&sys.mnt, 60);
    assert_eq!(bus.service_pid(), None, "the service must not run yet");
    let who = Some(NOBODY);

    // Status as nobody: bus activation starts the service; same JSON as the CLI.
    let status = busctl_string(&bus.busctl_call(who, "Status", &[]));
    let via_bus: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        via_bus,
        sys.status_json(),
        "Status differs from status --json"
    );
    let pid = bus.service_pid().expect("the service was activated");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.contains(" daemon") || cmdline.contains("\0daemon"),
        "{cmdline:?}"
    );
    bus.assert_activated(pid);

    let list = busctl_string(&bus.busctl_call(who, "ListTransactions", &[]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list).unwrap(),
        serde_json::json!([])
    );
    let snaps = busctl_string(&bus.busctl_call(who, "GetSnapshots", &[]));
    let snaps: serde_json::Value = serde_json::from_str(&snaps).unwrap();
    assert_eq!(snaps, via_bus["snapshots"]);
    let prop = bus.busctl(
        who,
        &["get-property", NAME, PATH, MANAGER, "DefaultSnapshot"],
    );
    assert_eq!(
        String::from_utf8_lossy(&prop.stdout).trim(),
        "u 1",
        "{}",
        out_text(&prop)
    );
    let prop = bus.busctl(
        who,
        &["get-property", NAME, PATH, MANAGER, "LivepatchSupported"],
    );
    assert_eq!(
        String::from_utf8_lossy(&prop.stdout).trim(),
        "b false",
        "{}",
        out_text(&prop)
    );

    // Changes as nobody: polkit says no (auth_admin_keep, no session, no
    // agent), with the typed error, and nothing changes.
    let pkg = rpm("tlp-livepatch-simple");
    let before = sys.state();
    let denied = format!("GDBus.Error:{ERR}.NotAuthorized");
    // Inspect too: it would read the named file with root's rights.
    let calls: [(&str, Vec<&str>); 5] = [
        ("Inspect", vec![pkg.to_str().unwrap(), "{}"]),
        (
            "Apply",
            vec![pkg.to_str().unwrap(), "{'boot-only': <true>}"],
        ),
        ("Apply", vec![pkg.to_str().unwrap(), "{}"]),
        (
            "Rollback",
            vec!["{'boot-only': <true>, 'snapshot': <uint32 1>}"],
        ),
        ("Recover", vec![]),
    ];
    for (method, args) in calls {
        let out = bus.gdbus_call(who, PATH, &format!("{MANAGER}.{method}"), &args);
        assert!(!out.status.success(), "{method} succeeded as nobody");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&denied), "{method}: {}", out_text(&out));
        assert!(
            err.contains(&format!(
                "org.opensuse.transactionallivepatch.{}",
                method.to_lowercase()
            )),
            "{err}"
        );
    }
    // busctl sees the same refusal.
    let out = bus.busctl_call(who, "Rollback", &["a{sv}", "0"]);
    assert!(!out.status.success(), "{}", out_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized"),
        "{}",
        out_text(&out)
    );
    assert_eq!(sys.state(), before, "a denied call changed the system");
    assert_eq!(sys.default_number(), 1);
    let active = bus.busctl(
        who,
        &["get-property", NAME, PATH, MANAGER, "ActiveTransaction"],
    );
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "o \"/\"");
    let list = busctl_string(&bus.busctl_call(who, "ListTransactions", &[]));
    assert_eq!(list.trim(), "[]", "a denied call reached the journal");

    // The bus policy lets nobody call nothing else of the service.
    let out = bus.gdbus_call(
        who,
        PATH,
        "org.freedesktop.DBus.Properties.Set",
        &[MANAGER, "DefaultSnapshot", "<uint32 2>"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{}",
        out_text(&out)
    );
    assert_eq!(
        bus.service_pid(),
        Some(pid),
        "the service restarted:\n{}",
        bus.logs()
    );
}

#[test]
fn root_applies_boot_only_with_progress_signals_then_rolls_back() {
    require!(true);
    let sys = TestSystem::new();
    let bus = Bus::start(&sys.mnt, 60);
    assert_eq!(bus.service_pid(), None, "the service must not run yet");
    let pkg = rpm("tlp-livepatch-simple");
    let pkg = pkg.to_str().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let observer = bus.connect().await;
        let mut signals = subscribe(&observer).await;
        let manager = ManagerProxy::new(&observer).await.unwrap();

        // The caller starts the apply on a connection of its own and goes
        // away at once: the transaction must go on regardless.
        let caller = bus.connect().await;
        let path = ManagerProxy::new(&caller)
            .await
            .unwrap()
            .apply(pkg, boot_only())
            .await
            .expect("Apply as root");
        assert!(
            path.as_str()
                .starts_with("/org/opensuse/TransactionalLivepatch1/Transaction/"),
            "{path}"
        );
        caller.close().await.unwrap();

        // A second changing call while it runs: Busy, naming the running one, at once.
        let t = Instant::now();
        let err = manager.apply(pkg, boot_only()).await.unwrap_err();
        let (name, msg) = match &err {
            zbus::Error::MethodError(n, m, _) => (n.to_string(), m.clone().unwrap_or_default()),
            e => panic!("unexpected {e:?}"),
        };
        assert_eq!(name, format!("{ERR}.Busy"), "{msg}");
        assert!(msg.contains(path.as_str()), "{msg}");
        let err = manager.rollback(boot_only()).await.unwrap_err();
        assert!(err.to_string().contains(&format!("{ERR}.Busy")), "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "Busy took {:?}",
            t.elapsed()
        );
        assert_eq!(manager.active_transaction().await.unwrap(), path);

        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(600)).await;
        print_sequence("Apply(boot-only)", &sigs);
        assert_succeeded(&sigs, &bus);
        let begun = task_titles(&sigs);
        assert_eq!(begun.len(), 6, "{begun:?}");
        assert_eq!(begun[0], "Checking the package");
        assert!(
            begun[1].starts_with("Creating a snapshot of snapshot 1"),
            "{begun:?}"
        );
        assert!(
            begun[2].starts_with("Installing tlp-livepatch-simple"),
            "{begun:?}"
        );
        assert_eq!(begun[3], "Building the initrd");
        assert_eq!(begun[4], "Sealing snapshot 2");
        assert_eq!(begun[5], "Making snapshot 2 the default");
        let ended = sigs.iter().filter(|s| matches!(s, Sig::TaskEnd(_))).count();
        assert_eq!(ended, 6, "{sigs:#?}");
        assert!(
            sigs.contains(&Sig::Message("snapshot 2 created".into())),
            "{sigs:#?}"
        );
        assert_eq!(sigs[sigs.len() - 2], Sig::Percent("Done".into(), 100));

        // The transaction object keeps the result for late readers.
        let tx = TransactionProxy::builder(&observer)
            .path(path.clone())
            .build()
            .await
            .unwrap();
        assert!(!tx.running().await.unwrap());
        assert!(tx.success().await.unwrap());
        assert_eq!(tx.kind().await.unwrap(), "apply");
        let report: serde_json::Value = serde_json::from_str(&tx.report().await.unwrap()).unwrap();
        assert_eq!(report["new_snapshot"], 2);
        assert_eq!(report["live"], false);
        assert_eq!(manager.active_transaction().await.unwrap().as_str(), "/");
        assert_eq!(manager.default_snapshot().await.unwrap(), 2);

        // The real tools' view.
        assert_eq!(sys.default_number(), 2);
        assert!(sys.is_readonly(2));
        assert!(sys.rpm_installed(2, "tlp-livepatch-simple"));
        assert!(!sys.rpm_installed(1, "tlp-livepatch-simple"));
        let status: serde_json::Value =
            serde_json::from_str(&manager.status().await.unwrap()).unwrap();
        assert_eq!(status, sys.status_json());
        assert_eq!(status["reboot_pending"], true);

        // A live apply on this kernel (no livepatch support): typed failure
        // in Finished, nothing changed.
        let before = sys.state();
        let path = manager.apply(pkg, HashMap::new()).await.unwrap();
        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(120)).await;
        print_sequence("Apply(live) on a kernel without livepatch", &sigs);
        match sigs.last().unwrap() {
            Sig::Finished(false, name, msg) => {
                assert_eq!(name, &format!("{ERR}.KernelUnsupported"));
                assert!(msg.contains("does not support livepatching"), "{msg}");
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(sys.state(), before);

        // Roll back through the bus.
        let path = manager.rollback(boot_only()).await.unwrap();
        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(300)).await;
        print_sequence("Rollback(boot-only)", &sigs);
        assert_succeeded(&sigs, &bus);
        assert!(
            sigs.contains(&Sig::TaskBegin("Making snapshot 1 the default".into())),
            "{sigs:#?}"
        );
        assert_eq!(sys.default_number(), 1);
        let list: serde_json::Value =
            serde_json::from_str(&manager.list_transactions().await.unwrap()).unwrap();
        let kinds: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["apply", "rollback"], "{list:#}");
    });
    drop(rt);
    let pid = bus.service_pid().expect("service running");
    bus.assert_activated(pid);
}

#[test]
fn a_changing_call_while_the_cli_holds_the_lock_gets_busy() {
    require!(true);
    let sys = TestSystem::new();
    let bus = Bus::start(&sys.mnt, 60);
    // Someone (the CLI) holds the transaction lock.
    let lock = sys.mnt.join("var/lib/transactional-livepatch/lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || {
            !Command::new("flock")
                .args(["-n"])
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success()
        },
        "the lock to be held",
    );
    assert!(holder.try_wait().unwrap().is_none(), "flock ended early");
    let before = sys.state();
    let out = bus.gdbus_call(
        None,
        PATH,
        &format!("{MANAGER}.Rollback"),
        &["{'boot-only': <true>, 'snapshot': <uint32 1>}"],
    );
    kill(&mut holder);
    assert_eq!(sys.state(), before);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{ERR}.Busy")),
        "{}",
        out_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another transaction is running"),
        "{}",
        out_text(&out)
    );
}

#[test]
fn root_inspects_a_package_as_apply_would_and_nothing_changes() {
    require!(true);
    let sys = TestSystem::new();
    let bus = Bus::start(&sys.mnt, 60);
    let before = sys.state();
    let pkg = rpm("tlp-livepatch-simple");
    let inspect = |path: &str| bus.busctl_call(None, "Inspect", &["sa{sv}", path, "0"]);
    let doc: serde_json::Value =
        serde_json::from_str(&busctl_string(&inspect(pkg.to_str().unwrap()))).unwrap();
    // The document `inspect --against-default --json` prints for the file.
    let cli: serde_json::Value = serde_json::from_str(&sys.tlp_ok(&[
        "inspect",
        pkg.to_str().unwrap(),
        "--against-default",
        "--json",
    ]))
    .unwrap();
    assert_eq!(doc, cli);
    assert_eq!(doc["nevra"], "tlp-livepatch-simple-1-1.x86_64");
    assert_eq!(doc["kernel_release"], fixtures().kver.as_str());
    assert_eq!(doc["modules"][0]["name"], "tlp_simple");
    let d = &doc["against_default"];
    assert_eq!(d["default_snapshot"], 1, "{d}");
    assert_eq!(d["signature"], "unsigned", "{d}");
    assert_eq!(d["replaces_package"], serde_json::Value::Null, "{d}");
    assert_eq!(d["refusal"], serde_json::Value::Null, "{d}");
    // A package its own modules contradict (built for another kernel than
    // the one it installs for): the typed error of preflight, as for Apply.
    let wrong = rpm("tlp-wrongkver");
    let out = bus.gdbus_call(
        None,
        PATH,
        &format!("{MANAGER}.Inspect"),
        &[wrong.to_str().unwrap(), "{}"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{ERR}.WrongKernel")) && err.contains("9.9.9-1-default"),
        "{}",
        out_text(&out)
    );
    // Paths are opened as for Apply: no symlink, absolute, typed errors.
    let link = bus.dir.path().join("link.rpm");
    std::os::unix::fs::symlink(&pkg, &link).unwrap();
    for (path, words) in [
        (link.to_str().unwrap(), "symbolic link"),
        ("relative.rpm", "absolute"),
    ] {
        let out = bus.gdbus_call(None, PATH, &format!("{MANAGER}.Inspect"), &[path, "{}"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{ERR}.InvalidPackage")) && err.contains(words),
            "{path}: {}",
            out_text(&out)
        );
    }
    assert_eq!(sys.state(), before, "Inspect changed the system");
    // The upload spool the service prepared: root's, 0700, empty.
    let spool = bus.busctl(
        None,
        &["get-property", NAME, PATH, MANAGER, "SpoolDirectory"],
    );
    let spool = String::from_utf8_lossy(&spool.stdout).trim().to_string();
    let want = sys.mnt.join("var/lib/transactional-livepatch/spool");
    assert_eq!(spool, format!("s \"{}\"", want.display()));
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(&want).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o700));
}

#[test]
fn bad_arguments_get_typed_errors_before_any_transaction() {
    require!(false);
    let root = tempfile::tempdir().unwrap();
    let bus = Bus::start(root.path(), 60);
    let d = bus.dir.path();
    let real = d.join("real.rpm");
    std::fs::write(&real, b"not an rpm at all").unwrap();
    let link = d.join("link.rpm");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let apply = |path: &Path, opts: &str| {
        bus.gdbus_call(
            None,
            PATH,
            &format!("{MANAGER}.Apply"),
            &[path.to_str().unwrap(), opts],
        )
    };
    for (path, opts, name, words) in [
        (link.as_path(), "{}", "InvalidPackage", "symbolic link"),
        (d, "{}", "InvalidPackage", "not a regular file"),
        (
            Path::new("relative.rpm"),
            "{}",
            "InvalidPackage",
            "absolute",
        ),
        (
            &d.join("missing.rpm"),
            "{}",
            "InvalidPackage",
            "cannot open",
        ),
        (
            real.as_path(),
            "{'force': <true>}",
            "Usage",
            "unknown option",
        ),
        (real.as_path(), "{'boot-only': <'yes'>}", "Usage", "boolean"),
    ] {
        let out = apply(path, opts);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{ERR}.{name}")) && err.contains(words),
            "{path:?} {opts}: {}",
            out_text(&out)
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let conn = bus.connect().await;
        let m = ManagerProxy::new(&conn).await.unwrap();
        assert_eq!(m.active_transaction().await.unwrap().as_str(), "/");
        // A regular file that is no RPM: a transaction that fails typed.
        let mut signals = subscribe(&conn).await;
        let path = m.apply(real.to_str().unwrap(), boot_only()).await.unwrap();
        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(60)).await;
        match sigs.last().unwrap() {
            Sig::Finished(false, name, msg) => {
                assert_eq!(name, &format!("{ERR}.InvalidPackage"), "{msg}");
            }
            s => panic!("{s:?}"),
        }
    });
}

#[test]
fn idle_service_exits_and_is_activated_again() {
    require!(false);
    let root = tempfile::tempdir().unwrap();
    let bus = Bus::start(root.path(), 2);
    let version = |bus: &Bus| {
        let out = bus.busctl(
            Some(NOBODY),
            &["get-property", NAME, PATH, MANAGER, "Version"],
        );
        assert!(out.status.success(), "{}", out_text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        version(&bus),
        format!("s \"{}\"", env!("CARGO_PKG_VERSION"))
    );
    let first = bus.service_pid().expect("activated");
    assert!(
        wait_until(Duration::from_secs(15), || bus.service_pid().is_none()),
        "the idle service did not exit"
    );
    // The name goes before the process: it may still be shutting down.
    assert!(
        wait_until(Duration::from_secs(15), || {
            !Path::new(&format!("/proc/{first}/cmdline")).exists()
                || std::fs::read_to_string(format!("/proc/{first}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        }),
        "the idle service released its name but its process {first} did not exit"
    );
    version(&bus);
    let second = bus.service_pid().expect("activated again");
    assert_ne!(first, second);
}

/// Only the interfaces of this service, whitespace normalised.
fn our_interfaces(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<interface name=\"org.opensuse.TransactionalLivepatch1.") {
        let end = rest[start..].find("</interface>").unwrap() + start + "</interface>".len();
        let block = rest[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("> <", "><");
        out.push(block);
        rest = &rest[end..];
    }
    out
}

#[test]
fn interface_xml_matches_live_introspection() {
    require!(false);
    let root = tempfile::tempdir().unwrap();
    let bus = Bus::start(root.path(), 60);
    let introspect = |object: &str| {
        let out = bus.busctl(
            Some(NOBODY),
            &[
                "--json=short",
                "call",
                NAME,
                object,
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
            ],
        );
        busctl_string(&out)
    };
    let manager_xml = introspect(PATH);
    // A transaction object (a recover that fails at once on this empty root).
    let out = bus.gdbus_call(None, PATH, &format!("{MANAGER}.Recover"), &[]);
    assert!(out.status.success(), "{}", out_text(&out));
    let tx = String::from_utf8_lossy(&out.stdout)
        .split('\'')
        .nth(1)
        .unwrap()
        .to_string();
    let tx_xml = introspect(&tx);
    let mut live = our_interfaces(&manager_xml);
    live.extend(our_interfaces(&tx_xml));
    assert_eq!(live.len(), 2, "{manager_xml}\n{tx_xml}");

    let file: PathBuf = repo().join(format!("dbus/{NAME}.xml"));
    if std::env::var("TLP_UPDATE_DBUS_XML").as_deref() == Ok("1") {
        let head = std::fs::read_to_string(&file).unwrap_or_default();
        let head = head.split("<node>").next().unwrap_or_default().to_string();
        let body = |xml: &str| {
            let s = xml.find("  <interface name=\"org.opensuse.").unwrap();
            let e = xml.rfind("</interface>").unwrap() + "</interface>".len();
            xml[s..e].to_string()
        };
        let text = format!(
            "{head}<node>\n{}\n{}\n</node>\n",
            body(&manager_xml),
            body(&tx_xml)
        );
        std::fs::write(&file, text).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        our_interfaces(&committed),
        live,
        "{} differs from the served interfaces; regenerate it with \
         TLP_UPDATE_DBUS_XML=1 cargo test --test dbus interface_xml",
        file.display()
    );
    // The XML itself is well-formed.
    let mut reader = quick_xml::Reader::from_str(&committed);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
}

/// The shipped files name the same service, paths and actions as the code.
#[test]
fn shipped_files_agree_with_the_code() {
    let read = |p: &str| std::fs::read_to_string(repo().join(p)).unwrap();
    let activation = read(&format!("dbus/{NAME}.service"));
    assert!(
        activation.contains(&format!("Name={NAME}\n")),
        "{activation}"
    );
    assert!(activation.contains("SystemdService=transactional-livepatchd.service"));
    assert!(activation.contains("Exec=/usr/sbin/transactional-livepatch daemon"));
    assert!(activation.contains("User=root"));
    let unit = read("systemd/transactional-livepatchd.service");
    assert!(unit.contains("Type=dbus"), "{unit}");
    assert!(unit.contains(&format!("BusName={NAME}\n")), "{unit}");
    for forbidden in ["ProtectKernelModules=yes", "ProtectKernelTunables=yes"] {
        assert!(
            !unit.contains(forbidden),
            "{forbidden} breaks loading livepatches"
        );
    }
    let policy = read(&format!("dbus/{NAME}.conf"));
    assert!(
        policy.contains(&format!("<allow own=\"{NAME}\"/>")),
        "{policy}"
    );
    let actions = read(&format!("dbus/{POLICY_FILE}"));
    for op in ["inspect", "check", "apply", "rollback", "recover"] {
        let id = format!("org.opensuse.transactionallivepatch.{op}");
        let at = actions
            .find(&format!("\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        let block = &actions[at..at + actions[at..].find("</action>").unwrap()];
        assert!(
            block.contains("<allow_any>auth_admin_keep</allow_any>"),
            "{block}"
        );
        assert!(
            block.contains("<allow_active>auth_admin_keep</allow_active>"),
            "{block}"
        );
    }
    // The documented error names and codes are the command line's.
    let xml = read(&format!("dbus/{NAME}.xml"));
    for k in tlp::error::FailureKind::ALL {
        let doc = format!("{} ({})", k.name(), k.exit_code());
        assert!(
            xml.contains(&doc),
            "dbus/{NAME}.xml does not document {doc}"
        );
    }
    let code = read("src/dbus/polkit.rs");
    for op in ["inspect", "check", "apply", "rollback", "recover"] {
        assert!(code.contains(&format!("\"org.opensuse.transactionallivepatch.{op}\"")));
    }
}

/// Issue 4: the daemon hands the package to its child as /dev/stdin, but
/// the history (journal, `list`, `status`, D-Bus) names the path the caller
/// gave, as for an apply from the command line.
#[test]
fn an_apply_over_the_bus_is_recorded_under_the_callers_path() {
    require!(true);
    let sys = TestSystem::new();
    let bus = Bus::start(&sys.mnt, 60);
    let pkg = rpm("tlp-livepatch-simple");
    let pkg = pkg.to_str().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let conn = bus.connect().await;
        let mut signals = subscribe(&conn).await;
        let manager = ManagerProxy::new(&conn).await.unwrap();
        let path = manager.apply(pkg, boot_only()).await.expect("Apply");
        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(600)).await;
        assert_succeeded(&sigs, &bus);
        let list: serde_json::Value =
            serde_json::from_str(&manager.list_transactions().await.unwrap()).unwrap();
        assert_eq!(list[0]["kind"], "apply", "{list:#}");
        assert_eq!(list[0]["package"]["file"], pkg, "{list:#}");
        let status: serde_json::Value =
            serde_json::from_str(&manager.status().await.unwrap()).unwrap();
        assert_eq!(
            status["last_transactions"][0]["package"]["file"], pkg,
            "{status:#}"
        );
    });
    // The command line reads the same journal.
    let list: serde_json::Value = serde_json::from_str(&sys.tlp_ok(&["list", "--json"])).unwrap();
    assert_eq!(list[0]["package"]["file"], pkg, "{list:#}");
}

/// CheckUpdates and Update against a real signed repository served over
/// HTTP (tests/common/repo.rs) and the test root's own zypper: the report is
/// `check --json`'s, Update installs through the apply transaction with its
/// signals and report, and an unprivileged caller is refused both with
/// nothing changed.
#[test]
fn updates_are_checked_and_installed_over_the_bus() {
    require!(true);
    if !common::repo::update_prerequisites() {
        return;
    }
    use common::repo::{PKG, PatchServer, configure_root, cumulative, updateinfo};
    let sys = TestSystem::new();
    let server = PatchServer::new();
    server.add(&cumulative(1));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001")]));
    configure_root(&sys, &server.url(), Some(&server.key));
    let cfg = common::repo::config(&sys, "");
    let mut opts = BusOptions::new(&sys.mnt, 120);
    opts.global = vec!["--config".into(), cfg.clone()];
    let bus = Bus::start_with(opts);

    // Unprivileged: polkit refuses both, naming the action; nothing changes.
    let before = sys.state();
    for (method, action, args) in [
        ("CheckUpdates", "check", vec!["{}"]),
        ("Update", "apply", vec!["{'boot-only': <true>}"]),
    ] {
        let out = bus.gdbus_call(Some(NOBODY), PATH, &format!("{MANAGER}.{method}"), &args);
        assert!(!out.status.success(), "{method} succeeded as nobody");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{ERR}.NotAuthorized"))
                && err.contains(&format!("org.opensuse.transactionallivepatch.{action}")),
            "{method}: {}",
            out_text(&out)
        );
    }
    assert_eq!(sys.state(), before, "a denied call changed the system");
    // A wrong option is a usage error before anything runs.
    let out = bus.gdbus_call(
        None,
        PATH,
        &format!("{MANAGER}.CheckUpdates"),
        &["{'boot-only': <true>}"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{ERR}.Usage")),
        "{}",
        out_text(&out)
    );

    // Root: the report of `check --json`, and nothing changed.
    let check = |bus: &Bus| -> serde_json::Value {
        let t = Instant::now();
        let doc = busctl_string(&bus.busctl_call(None, "CheckUpdates", &["a{sv}", "0"]));
        eprintln!("CheckUpdates in {:.1} s:\n{doc}", t.elapsed().as_secs_f64());
        serde_json::from_str(&doc).unwrap()
    };
    let r = check(&bus);
    assert_eq!(sys.state(), before, "CheckUpdates changed the system");
    let cli = sys.tlp(&["--config", &cfg, "check", "--json"]);
    assert_eq!(cli.status.code(), Some(100), "{}", out_text(&cli));
    assert_eq!(
        r,
        serde_json::from_slice::<serde_json::Value>(&cli.stdout).unwrap()
    );
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["update_available"], true);
    assert_eq!(r["default_snapshot"], 1);
    let p = &r["packages"][0];
    assert_eq!(p["name"], PKG);
    assert_eq!(p["installed"], serde_json::Value::Null);
    assert_eq!(p["available"], "1-1");
    assert_eq!(p["repository"], "tlp test livepatches");
    assert_eq!(
        bus.busctl(
            None,
            &["get-property", NAME, PATH, MANAGER, "ActiveTransaction"]
        )
        .stdout,
        b"o \"/\"\n",
        "CheckUpdates is no transaction"
    );

    // Update, boot only: a transaction with the resolve and apply steps.
    let rt = runtime();
    rt.block_on(async {
        let conn = bus.connect().await;
        let mut signals = subscribe(&conn).await;
        let reply = conn
            .call_method(Some(NAME), PATH, Some(MANAGER), "Update", &(boot_only(),))
            .await
            .expect("Update as root");
        let path: OwnedObjectPath = reply.body().deserialize().unwrap();
        let sigs = collect(&mut signals, path.as_str(), Duration::from_secs(600)).await;
        print_sequence("Update(boot-only)", &sigs);
        assert_succeeded(&sigs, &bus);
        let begun = task_titles(&sigs);
        assert_eq!(begun[1], "Refreshing the repositories", "{begun:?}");
        assert!(
            begun.contains(&format!("Downloading {PKG}").as_str()),
            "{begun:?}"
        );
        assert!(begun.contains(&"Checking the package"), "{begun:?}");
        let tx = TransactionProxy::builder(&conn)
            .path(path.clone())
            .build()
            .await
            .unwrap();
        assert_eq!(tx.kind().await.unwrap(), "update");
        assert!(tx.success().await.unwrap());
        let report: serde_json::Value = serde_json::from_str(&tx.report().await.unwrap()).unwrap();
        eprintln!("Update report: {report:#}");
        assert_eq!(report["result"], "applied", "{report:#}");
        assert_eq!(report["policy"], "apply");
        assert_eq!(report["check"]["packages"][0]["available"], "1-1");
        assert_eq!(report["applied"][0]["package"], format!("{PKG}-1-1.x86_64"));
        assert_eq!(report["applied"][0]["live"], false);
        let n = report["applied"][0]["new_snapshot"].as_u64().unwrap();
        assert_eq!(sys.default_number(), n);
        assert_eq!(
            begun.last().copied(),
            Some(format!("Making snapshot {n} the default").as_str()),
            "{begun:?}"
        );
        let m = ManagerProxy::new(&conn).await.unwrap();
        assert_eq!(u64::from(m.default_snapshot().await.unwrap()), n);
    });
    let n = sys.default_number();
    assert_ne!(n, 1);
    assert!(sys.is_readonly(n));
    assert!(sys.rpm_installed(n, &format!("{PKG}-1-1")));
    assert!(!sys.rpm_installed(1, PKG));

    // v2 published with its advisory: installed 1-1, 2-1 available, its CVE.
    server.add(&cumulative(2));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001"), (2, "CVE-2026-0002")]));
    let before = sys.state();
    let r = check(&bus);
    assert_eq!(sys.state(), before, "CheckUpdates changed the system");
    let p = &r["packages"][0];
    assert_eq!(r["default_snapshot"], n);
    assert_eq!(p["installed"], "1-1");
    assert_eq!(p["available"], "2-1");
    assert_eq!(p["update_available"], true);
    assert_eq!(p["cves"], serde_json::json!(["CVE-2026-0002"]));
    assert_eq!(p["advisories"][0]["id"], "TLP-TEST-2026-2");
    assert_eq!(p["advisories"][0]["severity"], "important");
    // The history has the apply the update made, nothing else.
    let list: serde_json::Value = serde_json::from_str(&sys.tlp_ok(&["list", "--json"])).unwrap();
    let kinds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["apply"], "{list:#}");
}
