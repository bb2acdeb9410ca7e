//! Cockpit tier: the page in cockpit/ in a real Cockpit (cockpit-ws on
//! 127.0.0.1, PAM login of a sudo user), on a real system bus at
//! /run/dbus/system_bus_socket with a real polkitd, our service started by bus
//! activation on the loop-btrfs test system, driven by a real headless
//! Chromium through Playwright (tests/cockpit/drive.js). Screenshots of each
//! step go to target/cockpit-screenshots/.
//!
//! The page is driven through: a read-only session (state and drift visible,
//! inspecting refused); administrative access; a package named by its path
//! inspected (facts shown) and, confirmed, applied boot-only with progress; a
//! boot-only rollback; a package uploaded from the browser into the service's
//! spool, inspected (its CVEs shown) and applied, the upload removed after;
//! updates from a real signed repository served on 127.0.0.1
//! (tests/common/repo.rs): checked, installed boot-only, and, once the test
//! published a newer version with an advisory, shown with its CVE.
//!
//! Drift: the host kernel cannot livepatch, so the daemon's hidden
//! `--kernel-root` points at a small tree that stands in for the running
//! kernel's /proc and /sys: it runs the test image's kernel release and has a
//! livepatch enabled (`tlp_stack_b`) that the default snapshot does not load
//! at boot. Only the status read from it is exercised here (every change in
//! this test is boot-only); loading livepatches into a real kernel is proven
//! in the VM tier (tests/vm/).
//!
//! Run as root. The system bus socket must be free (nothing else may run a
//! system bus on this machine while this test runs).

mod common;

use common::repo::{PKG, PatchServer, configure_root, cumulative, updateinfo};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";
const CHROMIUM: &str = "/usr/bin/chromium";
const SYSTEM_SOCKET: &str = "/run/dbus/system_bus_socket";
const USER: &str = "tlpcockpit";
const PASS: &str = "tlp-Cockpit-test-1";
const PORT: u16 = 9097;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

fn node_dir() -> PathBuf {
    repo().join("target/cockpit-node")
}

fn cockpit_prerequisites() -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for c in [
        "dbus-daemon",
        "node",
        "npm",
        "sudo",
        "useradd",
        "chpasswd",
        "rpmbuild",
    ] {
        if !have(c) {
            missing.push(c.to_string());
        }
    }
    for f in [
        POLKITD,
        COCKPIT_WS,
        CHROMIUM,
        "/usr/share/cockpit/shell/manifest.json",
    ] {
        if !Path::new(f).exists() {
            missing.push(f.to_string());
        }
    }
    if Path::new(SYSTEM_SOCKET).exists()
        && std::os::unix::net::UnixStream::connect(SYSTEM_SOCKET).is_ok()
    {
        missing.push(format!(
            "a free {SYSTEM_SOCKET} (a system bus runs already)"
        ));
    }
    if !missing.is_empty() {
        return skip_unless_ci(&format!(
            "Cockpit tier prerequisites missing: {} (run tests/support/deps.sh as root)",
            missing.join(", ")
        ));
    }
    prerequisites() && common::repo::update_prerequisites()
}

/// playwright-core in target/cockpit-node (npm, once).
fn playwright() {
    let dir = node_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    std::fs::create_dir_all(&dir).unwrap();
    run_ok(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("playwright-core"),
    );
}

/// The livepatch that stands in for the running kernel's, present live but
/// not in the default snapshot: drift.
const DRIFT_PATCH: &str = "tlp_stack_b";
/// The stand-in for the running kernel's /proc and /sys (see the module
/// documentation): the image's kernel release, one livepatch enabled.
fn drifting_kernel_root(dir: &Path) -> PathBuf {
    let k = dir.join("kernel-root");
    let patch = k.join("sys/kernel/livepatch").join(DRIFT_PATCH);
    std::fs::create_dir_all(&patch).unwrap();
    std::fs::write(patch.join("enabled"), "1\n").unwrap();
    std::fs::write(patch.join("transition"), "0\n").unwrap();
    std::fs::create_dir_all(k.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        k.join("proc/sys/kernel/osrelease"),
        format!("{}\n", fixtures().kver),
    )
    .unwrap();
    std::fs::write(
        k.join("proc/modules"),
        format!("{DRIFT_PATCH} 16384 1 - Live 0x0000000000000000 (K)\n"),
    )
    .unwrap();
    k
}

/// Processes started here, stopped (by pid) in reverse order when dropped.
struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        while let Some((_, mut c)) = self.0.pop() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

/// Files put into system directories for the test, removed after.
struct Installed(Vec<PathBuf>);

impl Drop for Installed {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The user's processes (sessions, bridges, session buses) left behind.
fn user_pids(uid: u32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                == Some(&uid.to_string())
        {
            v.push(pid);
        }
    }
    v
}

#[test]
fn page_shows_state_applies_and_rolls_back_in_a_real_cockpit() {
    if !cockpit_prerequisites() {
        return;
    }
    let started = Instant::now();
    playwright();
    let sys = TestSystem::new();
    let pkg = rpm("tlp-livepatch-simple");
    let shots = repo().join("target/cockpit-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    // A sudo user with a password (PAM login, sudo for administrative access).
    if Command::new("id").arg(USER).output().unwrap().status.code() != Some(0) {
        run_ok(Command::new("useradd").args(["-m", "-G", "sudo", "-s", "/bin/bash", USER]));
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    chpasswd
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{USER}:{PASS}\n").as_bytes())
        .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    let uid: u32 = run_ok(Command::new("id").args(["-u", USER]))
        .trim()
        .parse()
        .unwrap();
    let home = PathBuf::from(format!("/home/{USER}"));

    // The page, as the user's own Cockpit package (a copy: the repo need not be
    // readable by the user).
    let pkgdir = home.join(".local/share/cockpit/transactional-livepatch");
    let _ = std::fs::remove_dir_all(&pkgdir);
    std::fs::create_dir_all(&pkgdir).unwrap();
    for e in std::fs::read_dir(repo().join("cockpit")).unwrap().flatten() {
        std::fs::copy(e.path(), pkgdir.join(e.file_name())).unwrap();
    }
    run_ok(
        Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}")])
            .arg(home.join(".local")),
    );

    // The system bus, at its standard socket, with our policy and activation file.
    let dir = tempfile::Builder::new()
        .prefix("tlp-cockpit-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let cve_pkg = build_cve_package(d);
    let kernel_root = drifting_kernel_root(d);
    // The repository the Updates card reads: version 1 at first.
    let server = PatchServer::new();
    server.add(&cumulative(1));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001")]));
    configure_root(&sys, &server.url(), Some(&server.key));
    let update_cfg = common::repo::config(&sys, "");
    let spool = sys.mnt.join("var/lib/transactional-livepatch/spool");
    // The shared private-bus setup (tests/common/bus.rs), listening at the
    // standard socket: Cockpit's bridge only talks to the system bus there.
    let address = format!("unix:path={SYSTEM_SOCKET}");
    let exec = bus::daemon_exec(
        &sys.mnt,
        120,
        &[
            "--kernel-root".to_string(),
            kernel_root.display().to_string(),
            "--config".to_string(),
            update_cfg.clone(),
        ],
    );
    let config_file = bus::write_bus_config(d, &address, &exec);
    std::fs::create_dir_all("/run/dbus").unwrap();
    let _ = std::fs::remove_file(SYSTEM_SOCKET);
    let installed = Installed(vec![PathBuf::from(SYSTEM_SOCKET)]);
    // This tree's polkit actions (an installed or older file may lack one,
    // e.g. .inspect), shared with other test processes under their lock.
    let policy = bus::PolicyInstall::new();
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    let mut procs = Procs(Vec::new());
    procs.0.push((
        "dbus-daemon".into(),
        bus::spawn_dbus_daemon(d, &config_file, &[]),
    ));
    wait_for(Duration::from_secs(10), "the system bus", || {
        std::os::unix::net::UnixStream::connect(SYSTEM_SOCKET).is_ok()
    });
    procs
        .0
        .push(("polkitd".into(), bus::spawn_polkitd(d, &address)));
    wait_for(Duration::from_secs(20), "polkitd on the bus", || {
        Command::new("busctl")
            .args(["--system", "status", "org.freedesktop.PolicyKit1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    procs.0.push((
        "cockpit-ws".into(),
        Command::new(COCKPIT_WS)
            .args([
                "--no-tls",
                "--port",
                &PORT.to_string(),
                "--address",
                "127.0.0.1",
            ])
            .stdout(log("ws.log"))
            .stderr(log("ws.err"))
            .spawn()
            .unwrap(),
    ));
    wait_for(Duration::from_secs(10), "cockpit-ws", || {
        std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok()
    });
    let setup = started.elapsed();

    let mut node = Command::new("node")
        .arg(repo().join("tests/cockpit/drive.js"))
        .env("NODE_PATH", node_dir().join("node_modules"))
        .env("TLP_URL", format!("http://127.0.0.1:{PORT}"))
        .env("TLP_USER", USER)
        .env("TLP_PASS", PASS)
        .env("TLP_PKG", &pkg)
        .env("TLP_UPLOAD", &cve_pkg)
        .env("TLP_KVER", &fixtures().kver)
        .env("TLP_DRIFT_PATCH", DRIFT_PATCH)
        .env("TLP_CVES", format!("{CVE_INFO},{CVE_CHANGELOG}"))
        .env("TLP_UPDATE_PKG", PKG)
        .env("TLP_UPDATE_CVE", "CVE-2026-0002")
        .env("TLP_SHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The browser run asks for version 2 of the update package mid-way.
    let mut node_stderr = node.stderr.take().unwrap();
    let stderr_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut node_stderr, &mut s);
        s
    });
    let mut node_stdin = node.stdin.take();
    let mut stdout_text = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(node.stdout.take().unwrap())) {
        let line = line.unwrap();
        if line == "PUBLISH 2" {
            server.add(&cumulative(2));
            server.publish(&updateinfo(&[(1, "CVE-2026-0001"), (2, "CVE-2026-0002")]));
            if let Some(mut w) = node_stdin.take() {
                w.write_all(b"published\n").unwrap();
            }
        }
        stdout_text.push_str(&line);
        stdout_text.push('\n');
    }
    drop(node_stdin);
    let status = node.wait().unwrap();
    let stderr_text = stderr_text.join().unwrap();
    let logs = ["bus.err", "polkitd.err", "ws.err"]
        .iter()
        .map(|f| {
            format!(
                "--- {f}\n{}",
                std::fs::read_to_string(d.join(f)).unwrap_or_default()
            )
        })
        .collect::<String>();
    let text = format!("{stdout_text}\n{stderr_text}");
    eprintln!("{text}");
    eprintln!(
        "cockpit tier: setup {:?}, browser {:?}, screenshots in {}",
        setup,
        started.elapsed() - setup,
        shots.display()
    );

    // Stop Cockpit and the bus first; then what the user's session left.
    drop(procs);
    for pid in user_pids(uid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    drop(installed);
    drop(policy);

    assert!(status.success(), "browser run failed:\n{text}\n{logs}");
    assert!(text.contains("DONE"), "{text}");
    // What the page did is what the system shows.
    let journal = sys.tlp_ok(&["list", "--json"]);
    assert!(journal.contains("tlp-livepatch-simple"), "{journal}");
    assert!(journal.contains("\"rollback\""), "{journal}");
    assert!(
        journal.contains("tlp-livepatch-cve-1-1.x86_64"),
        "{journal}"
    );
    // The update the page installed is in the default snapshot.
    assert!(journal.contains(&format!("{PKG}-1-1.x86_64")), "{journal}");
    assert!(sys.rpm_installed(sys.default_number(), &format!("{PKG}-1-1")));
    // The upload served its one transaction and is gone; the spool stays
    // root-only.
    let uploaded = text
        .lines()
        .find_map(|l| l.strip_prefix("uploaded to: "))
        .expect("the browser run names the spooled file");
    assert!(
        uploaded.starts_with(&format!("{}/upload-", spool.display())),
        "{uploaded}"
    );
    assert!(
        !Path::new(uploaded).exists(),
        "{uploaded} left in the spool"
    );
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().flatten().collect();
    assert!(left.is_empty(), "spool not empty: {left:?}");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&spool).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o700));
    // The default snapshot now boots the uploaded livepatch, and its package
    // names the CVEs the page showed.
    let st: serde_json::Value = serde_json::from_str(&sys.tlp_ok(&[
        "--kernel-root",
        kernel_root.to_str().unwrap(),
        "status",
        "--json",
    ]))
    .unwrap();
    let boot = st["default_livepatches"].to_string();
    assert!(
        boot.contains(CVE_INFO) && boot.contains(CVE_CHANGELOG),
        "{boot}"
    );
    assert_eq!(st["drift"]["only_live"], serde_json::json!([DRIFT_PATCH]));
}
