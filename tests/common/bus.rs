//! A private system bus for the D-Bus tests: a real `dbus-daemon` with the
//! stock system bus's default policy, a real `polkitd` on it, this
//! repository's bus policy and activation file, and our service started by bus
//! activation, pointed at a test system. Shared by tests/dbus.rs (the
//! interface) and tests/hostile.rs (the same refusals through the daemon).
//!
//! Run as root: the bus policy lets only root own the name, and polkitd drops
//! to its own user. Our polkit actions are installed into
//! /usr/share/polkit-1/actions (where polkitd reads them) while any bus of
//! this process runs, and removed after unless they were there before.

use super::{BIN, prerequisites, repo, run};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const NAME: &str = "org.opensuse.TransactionalLivepatch1";
pub const PATH: &str = "/org/opensuse/TransactionalLivepatch1";
pub const MANAGER: &str = "org.opensuse.TransactionalLivepatch1.Manager";
pub const TRANSACTION: &str = "org.opensuse.TransactionalLivepatch1.Transaction";
pub const ERR: &str = "org.opensuse.TransactionalLivepatch1.Error";
pub const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
pub const POLICY_FILE: &str = "org.opensuse.transactionallivepatch.policy";
pub const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";
pub const NOBODY: u32 = 65534;

/// What the D-Bus tier needs besides the privileged tier's own (checked too
/// when `btrfs`). Under `CI=true` a missing one fails the test.
pub fn dbus_prerequisites(btrfs: bool) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for c in ["dbus-daemon", "busctl", "gdbus", "setpriv"] {
        if !super::have(c) {
            missing.push(c.to_string());
        }
    }
    if !Path::new(POLKITD).exists() {
        missing.push(format!("{POLKITD} (polkitd)"));
    }
    if !missing.is_empty() {
        return super::skip_unless_ci(&format!(
            "D-Bus tier prerequisites missing: {} (run tests/support/deps.sh as root)",
            missing.join(", ")
        ));
    }
    !btrfs || prerequisites()
}

/// Our polkit actions in polkitd's directory, for as long as any bus runs.
///
/// Test processes run in parallel (several test binaries, or checkouts of
/// this repository on one machine) share that file: each holds a shared
/// lock on [`POLICY_LOCK`] while it needs it, and the last one out (the one
/// that can turn its lock exclusive) removes it.
pub struct PolicyInstall;

/// The cross-process lock of the installed polkit actions.
pub const POLICY_LOCK: &str = "/run/tlp-test-polkit-actions.lock";

/// Users in this process, whether the file was someone else's (an installed
/// package's), and this process's shared lock.
type PolicyUsers = (usize, bool, Option<nix::fcntl::Flock<std::fs::File>>);

static POLICY_USERS: Mutex<PolicyUsers> = Mutex::new((0, false, None));

impl PolicyInstall {
    pub fn new() -> PolicyInstall {
        let mut users = POLICY_USERS.lock().unwrap_or_else(|p| p.into_inner());
        let target = Path::new(ACTIONS_DIR).join(POLICY_FILE);
        let ours = std::fs::read(repo().join("dbus").join(POLICY_FILE)).unwrap();
        if users.0 == 0 {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(POLICY_LOCK)
                .unwrap_or_else(|e| panic!("opening {POLICY_LOCK}: {e}"));
            let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockShared)
                .unwrap_or_else(|(_, e)| panic!("locking {POLICY_LOCK}: {e}"));
            // Remember whether someone else (an installed package) put it there.
            users.1 = target.exists() && std::fs::read(&target).ok().as_ref() != Some(&ours);
            std::fs::create_dir_all(ACTIONS_DIR).unwrap();
            std::fs::write(&target, &ours).unwrap();
            users.2 = Some(lock);
        }
        users.0 += 1;
        PolicyInstall
    }
}

impl Drop for PolicyInstall {
    fn drop(&mut self) {
        let mut users = POLICY_USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.0 -= 1;
        if users.0 == 0 {
            let lock = users.2.take();
            let last = lock.as_ref().is_some_and(|l| {
                l.relock(nix::fcntl::FlockArg::LockExclusiveNonblock)
                    .is_ok()
            });
            if last && !users.1 {
                let _ = std::fs::remove_file(Path::new(ACTIONS_DIR).join(POLICY_FILE));
            }
        }
    }
}

/// The `Exec=` command of the activation file: this build, on `root`, with
/// `global` options (`--config`, `--kernel-root`) before `daemon`.
pub fn daemon_exec(root: &Path, idle_exit: u64, global: &[String]) -> String {
    let mut exec = format!("{BIN} --root {}", root.display());
    for g in global {
        exec.push(' ');
        exec.push_str(g);
    }
    exec.push_str(&format!(" daemon --idle-exit {idle_exit}"));
    exec
}

/// Write a system bus configuration into `d` (our bus policy, our activation
/// file running `exec`, the stock system bus's default policy, polkitd's
/// policy) listening on `address`; returns the configuration file.
pub fn write_bus_config(d: &Path, address: &str, exec: &str) -> PathBuf {
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
    // Our activation file, as installed, but running `exec`.
    let activation = std::fs::read_to_string(repo().join(format!("dbus/{NAME}.service")))
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("Exec=") {
                format!("Exec={exec}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(services.join(format!("{NAME}.service")), activation).unwrap();
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
    config_file
}

/// `dbus-daemon` on `config_file`, logging into `d`; `env` is added to its
/// environment, which the services it activates inherit.
pub fn spawn_dbus_daemon(d: &Path, config_file: &Path, env: &[(String, String)]) -> Child {
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config_file.display()))
        .args(["--nofork", "--nopidfile"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(log("bus.log"))
        .stderr(log("bus.err"))
        .spawn()
        .expect("starting dbus-daemon")
}

/// polkitd on the bus at `address`, logging into `d`. polkitd is
/// bus-activated on a real system; here it is started by hand (it drops to
/// its own user).
pub fn spawn_polkitd(d: &Path, address: &str) -> Child {
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    // Without --no-debug: its messages (why it exits, if it does) go to the logs.
    Command::new(POLKITD)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address)
        .stdout(log("polkitd.log"))
        .stderr(log("polkitd.err"))
        .spawn()
        .expect("starting polkitd")
}

/// How to start a [`Bus`].
pub struct BusOptions {
    /// The managed system the activated service is pointed at.
    pub root: PathBuf,
    /// The service's `--idle-exit`, in seconds.
    pub idle_exit: u64,
    /// Global options of the service before `daemon` (`--config`, `--kernel-root`).
    pub global: Vec<String>,
    /// Extra environment of the bus, inherited by the service it activates
    /// (and passed on to its children only for `FAILPOINTS` and `TLP_LOG`).
    pub env: Vec<(String, String)>,
}

impl BusOptions {
    pub fn new(root: &Path, idle_exit: u64) -> BusOptions {
        BusOptions {
            root: root.to_path_buf(),
            idle_exit,
            global: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A private system bus with polkitd on it and our service activatable.
pub struct Bus {
    pub dir: tempfile::TempDir,
    pub address: String,
    bus: Child,
    polkitd: Child,
    _policy: PolicyInstall,
}

pub fn kill(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// How a changing call ended, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallResult {
    /// The method call itself returned this error (before any transaction).
    Refused { name: String, message: String },
    /// A transaction ran and sent `Finished`.
    Finished {
        path: String,
        success: bool,
        name: String,
        message: String,
    },
}

impl CallResult {
    /// The typed error name, empty on success.
    pub fn error_name(&self) -> &str {
        match self {
            CallResult::Refused { name, .. } | CallResult::Finished { name, .. } => name,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CallResult::Refused { message, .. } | CallResult::Finished { message, .. } => message,
        }
    }

    /// Short form for reports: `Error.Busy (call)` or `Error.X (Finished)`.
    pub fn summary(&self) -> String {
        let short = |n: &str| {
            n.strip_prefix(&format!("{ERR}."))
                .map_or(n.to_string(), |s| format!("Error.{s}"))
        };
        match self {
            CallResult::Refused { name, .. } => format!("{} (call)", short(name)),
            CallResult::Finished { success: true, .. } => "success (Finished)".to_string(),
            CallResult::Finished { name, .. } => format!("{} (Finished)", short(name)),
        }
    }
}

impl Bus {
    /// `root` is the managed system the activated service is pointed at.
    pub fn start(root: &Path, idle_exit: u64) -> Bus {
        Bus::start_with(BusOptions::new(root, idle_exit))
    }

    pub fn start_with(opts: BusOptions) -> Bus {
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
        let socket = d.join("bus");
        let address = format!("unix:path={}", socket.display());
        let config = write_bus_config(
            d,
            &address,
            &daemon_exec(&opts.root, opts.idle_exit, &opts.global),
        );
        let bus = spawn_dbus_daemon(d, &config, &opts.env);
        wait_for(|| socket.exists(), "the bus socket");
        let polkitd = spawn_polkitd(d, &address);
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

    pub fn busctl(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let mut c = as_user(uid, "busctl");
        c.arg(format!("--address={}", self.address)).args(args);
        run(&mut c)
    }

    /// `busctl call` of a Manager method; the reply as busctl's JSON.
    pub fn busctl_call(&self, uid: Option<u32>, method: &str, sig_args: &[&str]) -> Output {
        let mut a = vec!["--json=short", "call", NAME, PATH, MANAGER, method];
        a.extend_from_slice(sig_args);
        self.busctl(uid, &a)
    }

    /// `gdbus call` (which prints the D-Bus error name of a failure).
    pub fn gdbus_call(
        &self,
        uid: Option<u32>,
        object: &str,
        method: &str,
        args: &[&str],
    ) -> Output {
        let mut c = as_user(uid, "gdbus");
        c.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .args(["call", "--system", "--dest", NAME, "--object-path", object])
            .args(["--method", method])
            .args(args);
        run(&mut c)
    }

    /// The unique name owning `name`, if any (asked as root).
    pub fn name_owner(&self, name: &str) -> Option<String> {
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
    pub fn service_pid(&self) -> Option<u32> {
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

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .expect("connecting to the private bus")
    }

    /// `pid` was started by bus activation (dbus-daemon says so, and set the
    /// starter address in its environment), not by the test.
    pub fn assert_activated(&self, pid: u32) {
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

    /// The logs, and whether polkitd still runs (for failure messages).
    pub fn diagnostics(&mut self) -> String {
        let polkitd = match self.polkitd.try_wait() {
            Ok(None) => "polkitd runs".to_string(),
            Ok(Some(st)) => format!("polkitd ended: {st}"),
            Err(e) => format!("polkitd: {e}"),
        };
        format!("{polkitd}\n{}", self.logs())
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["bus.log", "bus.err", "polkitd.log", "polkitd.err"] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            s.push_str(&format!("--- {f}\n{text}"));
        }
        s
    }

    /// Call a changing Manager method as root through zbus and, when it
    /// starts a transaction, wait (up to `limit`) for its `Finished`.
    pub async fn call_async<B>(&self, method: &str, body: &B, limit: Duration) -> CallResult
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.connect().await;
        // Subscribed before the call: Finished may come at once.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(TRANSACTION)
            .member("Finished")
            .build()
            .unwrap();
        let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, None)
            .await
            .unwrap();
        let reply = conn
            .call_method(Some(NAME), PATH, Some(MANAGER), method, body)
            .await;
        let path: zbus::OwnedObjectPath = match reply {
            Ok(m) => m.body().deserialize().unwrap(),
            Err(zbus::Error::MethodError(name, message, _)) => {
                return CallResult::Refused {
                    name: name.to_string(),
                    message: message.unwrap_or_default(),
                };
            }
            Err(e) => panic!("{method}: {e}"),
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no Finished of {path} within {limit:?}"))
                .expect("signal stream ended")
                .unwrap();
            if msg.header().path().map(|p| p.as_str()) != Some(path.as_str()) {
                continue;
            }
            let (success, name, message): (bool, String, String) =
                msg.body().deserialize().unwrap();
            return CallResult::Finished {
                path: path.to_string(),
                success,
                name,
                message,
            };
        }
    }

    /// [`Bus::call_async`] from synchronous code.
    pub fn call<B>(&self, method: &str, body: &B, limit: Duration) -> CallResult
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.call_async(method, body, limit))
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

/// `program` as `uid` (through setpriv), or as ourselves (root) for None.
pub fn as_user(uid: Option<u32>, program: &str) -> Command {
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

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn wait_for(f: impl FnMut() -> bool, what: &str) {
    assert!(
        wait_until(Duration::from_secs(20), f),
        "timed out waiting for {what}"
    );
}
