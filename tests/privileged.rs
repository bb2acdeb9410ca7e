//! Privileged tier: the offline half of the transaction on a real btrfs image
//! on a loop device, with real rpm in a chroot, real dracut and lsinitrd.
//! The host kernel has no module support, so every apply here is --boot-only,
//! and the host doubles as the "kernel without livepatch support" case.

mod common;

use common::*;
use std::process::Command;

macro_rules! require {
    () => {
        if !prerequisites() {
            return;
        }
    };
}

fn lsinitrd(sys: &TestSystem, snapshot: u64) -> String {
    let kver = &fixtures().kver;
    let snap = sys.snapshot_path(snapshot);
    let initrd = ["boot/initrd.img-", "boot/initrd-"]
        .iter()
        .map(|p| snap.join(format!("{p}{kver}")))
        .find(|p| p.exists())
        .expect("initrd in snapshot");
    run_ok(Command::new("lsinitrd").arg(&initrd))
}

#[test]
fn apply_boot_only_then_rollback() {
    require!();
    let sys = TestSystem::new();
    let kver = fixtures().kver.clone();
    assert_eq!(sys.default_number(), 1);
    let pkg = rpm("tlp-livepatch-simple");

    let out = sys.tlp(&["apply", "--boot-only", pkg.to_str().unwrap()]);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("snapshot 2"), "{said}");

    // The real tools' view.
    assert_eq!(sys.default_number(), 2);
    assert!(sys.is_readonly(2));
    assert!(sys.is_readonly(1));
    assert!(sys.rpm_installed(2, "tlp-livepatch-simple"));
    assert!(!sys.rpm_installed(1, "tlp-livepatch-simple"));
    let listing = lsinitrd(&sys, 2);
    assert!(
        listing.contains(&format!("modules/{kver}/livepatch/tlp_simple.ko")),
        "module missing from the new initrd:\n{listing}"
    );
    assert!(
        listing.contains("tlp-load-livepatches.sh"),
        "hook missing:\n{listing}"
    );
    assert!(
        !lsinitrd(&sys, 1).contains("tlp_simple.ko"),
        "the old snapshot's initrd changed"
    );
    // snapper's metadata is there and no longer marked in progress.
    let info = std::fs::read_to_string(sys.mnt.join(".snapshots/2/info.xml")).unwrap();
    assert!(
        info.contains("<num>2</num>") && !info.contains("in-progress"),
        "{info}"
    );
    assert!(
        sys.state().mounts.len() == 3,
        "leftover mounts: {:?}",
        sys.state().mounts
    );

    let st = sys.status_json();
    assert_eq!(st["schema_version"], 1);
    assert_eq!(st["default_snapshot"], 2);
    assert_eq!(st["booted_snapshot"], 1);
    assert_eq!(st["reboot_pending"], true);
    assert_eq!(st["livepatch_supported"], false);
    let boot = &st["default_livepatches"];
    let names: Vec<&str> = boot
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kernel_release"] == kver.as_str())
        .flat_map(|k| k["livepatches"].as_array().unwrap())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tlp_simple"]);
    let human = sys.tlp_ok(&["status"]);
    assert!(
        human.contains("tlp_simple") && human.contains("reboot pending"),
        "{human}"
    );

    let out = sys.tlp(&["rollback", "--boot-only"]);
    assert!(out.status.success(), "rollback failed: {}", stderr(&out));
    assert_eq!(sys.default_number(), 1);
    // The rolled-back-from snapshot is kept (rollback can be undone by name).
    assert!(sys.snapshot_path(2).exists());
    let list = sys.tlp_ok(&["list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        list.contains("apply tlp-livepatch-simple") && list.contains("rollback"),
        "{list}"
    );

    // Roll forward again by name.
    sys.tlp_ok(&["rollback", "--boot-only", "2"]);
    assert_eq!(sys.default_number(), 2);
}

#[test]
fn live_apply_on_a_kernel_without_livepatch_is_refused_before_any_change() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    let out = sys.tlp(&["apply", rpm("tlp-livepatch-simple").to_str().unwrap()]);
    assert_eq!(code(&out), Some(14), "{}", stderr(&out));
    let line = error_line(&out);
    assert!(
        line.contains("does not support livepatching") && line.contains("--boot-only"),
        "{line}"
    );
    assert_eq!(sys.state(), before);
}

#[test]
fn not_an_rpm_is_refused_and_nothing_changes() {
    require!();
    let sys = TestSystem::new();
    let bogus = sys.dir.path().join("bogus.rpm");
    std::fs::write(&bogus, b"#!/bin/sh\necho this is not a package\n").unwrap();
    let before = sys.state();
    let out = sys.tlp(&["apply", "--boot-only", bogus.to_str().unwrap()]);
    assert_eq!(code(&out), Some(10), "{}", stderr(&out));
    assert!(
        error_line(&out).to_lowercase().contains("not an rpm"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sys.state(), before);
}

#[test]
fn failing_scriptlet_leaves_everything_as_it_was() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    let out = sys.tlp(&[
        "apply",
        "--boot-only",
        rpm("tlp-badscript").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(16), "{}", stderr(&out));
    let line = error_line(&out);
    assert!(line.contains("installing tlp-badscript"), "{line}");
    assert_eq!(sys.state(), before);
    assert_eq!(sys.default_number(), 1);
    // The journal says what happened and why.
    let list = sys.tlp_ok(&["list"]);
    assert!(
        list.contains("aborted") && list.contains("installing"),
        "{list}"
    );
}

/// `apply --boot-only` of tlp-livepatch-simple with the configuration file
/// `toml` (written into the test system's directory).
fn apply_simple_with_config(sys: &TestSystem, toml: &str) -> std::process::Output {
    let cfg = sys.dir.path().join("test-config.toml");
    std::fs::write(&cfg, toml).unwrap();
    sys.tlp(&[
        "--config",
        cfg.to_str().unwrap(),
        "apply",
        "--boot-only",
        rpm("tlp-livepatch-simple").to_str().unwrap(),
    ])
}

#[test]
fn failing_dracut_leaves_everything_as_it_was() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    let out = apply_simple_with_config(
        &sys,
        "[initrd]\ndracut_args = [\"--no-such-dracut-option\"]\n",
    );
    assert_eq!(code(&out), Some(17), "{}", stderr(&out));
    assert!(
        error_line(&out).contains("dracut failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sys.state(), before);
}

/// The initrd check, with the real dracut and lsinitrd: an initrd built
/// without our dracut module (no hook, no stack file, no module) is refused
/// with what it lacks, and nothing changes.
#[test]
fn initrd_without_our_dracut_module_is_refused() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    let out = apply_simple_with_config(
        &sys,
        "[initrd]\ndracut_args = [\"--omit\", \"transactional-livepatch\"]\n",
    );
    assert_eq!(code(&out), Some(17), "{}", stderr(&out));
    let line = error_line(&out);
    for lacking in [
        "the new initrd lacks the hook tlp-load-livepatches.sh",
        "the stack file etc/transactional-livepatch/stack/",
        "livepatch/tlp_simple.ko",
    ] {
        assert!(line.contains(lacking), "{lacking:?} not in {line}");
    }
    assert_eq!(sys.state(), before);
}

#[test]
fn refusals_of_bad_packages_change_nothing() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    for (pkg, code_expected, words) in [
        ("tlp-nomodule", 11, "no kernel module"),
        ("tlp-notlp", 11, "livepatch"),
        ("tlp-outside", 12, "outside"),
        ("tlp-wrongkver", 13, "kernel 9.9.9-1-default"),
    ] {
        let out = sys.tlp(&["apply", "--boot-only", rpm(pkg).to_str().unwrap()]);
        assert_eq!(code(&out), Some(code_expected), "{pkg}: {}", stderr(&out));
        let line = error_line(&out).to_lowercase();
        assert!(line.contains(words), "{pkg}: {line}");
        assert_eq!(sys.state(), before, "{pkg} changed something");
    }
}

#[test]
fn applying_twice_is_refused_as_already_applied() {
    require!();
    let sys = TestSystem::new();
    let pkg = rpm("tlp-livepatch-simple");
    sys.tlp_ok(&["apply", "--boot-only", pkg.to_str().unwrap()]);
    let before = sys.state();
    let out = sys.tlp(&["apply", "--boot-only", pkg.to_str().unwrap()]);
    assert_eq!(code(&out), Some(23), "{}", stderr(&out));
    assert_eq!(sys.state(), before);
}

#[test]
fn stacked_and_cumulative_boot_stacks() {
    require!();
    let sys = TestSystem::new();
    let kver = fixtures().kver.clone();
    for p in ["tlp-livepatch-stack-a", "tlp-livepatch-stack-b"] {
        sys.tlp_ok(&["apply", "--boot-only", rpm(p).to_str().unwrap()]);
    }
    let stack_file = |n: u64| {
        std::fs::read_to_string(
            sys.snapshot_path(n)
                .join("etc/transactional-livepatch/stack")
                .join(&kver),
        )
        .unwrap()
    };
    let names = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(stack_file(3)), ["tlp_stack_a", "tlp_stack_b"]);
    // Cumulative: v2 replaces v1 in the snapshot (rpm -U), the stack follows.
    let dir = fixtures().rpms.clone();
    let mut cumul: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kernel-livepatch-tlp-cumulative-")
        })
        .collect();
    cumul.sort();
    assert_eq!(cumul.len(), 2, "{cumul:?}");
    sys.tlp_ok(&["apply", "--boot-only", cumul[0].to_str().unwrap()]);
    sys.tlp_ok(&["apply", "--boot-only", cumul[1].to_str().unwrap()]);
    assert_eq!(
        names(stack_file(5)),
        ["tlp_stack_a", "tlp_stack_b", "tlp_cumul_2"]
    );
    let listing = lsinitrd(&sys, 5);
    assert!(
        listing.contains("livepatch/tlp_cumul_2.ko")
            && !listing.contains("livepatch/tlp_cumul_1.ko"),
        "{listing}"
    );
    // The initrd carries exactly the snapshot's stack file.
    let initrd = sys.snapshot_path(5).join(format!("boot/initrd.img-{kver}"));
    let inside = run_ok(
        Command::new("lsinitrd")
            .arg("-f")
            .arg(format!("etc/transactional-livepatch/stack/{kver}"))
            .arg(&initrd),
    );
    assert_eq!(inside.trim(), stack_file(5).trim());
}

/// The CVE ids of a boot livepatch, as `status` lists them: recorded in the
/// stack file at apply time (carried along by later applies), and read from
/// the snapshot's rpm database only for a stack written without them.
#[test]
fn status_lists_the_cves_recorded_at_apply_time() {
    require!();
    let sys = TestSystem::new();
    let kver = fixtures().kver.clone();
    let cve_pkg = build_cve_package(sys.dir.path());
    sys.tlp_ok(&["apply", "--boot-only", cve_pkg.to_str().unwrap()]);
    sys.tlp_ok(&[
        "apply",
        "--boot-only",
        rpm("tlp-livepatch-stack-b").to_str().unwrap(),
    ]);
    let default = sys.default_number();
    let stack_path = sys
        .snapshot_path(default)
        .join("etc/transactional-livepatch/stack")
        .join(&kver);
    let stack = std::fs::read_to_string(&stack_path).unwrap();
    assert!(
        stack.contains(&format!(
            "tlp_stack_a.ko tlp-livepatch-cve-1-1.x86_64 {CVE_INFO},{CVE_CHANGELOG}\n"
        )),
        "{stack}"
    );
    assert!(
        stack.contains("tlp_stack_b.ko tlp-livepatch-stack-b-1-1.x86_64 -\n"),
        "{stack}"
    );
    let cves_in_status = || -> Vec<(String, Vec<String>)> {
        let st = sys.status_json();
        let boot = st["default_livepatches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kernel_release"] == kver.as_str())
            .unwrap_or_else(|| panic!("no boot stack for {kver}: {st}"))
            .clone();
        boot["livepatches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let cves = p["cves"].as_array().unwrap();
                (
                    p["name"].as_str().unwrap().to_string(),
                    cves.iter()
                        .map(|c| c.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let both = vec![CVE_INFO.to_string(), CVE_CHANGELOG.to_string()];
    assert_eq!(
        cves_in_status(),
        [
            ("tlp_stack_a".to_string(), both.clone()),
            ("tlp_stack_b".to_string(), vec![])
        ]
    );
    // status takes the record, not the rpm database: change the record
    // (in the sealed default, unsealed for a moment) and status follows it.
    let rewrite_stack = |text: String| {
        let snap = sys.snapshot_path(default);
        run_ok(
            Command::new("btrfs")
                .args(["-q", "property", "set", "-ts"])
                .arg(&snap)
                .args(["ro", "false"]),
        );
        std::fs::write(&stack_path, text).unwrap();
        run_ok(
            Command::new("btrfs")
                .args(["-q", "property", "set", "-ts"])
                .arg(&snap)
                .args(["ro", "true"]),
        );
    };
    rewrite_stack(stack.replace(&format!("{CVE_INFO},{CVE_CHANGELOG}"), "CVE-2026-0001"));
    assert_eq!(cves_in_status()[0].1, ["CVE-2026-0001"]);
    // A stack without the record (three fields, as older versions wrote
    // it): status asks the snapshot's rpm database instead.
    let three_fields: String = stack
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!(
                    "{}\n",
                    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
                )
            }
        })
        .collect();
    rewrite_stack(three_fields);
    assert_eq!(
        cves_in_status(),
        [
            ("tlp_stack_a".to_string(), both),
            ("tlp_stack_b".to_string(), vec![])
        ]
    );
}

#[test]
fn non_root_is_refused_before_touching_anything() {
    require!();
    let sys = TestSystem::new();
    let before = sys.state();
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(BIN)
        .arg("--root")
        .arg(&sys.mnt)
        .args(["apply", "--boot-only"])
        .arg(rpm("tlp-livepatch-simple")));
    assert_eq!(code(&out), Some(22), "{}", stderr(&out));
    assert!(error_line(&out).contains("must run as root"));
    assert_eq!(sys.state(), before);
}

/// The failpoints this tier can reach: a boot-only apply or rollback on a
/// kernel without livepatching never passes the live step, which the VM tier
/// covers with power cuts.
#[cfg(feature = "failpoints")]
const LIVE_ONLY_POINTS: &[&str] = &["apply::after-live", "rollback::after-live"];

/// After a crash and `recover`: the default is a complete read-only snapshot,
/// nothing is in progress, no journal entry is open, nothing is mounted.
fn assert_consistent(sys: &TestSystem) {
    let st = sys.status_json();
    let default = st["default_snapshot"].as_u64().unwrap();
    assert!(
        sys.is_readonly(default),
        "default {default} is not read-only"
    );
    for s in st["snapshots"].as_array().unwrap() {
        assert_eq!(s["in_progress"], false, "snapshot left in progress: {s}");
        assert_eq!(s["readonly"], true, "read-write snapshot left: {s}");
    }
    assert!(
        st["incomplete_transactions"].as_array().unwrap().is_empty(),
        "{st}"
    );
    assert_eq!(sys.state().mounts.len(), 3, "{:?}", sys.state().mounts);
}

/// The failpoints of a command (`prefix` `apply::` or `rollback::`) that a
/// boot-only run passes, at least `least` of them.
#[cfg(feature = "failpoints")]
fn boot_only_points(prefix: &str, least: usize) -> Vec<&'static str> {
    let points: Vec<&str> = tlp::failpoints::ALL
        .iter()
        .copied()
        .filter(|p| p.starts_with(prefix) && !LIVE_ONLY_POINTS.contains(p))
        .collect();
    assert!(points.len() >= least, "{points:?}");
    points
}

/// Run the tool with `args`, killed (SIGKILL) at failpoint `point`. It must
/// die there and, killed in its private mount namespace, leave nothing
/// mounted.
#[cfg(feature = "failpoints")]
fn kill_at(sys: &TestSystem, args: &[&str], point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = run(sys
        .tlp_cmd(args)
        .env("FAILPOINTS", format!("{point}=return(kill)")));
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: not killed: {}",
        stderr(&out)
    );
    assert_eq!(
        sys.state().mounts.len(),
        3,
        "{point}: {:?}",
        sys.state().mounts
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn crash_at_every_apply_step_then_recover_gives_old_or_new() {
    require!();
    let pkg = rpm("tlp-livepatch-simple");
    for point in boot_only_points("apply::", 6) {
        let sys = TestSystem::new();
        kill_at(
            &sys,
            &["apply", "--boot-only", pkg.to_str().unwrap()],
            point,
        );
        let rec = sys.tlp_ok(&["recover"]);
        assert_consistent(&sys);
        let new_state = point == "apply::after-default";
        if new_state {
            assert_eq!(sys.default_number(), 2, "{point}: {rec}");
            assert!(sys.rpm_installed(2, "tlp-livepatch-simple"), "{point}");
            assert!(rec.contains("rolled-forward"), "{point}: {rec}");
        } else {
            assert_eq!(sys.default_number(), 1, "{point}: {rec}");
            assert!(
                !sys.snapshot_path(2).exists(),
                "{point}: snapshot 2 left behind"
            );
            if point != "apply::after-journal" {
                assert!(rec.contains("rolled-back"), "{point}: {rec}");
            }
        }
        // And the system works again afterwards.
        let again = sys.tlp(&["apply", "--boot-only", pkg.to_str().unwrap()]);
        let expect = if new_state { Some(23) } else { Some(0) };
        assert_eq!(code(&again), expect, "{point}: {}", stderr(&again));
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn crash_at_every_rollback_step_then_recover_gives_old_or_new() {
    require!();
    let pkg = rpm("tlp-livepatch-simple");
    for point in boot_only_points("rollback::", 2) {
        let sys = TestSystem::new();
        sys.tlp_ok(&["apply", "--boot-only", pkg.to_str().unwrap()]);
        kill_at(&sys, &["rollback", "--boot-only"], point);
        sys.tlp_ok(&["recover"]);
        assert_consistent(&sys);
        let expected = if point == "rollback::after-default" {
            1
        } else {
            2
        };
        assert_eq!(sys.default_number(), expected, "{point}");
        assert!(sys.snapshot_path(1).exists() && sys.snapshot_path(2).exists());
    }
}

#[test]
fn recover_deletes_a_stray_in_progress_snapshot() {
    require!();
    let sys = TestSystem::new();
    // What a crash between snapper's create and the journal write leaves.
    std::fs::create_dir(sys.mnt.join(".snapshots/7")).unwrap();
    run_ok(
        Command::new("btrfs")
            .args(["subvolume", "snapshot"])
            .arg(sys.snapshot_path(1))
            .arg(sys.snapshot_path(7)),
    );
    std::fs::write(
        sys.mnt.join(".snapshots/7/info.xml"),
        "<?xml version=\"1.0\"?>\n<snapshot><type>single</type><num>7</num><date>2026-11-23 10:00:00</date><description>x</description><userdata><key>transactional-livepatch</key><value>in-progress</value></userdata></snapshot>\n",
    )
    .unwrap();
    let out = sys.tlp_ok(&["recover"]);
    assert!(out.contains("Deleted incomplete snapshot 7"), "{out}");
    assert!(!sys.mnt.join(".snapshots/7").exists());
    assert_consistent(&sys);
}

/// Give the image's root a snapper configuration, as SLE Micro has, so the
/// tool picks the snapper backend.
fn with_snapper_config(sys: &TestSystem) {
    let s1 = sys.snapshot_path(1);
    let ro = |v: &str| {
        run_ok(
            Command::new("btrfs")
                .args(["property", "set", "-ts"])
                .arg(&s1)
                .args(["ro", v]),
        )
    };
    ro("false");
    std::fs::create_dir_all(s1.join("etc/snapper/configs")).unwrap();
    std::fs::write(
        s1.join("etc/snapper/configs/root"),
        "SUBVOLUME=\"/\"\nFSTYPE=\"btrfs\"\nQGROUP=\"\"\nNUMBER_CLEANUP=\"no\"\nTIMELINE_CREATE=\"no\"\nEMPTY_PRE_POST_CLEANUP=\"no\"\nBACKGROUND_COMPARISON=\"no\"\n",
    )
    .unwrap();
    ro("true");
}

fn snapper_list(sys: &TestSystem) -> String {
    run_ok(
        Command::new("snapper")
            .args(["--no-dbus", "--root"])
            .arg(&sys.mnt)
            .args(["-c", "root", "list"]),
    )
}

#[test]
fn snapper_backend_apply_failure_and_rollback() {
    require!();
    if !std::path::Path::new("/usr/bin/snapper").exists() {
        skip_unless_ci("snapper is missing");
        return;
    }
    let sys = TestSystem::new();
    with_snapper_config(&sys);

    // A failing scriptlet: snapper's snapshot is created and deleted again.
    let before = sys.state();
    let out = sys.tlp(&[
        "apply",
        "--boot-only",
        rpm("tlp-badscript").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(16), "{}", stderr(&out));
    assert_eq!(sys.state(), before);
    let list = snapper_list(&sys);
    assert_eq!(
        list.lines()
            .filter(|l| l.contains("transactional-livepatch"))
            .count(),
        0,
        "{list}"
    );

    let out = sys.tlp(&[
        "apply",
        "--boot-only",
        rpm("tlp-livepatch-simple").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let n = sys.default_number();
    assert!(n >= 2);
    assert!(sys.is_readonly(n));
    assert!(sys.rpm_installed(n, "tlp-livepatch-simple"));
    let list = snapper_list(&sys);
    let row = list
        .lines()
        .find(|l| l.contains("transactional-livepatch apply tlp-livepatch-simple"))
        .unwrap_or_else(|| panic!("snapshot not in snapper list:\n{list}"));
    assert!(row.trim_start().starts_with(&n.to_string()), "{row}");
    assert!(!row.contains("in-progress"), "marker not cleared: {row}");
    sys.tlp_ok(&["rollback", "--boot-only"]);
    assert_eq!(sys.default_number(), 1);
}

/// The images of this tier and of the VM tier hold the tool as its own RPM
/// installed it (tests/support/tool-rpm.sh, make-image.sh), so the package is
/// what these tests exercise (every other test here applies and rolls back
/// with those files).
#[test]
fn the_image_holds_the_tool_from_its_own_rpm() {
    require!();
    let Some(tool_rpm) = tool_rpm() else {
        skip_unless_ci(
            "TLP_TOOL_RPM is not set: the images hold `make install`'s files, not the \
             package's (tests/run-all.sh sets it from tests/support/tool-rpm.sh)",
        );
        return;
    };
    let sys = TestSystem::new();
    let rpm_in_image = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--root")
            .arg(&sys.mnt)
            .args(["--dbpath", "/usr/lib/sysimage/rpm"])
            .args(args);
        run(&mut c)
    };
    let want = run_ok(
        Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", "%{NEVRA}"])
            .arg(&tool_rpm),
    );
    let q = rpm_in_image(&["-q", "--qf", "%{NEVRA}", "transactional-livepatch"]);
    assert!(q.status.success(), "not installed as a package: {q:?}");
    assert_eq!(String::from_utf8_lossy(&q.stdout), want);
    // Every file as the package wrote it (digest, mode, owner), none
    // overwritten by another install path.
    // --nodeps: the Debian side is known to rpm only through a stub package.
    let v = rpm_in_image(&["-V", "--nodeps", "transactional-livepatch"]);
    assert!(
        v.status.success() && v.stdout.is_empty(),
        "rpm -V transactional-livepatch in the image: {}{}",
        String::from_utf8_lossy(&v.stdout),
        stderr(&v)
    );
    // The dracut module the transaction adds is the package's file.
    let owner = rpm_in_image(&[
        "-qf",
        "--qf",
        "%{NAME}",
        "/usr/lib/dracut/modules.d/90transactional-livepatch/tlp-load-livepatches.sh",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout),
        "transactional-livepatch"
    );
}
