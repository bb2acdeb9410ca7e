//! Privileged tier: `check` and `update` against a real patch server.
//!
//! A real rpm-md repository (createrepo_c, updateinfo by modifyrepo_c) of the
//! test livepatch RPMs, signed with a throwaway key (rpmsign for the packages,
//! a detached signature of repomd.xml for the metadata), served by a real HTTP
//! server on 127.0.0.1, and the real zypper of the test rootfs, which trusts
//! the key through its rpm database. The host kernel cannot livepatch, so
//! updates here are --boot-only (the VM tier does them live).

mod common;

use common::repo::*;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

macro_rules! require {
    () => {
        if !update_prerequisites() {
            return;
        }
    };
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
        skip_unless_ci("systemd-analyze missing (Debian package systemd)");
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
