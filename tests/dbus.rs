//! D-Bus tier: the service on a real `dbus-daemon` with a private system-bus
//! configuration and a real `polkitd` on it, the service started by bus
//! activation from this repository's activation file and bus policy, driven by
//! real clients (`busctl`, `gdbus`, as root and as `nobody`) and by a zbus proxy.
//!
//! Run as root: the bus policy lets only root own the name, polkitd drops to
//! its own user, and the apply tests use the loop-btrfs system of the
//! privileged tier. Our polkit actions are installed into
//! /usr/share/polkit-1/actions (where polkitd reads them) while tests run, and
//! removed after unless they were there before.

mod common;

use common::*;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zbus::{OwnedObjectPath, Variant};

const NAME: &str = "org.opensuse.TransactionalLivepatch1";
const PATH: &str = "/org/opensuse/TransactionalLivepatch1";
const MANAGER: &str = "org.opensuse.TransactionalLivepatch1.Manager";
const TRANSACTION: &str = "org.opensuse.TransactionalLivepatch1.Transaction";
const ERR: &str = "org.opensuse.TransactionalLivepatch1.Error";
const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
const POLICY_FILE: &str = "org.opensuse.transactionallivepatch.policy";
const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";
const NOBODY: u32 = 65534;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// What this tier needs besides the privileged tier's own (see `btrfs`).
fn dbus_prerequisites(btrfs: bool) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for c in ["dbus-daemon", "busctl", "gdbus", "setpriv"] {
        if !have(c) {
            missing.push(c.to_string());
        }
    }
    if !Path::new(POLKITD).exists() {
        missing.push(format!("{POLKITD} (polkitd)"));
    }
    if !missing.is_empty() {
        let msg = format!(
            "D-Bus tier prerequisites missing: {} (run tests/support/deps.sh as root)",
            missing.join(", ")
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true: {msg}");
        }
        eprintln!("skipped: {msg}");
        return false;
    }
    !btrfs || prerequisites()
}

macro_rules! require {
    ($btrfs:expr) => {
        if !dbus_prerequisites($btrfs) {
            return;
        }
    };
}

/// Our polkit actions in polkitd's directory, for as long as any test runs.
struct PolicyInstall;

static POLICY_USERS: Mutex<(usize, bool)> = Mutex::new((0, false));

impl PolicyInstall {
    fn new() -> PolicyInstall {
        let mut users = POLICY_USERS.lock().unwrap_or_else(|p| p.into_inner());
        let target = Path::new(ACTIONS_DIR).join(POLICY_FILE);
        let ours = std::fs::read(repo().join("dbus").join(POLICY_FILE)).unwrap();
        if users.0 == 0 {
            // Remember whether someone else (an installed package) put it there.
            users.1 = target.exists() && std::fs::read(&target).ok().as_ref() != Some(&ours);
            std::fs::create_dir_all(ACTIONS_DIR).unwrap();
            std::fs::write(&target, &ours).unwrap();
        }
        users.0 += 1;
        PolicyInstall
    }
}

impl Drop for PolicyInstall {
    fn drop(&mut self) {
        let mut users = POLICY_USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.0 -= 1;
        if users.0 == 0 && !users.1 {
            let _ = std::fs::remove_file(Path::new(ACTIONS_DIR).join(POLICY_FILE));
        }
    }
}

/// A private system bus with polkitd on it and our service activatable.
struct Bus {
    dir: tempfile::TempDir,
    address: String,
    bus: Child,
    polkitd: Child,
    _policy: PolicyInstall,
}

fn kill(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

impl Bus {
    /// `root` is the managed system the activated service is pointed at.
    fn start(root: &Path, idle_exit: u64) -> Bus {
        let policy = PolicyInstall::new();
        let dir = tempfile::Builder::new()
            .prefix("tlp-bus-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        // nobody must reach the socket.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let d = dir.path();
        let services = d.join("services");
        let policy_dir = d.join("system.d");
        std::fs::create_dir_all(&services).unwrap();
        std::fs::create_dir_all(&policy_dir).unwrap();
        // Our bus policy, as installed.
        std::fs::copy(
            repo().join(format!("dbus/{NAME}.conf")),
            policy_dir.join(format!("{NAME}.conf")),
        )
        .unwrap();
        // Our activation file, as installed, but running this build on this root.
        let activation = std::fs::read_to_string(repo().join(format!("dbus/{NAME}.service")))
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("Exec=") {
                    format!(
                        "Exec={BIN} --root {} daemon --idle-exit {idle_exit}",
                        root.display()
                    )
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(services.join(format!("{NAME}.service")), activation).unwrap();
        let socket = d.join("bus");
        let address = format!("unix:path={}", socket.display());
        // The stock system bus's default policy, with the bus's own
        // configuration (no setuid launch helper: activation forks directly).
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include ignore_missing="yes">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
  <includedir>{policy_dir}</includedir>
</busconfig>
"#,
            services = services.display(),
            policy_dir = policy_dir.display(),
        );
        let config_file = d.join("bus.conf");
        std::fs::write(&config_file, config).unwrap();
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config_file.display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(log("bus.log"))
            .stderr(log("bus.err"))
            .spawn()
            .expect("starting dbus-daemon");
        wait_for(|| socket.exists(), "the bus socket");
        // polkitd is bus-activated on a real system; here it is started by
        // hand on the private bus (it drops to its own user).
        let polkitd = Command::new(POLKITD)
            .arg("--no-debug")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(log("polkitd.log"))
            .stderr(log("polkitd.err"))
            .spawn()
            .expect("starting polkitd");
        let b = Bus {
            dir,
            address,
            bus,
            polkitd,
            _policy: policy,
        };
        wait_for(
            || b.name_owner("org.freedesktop.PolicyKit1").is_some(),
            "polkitd on the bus",
        );
        b
    }

    fn busctl(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let mut c = as_user(uid, "busctl");
        c.arg(format!("--address={}", self.address)).args(args);
        run(&mut c)
    }

    /// `busctl call` of a Manager method; the reply as busctl's JSON.
    fn busctl_call(&self, uid: Option<u32>, method: &str, sig_args: &[&str]) -> Output {
        let mut a = vec!["--json=short", "call", NAME, PATH, MANAGER, method];
        a.extend_from_slice(sig_args);
        self.busctl(uid, &a)
    }

    /// `gdbus call` (which prints the D-Bus error name of a failure).
    fn gdbus_call(&self, uid: Option<u32>, object: &str, method: &str, args: &[&str]) -> Output {
        let mut c = as_user(uid, "gdbus");
        c.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .args(["call", "--system", "--dest", NAME, "--object-path", object])
            .args(["--method", method])
            .args(args);
        run(&mut c)
    }

    /// The unique name owning `name`, if any (asked as root).
    fn name_owner(&self, name: &str) -> Option<String> {
        let out = self.busctl(
            None,
            &[
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetNameOwner",
                "s",
                name,
            ],
        );
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .trim_start_matches("s ")
                .trim_matches('"')
                .to_string()
        })
    }

    /// The pid of the process that owns our name, if it runs.
    fn service_pid(&self) -> Option<u32> {
        self.name_owner(NAME)?;
        let out = self.busctl(
            None,
            &[
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetConnectionUnixProcessID",
                "s",
                NAME,
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .strip_prefix("u ")?
            .parse()
            .ok()
    }

    async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .expect("connecting to the private bus")
    }

    /// `pid` was started by bus activation (dbus-daemon says so, and set the
    /// starter address in its environment), not by the test.
    fn assert_activated(&self, pid: u32) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        // The bus hands its address (with its guid) to what it activates.
        let starter = format!("DBUS_STARTER_ADDRESS={}", self.address);
        assert!(
            env.split(|b| *b == 0)
                .any(|v| v.starts_with(starter.as_bytes())),
            "pid {pid} has no {starter}: {}",
            String::from_utf8_lossy(&env)
        );
        let log = self.logs();
        assert!(
            log.contains(&format!("Successfully activated service '{NAME}'")),
            "{log}"
        );
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["bus.log", "bus.err", "polkitd.err"] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            s.push_str(&format!("--- {f}\n{text}"));
        }
        s
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let service = self.service_pid();
        kill(&mut self.polkitd);
        kill(&mut self.bus);
        // The service leaves with its bus (it must not linger without one).
        if let Some(pid) = service {
            let gone = wait_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z "))
            });
            if !gone && !std::thread::panicking() {
                panic!("the service (pid {pid}) outlived its bus");
            }
        }
    }
}

fn as_user(uid: Option<u32>, program: &str) -> Command {
    match uid {
        None => Command::new(program),
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={u}"))
                .arg(format!("--regid={u}"))
                .arg("--clear-groups")
                .arg(program);
            c
        }
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn wait_for(f: impl FnMut() -> bool, what: &str) {
    assert!(
        wait_until(Duration::from_secs(20), f),
        "timed out waiting for {what}"
    );
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
    let calls: [(&str, Vec<&str>); 4] = [
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
        assert_eq!(
            sigs.last(),
            Some(&Sig::Finished(true, String::new(), String::new())),
            "{sigs:#?}\n{}",
            bus.logs()
        );
        assert_well_ordered(&sigs);
        let begun: Vec<&str> = sigs
            .iter()
            .filter_map(|s| match s {
                Sig::TaskBegin(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
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
        assert_eq!(
            sigs.last(),
            Some(&Sig::Finished(true, String::new(), String::new())),
            "{sigs:#?}"
        );
        assert_well_ordered(&sigs);
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
    assert!(
        !Path::new(&format!("/proc/{first}/cmdline")).exists() || {
            std::fs::read_to_string(format!("/proc/{first}/stat")).is_ok_and(|s| s.contains(") Z "))
        }
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
    for op in ["apply", "rollback", "recover"] {
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
    for op in ["apply", "rollback", "recover"] {
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
        assert_eq!(
            sigs.last(),
            Some(&Sig::Finished(true, String::new(), String::new())),
            "{sigs:#?}\n{}",
            bus.logs()
        );
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
