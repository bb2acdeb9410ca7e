//! Privileged tier: `check` and `update` against a real patch server.
//!
//! A real rpm-md repository (createrepo_c, updateinfo by modifyrepo_c) of the
//! test livepatch RPMs, signed with a throwaway key (rpmsign for the packages,
//! a detached signature of repomd.xml for the metadata), served by a real HTTP
//! server on 127.0.0.1, and the real zypper of the test rootfs, which trusts
//! the key through its rpm database. The host kernel cannot livepatch, so
//! updates here are --boot-only (the VM tier does them live).

mod common;

use common::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const PKG: &str = "kernel-livepatch-tlp-cumulative";

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The privileged tier's prerequisites plus the patch server's.
fn update_prerequisites() -> bool {
    if !prerequisites() {
        return false;
    }
    let missing: Vec<&str> = [
        "createrepo_c",
        "modifyrepo_c",
        "rpmsign",
        "gpg",
        "gpgconf",
        "python3",
    ]
    .into_iter()
    .filter(|c| !have(c))
    .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "update tests need {} (run tests/support/deps.sh as root)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

macro_rules! require {
    () => {
        if !update_prerequisites() {
            return;
        }
    };
}

fn cumulative(version: u32) -> PathBuf {
    let p = fixtures()
        .rpms
        .join(format!("{PKG}-{version}-1.x86_64.rpm"));
    assert!(p.exists(), "{} missing", p.display());
    p
}

/// A signing key in its own throwaway GNUPGHOME (short path: gpg-agent's
/// socket lives there).
struct Key {
    home: tempfile::TempDir,
    email: String,
}

impl Key {
    fn new(name: &str) -> Key {
        let home = tempfile::Builder::new()
            .prefix("tlp-gpg.")
            .tempdir_in("/tmp")
            .unwrap();
        let email = format!("{name}@tlp-test.invalid");
        let params = home.path().join("params");
        std::fs::write(
            &params,
            format!(
                "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\nName-Real: tlp test {name}\nName-Email: {email}\nExpire-Date: 0\n%commit\n"
            ),
        )
        .unwrap();
        run_ok(
            Command::new("gpg")
                .arg("--homedir")
                .arg(home.path())
                .args(["--batch", "--quiet", "--gen-key"])
                .arg(&params),
        );
        Key { home, email }
    }

    fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home.path()).arg("--batch");
        c
    }

    fn public_armored(&self) -> Vec<u8> {
        let out = run(self.gpg().args(["--armor", "--export", &self.email]));
        assert!(out.status.success() && !out.stdout.is_empty());
        out.stdout
    }

    /// rpmsign, with Debian's rpm pointed at gpg (it defaults to gpg2).
    fn sign_rpm(&self, rpm: &Path) {
        let gpg = run_ok(Command::new("sh").args(["-c", "command -v gpg"]));
        run_ok(
            Command::new("rpmsign")
                .arg("--define")
                .arg(format!("__gpg {}", gpg.trim()))
                .arg("--define")
                .arg(format!("_gpg_name {}", self.email))
                .arg("--define")
                .arg(format!("_gpg_path {}", self.home.path().display()))
                .arg("--addsign")
                .arg(rpm)
                .stdin(Stdio::null()),
        );
    }

    fn detach_sign(&self, file: &Path) {
        let asc = PathBuf::from(format!("{}.asc", file.display()));
        run_ok(
            self.gpg()
                .args(["--yes", "--armor", "--local-user", &self.email, "--output"])
                .arg(&asc)
                .arg("--detach-sign")
                .arg(file),
        );
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // gpg started an agent for this home: stop it, or it outlives the test.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .status();
    }
}

/// An rpm-md repository served over HTTP on 127.0.0.1.
struct PatchServer {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    key: Key,
    server: Child,
    port: u16,
}

impl PatchServer {
    fn new() -> PatchServer {
        let dir = tempfile::Builder::new()
            .prefix("tlp-repo-")
            .tempdir_in(fixtures().golden.parent().unwrap())
            .unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let key = Key::new("repository");
        // Port 0: the kernel picks a free one, the server says which.
        let mut server = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&repo)
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server");
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41235 (http://127.0.0.1:41235/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        PatchServer {
            _dir: dir,
            repo,
            key,
            server,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Add a package, signed with the repository key.
    fn add(&self, rpm: &Path) {
        let dest = self.repo.join(rpm.file_name().unwrap());
        std::fs::copy(rpm, &dest).unwrap();
        self.key.sign_rpm(&dest);
    }

    /// (Re)generate the metadata, with updateinfo, and sign repomd.xml.
    fn publish(&self, updateinfo: &str) {
        run_ok(
            Command::new("createrepo_c")
                .args(["--quiet", "--update"])
                .arg(&self.repo),
        );
        let ui = self.repo.join("../updateinfo.xml");
        std::fs::write(&ui, updateinfo).unwrap();
        run_ok(
            Command::new("modifyrepo_c")
                .arg("--mdtype=updateinfo")
                .arg(&ui)
                .arg(self.repo.join("repodata")),
        );
        self.key.detach_sign(&self.repodata("repomd.xml"));
    }

    fn repodata(&self, f: &str) -> PathBuf {
        self.repo.join("repodata").join(f)
    }
}

impl Drop for PatchServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// updateinfo with one security patch per (version, CVE).
fn updateinfo(patches: &[(u32, &str)]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n");
    for (v, cve) in patches {
        s.push_str(&format!(
            r#"  <update from="tlp-test@tlp-test.invalid" status="stable" type="security" version="1">
    <id>TLP-TEST-2026-{v}</id>
    <title>Security update for the test livepatch, version {v}</title>
    <severity>important</severity>
    <release>tlp test</release>
    <issued date="1790000000"/>
    <references>
      <reference href="https://www.cve.org/CVERecord?id={cve}" id="{cve}" title="{cve}" type="cve"/>
    </references>
    <description>Cumulative test livepatch {v}.</description>
    <pkglist>
      <collection>
        <package name="{PKG}" epoch="0" version="{v}" release="1" arch="x86_64" src="{PKG}-{v}-1.src.rpm">
          <filename>{PKG}-{v}-1.x86_64.rpm</filename>
        </package>
      </collection>
    </pkglist>
  </update>
"#
        ));
    }
    s.push_str("</updates>\n");
    s
}

/// Change the (read-only) default snapshot 1 as an administrator would before
/// the tests: write files, run its own rpm. Read-only again afterwards.
fn in_default_snapshot(sys: &TestSystem, f: impl FnOnce(&Path)) {
    let n = sys.default_number();
    let snap = sys.snapshot_path(n);
    let prop = |v: &str| {
        run_ok(
            Command::new("btrfs")
                .args(["property", "set", "-ts"])
                .arg(&snap)
                .args(["ro", v]),
        );
    };
    prop("false");
    f(&snap);
    prop("true");
}

/// Define the test repository in the root and trust `key` in its rpm db.
fn configure_root(sys: &TestSystem, url: &str, key: Option<&Key>) {
    in_default_snapshot(sys, |snap| {
        let dir = snap.join("etc/zypp/repos.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("tlp-test.repo"),
            format!(
                "[tlp-test]\nname=tlp test livepatches\nenabled=1\nautorefresh=1\nbaseurl={url}\ntype=rpm-md\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n"
            ),
        )
        .unwrap();
        if let Some(key) = key {
            std::fs::write(snap.join("tmp/repo-key.asc"), key.public_armored()).unwrap();
            run_ok(
                Command::new("chroot")
                    .arg(snap)
                    .args(["rpm", "--import", "/tmp/repo-key.asc"]),
            );
            std::fs::remove_file(snap.join("tmp/repo-key.asc")).unwrap();
        }
    });
}

/// The test configuration: follow the test package (its name does not carry
/// a kernel release), plus `extra` TOML lines for [update].
fn config(sys: &TestSystem, extra: &str) -> String {
    let p = sys.dir.path().join("update.toml");
    std::fs::write(&p, format!("[update]\npackages = [\"{PKG}\"]\n{extra}")).unwrap();
    p.display().to_string()
}

fn tlp(sys: &TestSystem, cfg: &str, args: &[&str]) -> Output {
    let mut all = vec!["--config", cfg];
    all.extend_from_slice(args);
    let start = std::time::Instant::now();
    let out = sys.tlp(&all);
    eprintln!(
        "{} -> {:?} in {:.1} s",
        args.join(" "),
        code(&out),
        start.elapsed().as_secs_f64()
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every transaction entry, as JSON.
fn history(sys: &TestSystem) -> Vec<Value> {
    let v: Value = serde_json::from_str(&sys.tlp_ok(&["list", "--json"])).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn check_and_update_from_a_signed_repository() {
    require!();
    let t0 = std::time::Instant::now();
    let sys = TestSystem::new();
    let server = PatchServer::new();
    server.add(&cumulative(1));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001")]));
    configure_root(&sys, &server.url(), Some(&server.key));
    let cfg = config(&sys, "");

    // check: v1 is there, nothing installed; exit 100; nothing changed.
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["check", "--json"]);
    assert_eq!(code(&out), Some(100), "{}", stderr(&out));
    eprintln!("check --json (v1 in the repository):\n{}", stdout(&out));
    let r = json(&out);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["update_available"], true);
    assert_eq!(r["default_snapshot"], 1);
    let p = &r["packages"][0];
    assert_eq!(p["name"], PKG);
    assert_eq!(p["installed"], Value::Null);
    assert_eq!(p["available"], "1-1");
    assert_eq!(p["repository"], "tlp test livepatches");
    assert_eq!(sys.state(), before, "check changed the system");
    let human = tlp(&sys, &cfg, &["check"]);
    assert_eq!(code(&human), Some(100));
    assert!(
        stdout(&human).contains("1-1 available"),
        "{}",
        stdout(&human)
    );

    // update: v1 staged in a new default snapshot.
    let out = tlp(&sys, &cfg, &["update", "--boot-only"]);
    assert!(out.status.success(), "update failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Staged {PKG}-1-1")),
        "{}",
        stdout(&out)
    );
    assert_eq!(sys.default_number(), 2);
    assert!(sys.is_readonly(2));
    assert!(sys.rpm_installed(2, &format!("{PKG}-1-1")));
    assert!(!sys.rpm_installed(1, PKG));
    // The downloaded package went through apply: the history says so.
    let h = history(&sys);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["kind"], "apply");
    assert_eq!(h[0]["outcome"], "committed");
    assert!(
        h[0]["package"]["file"]
            .as_str()
            .unwrap()
            .contains("/var/cache/transactional-livepatch/zypp/packages/tlp-test/"),
        "{:?}",
        h[0]["package"]
    );

    // Idempotent: up to date, a second update changes nothing.
    let out = tlp(&sys, &cfg, &["check", "--json"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["update_available"], false);
    assert_eq!(r["default_snapshot"], 2);
    assert_eq!(r["packages"][0]["installed"], "1-1");
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["update", "--boot-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Up to date"), "{}", stdout(&out));
    assert_eq!(sys.state(), before);
    assert_eq!(history(&sys).len(), 1);

    // v2 published (with its advisory): picked up, with its CVE.
    server.add(&cumulative(2));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001"), (2, "CVE-2026-0002")]));
    let out = tlp(&sys, &cfg, &["check", "--json"]);
    assert_eq!(code(&out), Some(100), "{}", stderr(&out));
    eprintln!("check --json (v2 published):\n{}", stdout(&out));
    let r = json(&out);
    let p = &r["packages"][0];
    assert_eq!(p["installed"], "1-1");
    assert_eq!(p["available"], "2-1");
    assert_eq!(p["cves"], serde_json::json!(["CVE-2026-0002"]));
    assert_eq!(p["advisories"][0]["id"], "TLP-TEST-2026-2");
    assert_eq!(p["advisories"][0]["category"], "security");

    let out = tlp(&sys, &cfg, &["update", "--boot-only", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["result"], "applied");
    assert_eq!(r["applied"][0]["package"], format!("{PKG}-2-1.x86_64"));
    let n = sys.default_number();
    assert_eq!(r["applied"][0]["new_snapshot"], n);
    assert!(sys.rpm_installed(n, &format!("{PKG}-2-1")));
    assert!(!sys.rpm_installed(n, &format!("{PKG}-1-1")));
    // And once more: nothing new, nothing changes.
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["update", "--boot-only", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["result"], "up-to-date");
    assert_eq!(sys.state(), before);
    eprintln!("check/update flow: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn bad_signatures_and_unreachable_repositories_change_nothing() {
    require!();
    let sys = TestSystem::new();
    let server = PatchServer::new();
    server.add(&cumulative(1));
    server.publish(&updateinfo(&[]));
    let cfg = config(&sys, "");

    // 1. The repository's key is not trusted in the root.
    configure_root(&sys, &server.url(), None);
    let before = sys.state();
    for args in [&["check"][..], &["update", "--boot-only"]] {
        let out = tlp(&sys, &cfg, args);
        assert_eq!(code(&out), Some(24), "{args:?}: {}", stderr(&out));
        let line = error_line(&out);
        assert!(
            line.contains("signature could not be verified") && line.contains("unknown key"),
            "{line}"
        );
        assert_eq!(sys.state(), before, "{args:?}");
    }

    // 2. Trusted key, but repomd.xml signed by another one.
    configure_root(&sys, &server.url(), Some(&server.key));
    let evil = Key::new("evil");
    evil.detach_sign(&server.repodata("repomd.xml"));
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["update", "--boot-only"]);
    assert_eq!(code(&out), Some(24), "{}", stderr(&out));
    assert!(error_line(&out).contains("unknown key"), "{}", stderr(&out));
    assert_eq!(sys.state(), before);

    // 3. Metadata changed after signing.
    server.key.detach_sign(&server.repodata("repomd.xml"));
    let repomd = server.repodata("repomd.xml");
    let text = std::fs::read_to_string(&repomd).unwrap();
    std::fs::write(&repomd, text.replace("<revision>", "<revision>1")).unwrap();
    let out = tlp(&sys, &cfg, &["update", "--boot-only"]);
    assert_eq!(code(&out), Some(24), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("Signature verification failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sys.state(), before);

    // 4. Signed metadata, unsigned package.
    std::fs::write(&repomd, &text).unwrap();
    let unsigned = server.repo.join(cumulative(1).file_name().unwrap());
    std::fs::copy(cumulative(1), &unsigned).unwrap();
    server.publish(&updateinfo(&[]));
    let out = tlp(&sys, &cfg, &["check"]);
    assert_eq!(code(&out), Some(100), "metadata is fine: {}", stderr(&out));
    let out = tlp(&sys, &cfg, &["update", "--boot-only"]);
    assert_eq!(code(&out), Some(24), "{}", stderr(&out));
    assert!(error_line(&out).contains("unsigned"), "{}", stderr(&out));
    assert_eq!(sys.state(), before);

    // 5. Nobody listens at the repository's address.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    configure_root(
        &sys,
        &format!("http://127.0.0.1:{closed}/"),
        Some(&server.key),
    );
    let before = sys.state();
    for args in [&["check"][..], &["update", "--boot-only"]] {
        let out = tlp(&sys, &cfg, args);
        assert_eq!(code(&out), Some(26), "{args:?}: {}", stderr(&out));
        let line = error_line(&out);
        assert!(
            line.contains("refreshing the repositories") && line.contains("Connection failed"),
            "{line}"
        );
        assert_eq!(sys.state(), before, "{args:?}");
    }
    assert!(history(&sys).is_empty());
    assert_eq!(sys.default_number(), 1);
}

#[test]
fn automatic_runs_follow_the_configuration_and_are_recorded() {
    require!();
    let sys = TestSystem::new();
    let server = PatchServer::new();
    server.add(&cumulative(1));
    server.publish(&updateinfo(&[(1, "CVE-2026-0001")]));
    configure_root(&sys, &server.url(), Some(&server.key));

    // Switched off: nothing looked at, nothing recorded.
    let cfg = config(&sys, "enabled = false\n");
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["update", "--automatic", "--boot-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("disabled"), "{}", stdout(&out));
    assert_eq!(sys.state(), before);
    assert!(history(&sys).is_empty());

    // Policy "check": recorded as available, nothing applied.
    let cfg = config(&sys, "policy = \"check\"\n");
    let out = tlp(&sys, &cfg, &["update", "--automatic", "--boot-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sys.state(), before);
    let h = history(&sys);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["kind"], "update");
    assert_eq!(h[0]["outcome"], "committed");
    assert_eq!(h[0]["update"]["automatic"], true);
    assert_eq!(h[0]["update"]["policy"], "check");
    assert_eq!(h[0]["update"]["result"], "available");
    assert_eq!(h[0]["update"]["packages"][0]["available"], "1-1");
    let list = sys.tlp_ok(&["list"]);
    assert!(
        list.contains("automatic update (check): update available"),
        "{list}"
    );

    // Policy "apply": applied, and the run names its apply transaction.
    let cfg = config(&sys, "policy = \"apply\"\n");
    let out = tlp(&sys, &cfg, &["update", "--automatic", "--boot-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sys.default_number(), 2);
    let h = history(&sys);
    assert_eq!(h.len(), 3, "{h:?}");
    assert_eq!(h[1]["kind"], "apply");
    assert_eq!(h[2]["kind"], "update");
    assert_eq!(h[2]["update"]["result"], "applied");
    assert_eq!(h[2]["update"]["transactions"][0], h[1]["id"]);
    assert_eq!(h[2]["target"], 2);

    // A failing run is recorded with its typed error; nothing changed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    configure_root(&sys, &format!("http://127.0.0.1:{closed}/"), None);
    let before = sys.state();
    let out = tlp(&sys, &cfg, &["update", "--automatic", "--boot-only"]);
    assert_eq!(code(&out), Some(26), "{}", stderr(&out));
    assert_eq!(sys.state(), before);
    let h = history(&sys);
    let last = h.last().unwrap();
    assert_eq!(last["kind"], "update");
    assert_eq!(last["outcome"], "aborted");
    assert_eq!(last["update"]["result"], "failed");
    assert_eq!(last["error_kind"], "repository-failed");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("Connection failed"),
        "{last}"
    );
    let list = sys.tlp_ok(&["list"]);
    assert!(list.contains("automatic update (apply): failed"), "{list}");
}

/// The units pass `systemd-analyze verify` (in a scratch root holding the
/// host's units and the binary at the path ExecStart names), the timer is in
/// no preset (shipped disabled), and the service's command line parses.
#[test]
fn update_units_verify_and_ship_disabled() {
    if !have("systemd-analyze") {
        let msg = "systemd-analyze missing (Debian package systemd)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true: {msg}");
        }
        eprintln!("skipped: {msg}");
        return;
    }
    let units = repo().join("systemd");
    let service =
        std::fs::read_to_string(units.join("transactional-livepatch-update.service")).unwrap();
    let timer =
        std::fs::read_to_string(units.join("transactional-livepatch-update.timer")).unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .find(|d| Path::new(d).join("sysinit.target").exists())
        .expect("the host's systemd units");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    run_ok(
        Command::new("cp")
            .args(["-a", host_units])
            .arg(root.join("usr/lib/systemd/system")),
    );
    std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
    std::fs::copy(BIN, root.join("usr/sbin/transactional-livepatch")).unwrap();
    let etc = root.join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    let verify = |service: &str, timer: &str| -> Output {
        std::fs::write(etc.join("transactional-livepatch-update.service"), service).unwrap();
        std::fs::write(etc.join("transactional-livepatch-update.timer"), timer).unwrap();
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg(etc.join("transactional-livepatch-update.service"))
            .arg(etc.join("transactional-livepatch-update.timer")))
    };
    let out = verify(&service, &timer);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        stderr(&out),
        stdout(&out)
    );
    // The check has teeth: a broken schedule fails it.
    let out = verify(
        &service,
        &timer.replace("OnCalendar=00/4:00", "OnCalendar=every 4h"),
    );
    assert!(!out.status.success() || !out.stderr.is_empty());

    // Every 4 hours, randomized; enabled only by `systemctl enable`.
    assert!(timer.contains("\nOnCalendar=00/4:00\n"), "{timer}");
    assert!(timer.contains("\nRandomizedDelaySec="), "{timer}");
    assert!(timer.contains("\nWantedBy=timers.target\n"), "{timer}");
    assert!(!service.contains("[Install]"), "started by the timer only");
    for preset in std::fs::read_dir(repo().join("packaging"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".preset"))
    {
        let text = std::fs::read_to_string(preset.path()).unwrap();
        assert!(
            !text.contains("transactional-livepatch-update"),
            "{} enables the update timer",
            preset.path().display()
        );
    }

    // ExecStart is a command line this binary accepts.
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/sbin/transactional-livepatch"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args, ["update", "--automatic"]);
    let out = run(Command::new(BIN).args(&args).arg("--help"));
    assert!(out.status.success(), "{}", stderr(&out));
}
