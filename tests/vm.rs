//! VM test tier: the live-kernel half of transactional-livepatch, proven on a
//! real kernel under QEMU (TCG), booted like a bootloader boots SLE Micro:
//! kernel and initrd from the btrfs DEFAULT subvolume, root = the default.
//!
//! Each test copies a freshly built image (tests/vm/vm.sh build: the SUSE
//! layout image of tests/support with this build installed by `make install`)
//! and boots it one or more times. In the guest, tests/vm/guest/init (PID 1)
//! records what the kernel says before anything of ours runs, runs
//! `transactional-livepatch boot-check` like the boot unit, then the steps a
//! test asks for, and prints `TLP-RESULT key=value` lines on the serial
//! console; the assertions here are on those lines: /sys/kernel/livepatch,
//! /proc/cmdline and /proc/version markers, /proc/modules, dmesg, and
//! `status --json` inside the guest.
//!
//! Run: `cargo test --features failpoints --test vm -- --test-threads=1`
//! (root, qemu-system-x86_64; see tests/vm/README.md). Serial logs stay in
//! target/tmp/vm-logs/<test>/ for inspection; timings are appended to
//! target/tmp/vm-logs/timings.txt.

mod common;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_transactional-livepatch");
const SIMPLE: &str = "tlp-livepatch-simple";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vm_sh() -> PathBuf {
    repo().join("tests/vm/vm.sh")
}

fn logs_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-logs")
}

fn work_root() -> PathBuf {
    PathBuf::from(std::env::var("TLP_TEST_TMP").unwrap_or_else(|_| "/var/tmp".into()))
        .join("tlp-vm-tests")
}

/// Missing prerequisites fail under CI=true and skip (with a line saying so)
/// otherwise.
fn skip_or_fail(what: &str) -> bool {
    common::skip_unless_ci(&format!("VM tier prerequisites missing: {what}"))
}

fn prerequisites() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        let out = Command::new(vm_sh())
            .arg("prereqs")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", vm_sh().display()))?;
        let missing = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(format!(
                "vm.sh prereqs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing} (run tests/support/deps.sh as root)"))
        }
    });
    match r {
        Ok(()) => true,
        Err(m) => skip_or_fail(m),
    }
}

/// The image every test copies, built once per test process with this build
/// of the tool. Held under a lock file for the life of the process, so two
/// concurrent runs of the tier do not share (or fight over) it.
struct Base {
    image: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn base() -> &'static Path {
    static BASE: OnceLock<Base> = OnceLock::new();
    &BASE
        .get_or_init(|| {
            let dir = work_root();
            std::fs::create_dir_all(&dir).unwrap();
            let lock = std::fs::File::create(dir.join(".lock")).unwrap();
            let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| e)
                .expect("locking the VM test directory");
            // Leftovers of an earlier, killed run.
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().ends_with(".img") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let image = dir.join("base.img");
            let t = Instant::now();
            let out = Command::new(vm_sh())
                .arg("build")
                .arg(&image)
                .arg(BIN)
                .output()
                .expect("running vm.sh build");
            assert!(
                out.status.success(),
                "building the VM image failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            timing_line(&format!("image build: {:.1} s", t.elapsed().as_secs_f64()));
            Base { image, _lock: lock }
        })
        .image
}

fn timing_line(line: &str) {
    eprintln!("vm timing: {line}");
    static FILE: Mutex<()> = Mutex::new(());
    let _g = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::create_dir_all(logs_root());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs_root().join("timings.txt"))
    {
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}

/// One test's machine: its own copy of the base image and its boots.
struct Vm {
    name: String,
    image: PathBuf,
    logs: PathBuf,
    boots: usize,
    started: Instant,
    timings: Vec<String>,
}

impl Vm {
    /// None when the tier cannot run here (and is skipped).
    fn new(name: &str) -> Option<Vm> {
        if !prerequisites() {
            return None;
        }
        let base = base();
        let image = work_root().join(format!("{name}.img"));
        let st = Command::new("cp")
            .arg("--sparse=always")
            .arg(base)
            .arg(&image)
            .status()
            .expect("cp");
        assert!(st.success(), "copying the base image failed");
        let logs = logs_root().join(name);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).unwrap();
        Some(Vm {
            name: name.to_string(),
            image,
            logs,
            boots: 0,
            started: Instant::now(),
            timings: Vec::new(),
        })
    }

    /// Boot from the current default subvolume and run `steps` (see
    /// tests/vm/guest/init). `applies` sizes the time limit: an apply in the
    /// guest (rpm, depmod, dracut under TCG) takes minutes on a busy host.
    fn boot(&mut self, stage: &str, steps: &[&str], applies: u64) -> Boot {
        self.boots += 1;
        let log = self.logs.join(format!("{:02}-{stage}.log", self.boots));
        let timeout = 240 + 600 * applies;
        let t = Instant::now();
        let st = Command::new(vm_sh())
            .arg("boot")
            .arg(&self.image)
            .arg(stage)
            .arg(steps.join(","))
            .arg(&log)
            .arg(timeout.to_string())
            .status()
            .expect("running vm.sh boot");
        let wall = t.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        let boot = Boot::parse(stage, &log, &text, wall);
        let line = boot.timing(&self.name);
        self.timings.push(line.clone());
        timing_line(&line);
        assert_ne!(
            st.code(),
            Some(124),
            "{}: QEMU timed out after {timeout} s{}",
            stage,
            boot.context()
        );
        assert!(
            st.success(),
            "{stage}: vm.sh boot failed ({st}){}",
            boot.context()
        );
        assert!(
            boot.get("stage") == stage,
            "{stage}: the guest init did not run{}",
            boot.context()
        );
        boot
    }
}

/// What a run of the tool on the host said.
struct HostRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Vm {
    /// Run this build of the tool on the host against the image, mounted as
    /// the running system sees itself (tests/vm/vm.sh tool): `--root` is the
    /// mount, relative paths in `args` name the image's files. For steps that
    /// need no running guest kernel (`apply --boot-only`): the same dracut,
    /// dracut module and verification, chrooted into the new snapshot, in
    /// seconds instead of minutes under TCG. Output is kept in the test's log
    /// directory.
    fn host_tool(&mut self, what: &str, args: &[&str]) -> HostRun {
        let t = Instant::now();
        let out = Command::new(vm_sh())
            .arg("tool")
            .arg(&self.image)
            .arg(BIN)
            .args(args)
            .output()
            .expect("running vm.sh tool");
        let run = HostRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let log = self.logs.join(format!("host-{what}.log"));
        let _ = std::fs::write(
            &log,
            format!(
                "args: {args:?}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
                run.code, run.stdout, run.stderr
            ),
        );
        let line = format!(
            "{} / host {what}: {:.1} s",
            self.name,
            t.elapsed().as_secs_f64()
        );
        self.timings.push(line.clone());
        timing_line(&line);
        run
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.image);
        timing_line(&format!(
            "{}: total {:.1} s, {} boot(s)",
            self.name,
            self.started.elapsed().as_secs_f64(),
            self.boots
        ));
    }
}

/// What one boot reported.
struct Boot {
    stage: String,
    log: PathBuf,
    results: Vec<(String, String)>,
    wall: f64,
}

impl Boot {
    fn parse(stage: &str, log: &Path, text: &str, wall: f64) -> Boot {
        let results = text
            .lines()
            .filter_map(|l| l.split_once("TLP-RESULT ").map(|(_, r)| r))
            .filter_map(|r| {
                let r = r.trim_end_matches('\r');
                r.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Boot {
            stage: stage.to_string(),
            log: log.to_path_buf(),
            results,
            wall,
        }
    }

    /// Where to look when an assertion fails.
    fn context(&self) -> String {
        let mut s = format!("\n--- serial log: {}\n", self.log.display());
        let interesting: Vec<&(String, String)> = self
            .results
            .iter()
            .filter(|(k, _)| {
                !k.ends_with(".status") && !k.ends_with(".cmdline") && !k.starts_with("dmesg")
            })
            .collect();
        for (k, v) in interesting.iter().rev().take(60).rev() {
            let v: String = v.chars().take(400).collect();
            let _ = writeln!(s, "{k}={v}");
        }
        for (k, v) in self.results.iter().filter(|(k, _)| k == "dmesg") {
            let _ = writeln!(s, "{k}={v}");
        }
        s
    }

    fn try_get(&self, key: &str) -> Option<&str> {
        self.results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, key: &str) -> &str {
        self.try_get(key)
            .unwrap_or_else(|| panic!("{}: no result {key}{}", self.stage, self.context()))
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.results
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self, key: &str) -> Value {
        let v = self.get(key);
        serde_json::from_str(v).unwrap_or_else(|e| {
            panic!(
                "{}: {key} is not JSON ({e}): {v}{}",
                self.stage,
                self.context()
            )
        })
    }

    fn completed(&self) -> bool {
        self.try_get("done") == Some("1")
    }

    fn assert_completed(&self) {
        assert!(
            self.completed(),
            "{}: the guest did not finish its steps{}",
            self.stage,
            self.context()
        );
    }

    fn rc(&self, step: usize) -> i32 {
        self.get(&format!("step.{step}.rc"))
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad rc{}", self.stage, self.context()))
    }

    /// A tool step's exit code must be `want`.
    fn assert_rc(&self, step: usize, want: i32) {
        let rc = self.rc(step);
        assert_eq!(
            rc,
            want,
            "{}: step {step} ({}) exited {rc}, want {want}{}",
            self.stage,
            self.try_get(&format!("step.{step}.cmd")).unwrap_or("?"),
            self.context()
        );
    }

    /// Names of the enabled, settled livepatches in a facts label (or
    /// "early"), sorted; panics on one still in transition or disabled.
    fn live(&self, label: &str) -> Vec<String> {
        let key = if label == "early" {
            "early.patches".to_string()
        } else {
            format!("facts.{label}.patches")
        };
        let mut out = Vec::new();
        for p in self.get(&key).split_whitespace() {
            let parts: Vec<&str> = p.split(':').collect();
            assert_eq!(
                parts.get(1..),
                Some(&["1", "0"][..]),
                "{}: livepatch {p} is not enabled and settled ({key}){}",
                self.stage,
                self.context()
            );
            out.push(parts[0].to_string());
        }
        out.sort();
        out
    }

    fn status(&self, label: &str) -> Value {
        assert_eq!(
            self.get(&format!("facts.{label}.status_rc")),
            "0",
            "{}: status failed{}",
            self.stage,
            self.context()
        );
        self.json(&format!("facts.{label}.status"))
    }

    fn tool_json(&self, step: usize) -> Value {
        self.json(&format!("step.{step}.json"))
    }

    /// The tool's stderr of a step (progress and error lines, time stamps cut).
    fn stderr(&self, step: usize) -> String {
        self.all(&format!("step.{step}.progress"))
            .iter()
            .map(|l| l.split_once("s ").map_or(*l, |(_, r)| r))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn timing(&self, test: &str) -> String {
        let mut s = format!(
            "{test} / {}: QEMU {:.1} s; guest boot to init {} s",
            self.stage,
            self.wall,
            self.try_get("early.uptime").unwrap_or("?")
        );
        if let Some(r) = self.try_get("early.tool_read_secs") {
            let _ = write!(s, "; reading the tool binary {r} s");
        }
        if let Some(bc) = self.try_get("step.bootcheck.secs") {
            let _ = write!(s, "; boot-check {bc} s");
        }
        for i in 1.. {
            let Some(begin) = self.try_get(&format!("step.{i}.begin")) else {
                break;
            };
            let what = begin.split_once(' ').map_or("", |(_, w)| w);
            let mut progress = self.all(&format!("step.{i}.progress"));
            if progress.is_empty() {
                progress = self.all(&format!("step.{i}.signal"));
            }
            let secs = self.try_get(&format!("step.{i}.secs"));
            if let Some(secs) = secs {
                let _ = write!(s, "; {what} {secs} s");
            } else if !progress.is_empty() {
                let _ = write!(s, "; {what} cut short");
            }
            // Per-phase times of an apply from its progress lines.
            let phases = phase_times(&progress);
            if !phases.is_empty() {
                let _ = write!(s, " ({phases})");
            }
        }
        if !self.completed() {
            s.push_str("; (no power-off: cut or crashed)");
        }
        s
    }
}

/// "[3/7] Installing ..." progress lines with "+12.3s" stamps -> "install
/// 10.1 s, initrd 80.2 s, ..." (each step's time until the next step).
fn phase_times(progress: &[&str]) -> String {
    let mut steps: Vec<(f64, String)> = Vec::new();
    let mut last = 0.0;
    for l in progress {
        let Some((stamp, text)) = l.split_once("s ") else {
            continue;
        };
        let Ok(t) = stamp.trim_start_matches('+').parse::<f64>() else {
            continue;
        };
        last = t;
        let text = text.trim_start();
        // The CLI's "[3/7] Title" lines, or a D-Bus step's "TaskBegin ('Title',)"
        // (gdbus quotes a title holding ' with ").
        let title = if text.starts_with('[') {
            Some(text.split_once("] ").map_or(text, |(_, r)| r))
        } else {
            text.strip_prefix("TaskBegin ('")
                .or_else(|| text.strip_prefix("TaskBegin (\""))
        };
        if let Some(title) = title {
            let word = title.split_whitespace().next().unwrap_or("").to_lowercase();
            steps.push((t, word));
        }
    }
    let mut out = Vec::new();
    for (i, (t, w)) in steps.iter().enumerate() {
        let end = steps.get(i + 1).map_or(last, |n| n.0);
        out.push(format!("{w} {:.1}", end - t));
    }
    out.join(", ")
}

fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            o => o["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    out.sort();
    out
}

/// The livepatches `status --json` says the default snapshot boots with for
/// the running kernel.
fn default_patches(status: &Value) -> Vec<String> {
    let running = status["running_kernel"].as_str().unwrap();
    status["default_livepatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kernel_release"] == running)
        .map(|k| names(&k["livepatches"]))
        .unwrap_or_default()
}

/// Everything "old or new, never half" means, from inside the guest: every
/// snapshot (the default among them) read-only and complete, no open journal
/// entry, and the running kernel's livepatches equal the default's.
fn assert_consistent(b: &Boot, label: &str) {
    let s = b.status(label);
    let ctx = || b.context();
    for snap in s["snapshots"].as_array().unwrap() {
        assert_eq!(
            snap["readonly"],
            true,
            "{}: snapshot {} is not read-only{}",
            b.stage,
            snap["number"],
            ctx()
        );
        assert_eq!(
            snap["in_progress"],
            false,
            "{}: snapshot {} is still in progress{}",
            b.stage,
            snap["number"],
            ctx()
        );
    }
    assert_eq!(
        s["incomplete_transactions"].as_array().unwrap().len(),
        0,
        "{}: open transactions{}",
        b.stage,
        ctx()
    );
    assert_eq!(
        b.get(&format!("facts.{label}.open_journal_entries")),
        "0",
        "{}: journal files still open{}",
        b.stage,
        ctx()
    );
    assert_eq!(
        s["drift"]["in_sync"],
        true,
        "{}: running and default livepatches differ: {}{}",
        b.stage,
        s["drift"],
        ctx()
    );
    let live: Vec<String> = b.live(label);
    assert_eq!(
        live,
        default_patches(&s),
        "{}: the kernel runs {live:?}, the default snapshot boots {:?}{}",
        b.stage,
        default_patches(&s),
        ctx()
    );
    for line in b.all(&format!("facts.{label}.ro")) {
        assert!(
            line.ends_with("ro=true"),
            "{}: btrfs says {line}{}",
            b.stage,
            ctx()
        );
    }
}

fn snapshot_numbers(b: &Boot, label: &str) -> Vec<u64> {
    b.get(&format!("facts.{label}.snapshots"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// "@/.snapshots/N/snapshot" in a findmnt source or get-default line -> N.
fn snapshot_in(text: &str) -> Option<u64> {
    let rest = &text[text.find(".snapshots/")? + ".snapshots/".len()..];
    rest.split('/').next()?.parse().ok()
}

fn markers(b: &Boot, label: &str, which: &str) -> String {
    b.get(&format!("facts.{label}.{which}_marker")).to_string()
}

/// The guest's tool is the package `TLP_TOOL_RPM` names, as its rpm database
/// says (tests/run-all.sh sets it: the package is what the tier tests); a
/// plain `cargo test` run installs this build with `make install` instead.
fn assert_tool_package(b: &Boot) {
    let said = b.get("early.tool_package");
    match std::env::var_os("TLP_TOOL_RPM").filter(|v| !v.is_empty()) {
        Some(rpm) => {
            let out = Command::new("rpm")
                .args(["-qp", "--nosignature", "--qf", "%{NEVRA}"])
                .arg(&rpm)
                .output()
                .expect("rpm -qp");
            let want = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success() && !want.is_empty(), "rpm -qp {rpm:?}");
            assert_eq!(said, want, "the guest's tool package{}", b.context());
        }
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: TLP_TOOL_RPM is not set, so the image does not hold the tool's RPM \
                 (tests/run-all.sh sets it from tests/support/tool-rpm.sh)"
            );
            assert!(said.contains("not installed"), "{said}{}", b.context());
        }
    }
}

// ---------------------------------------------------------------------------

/// Scenario 1, the main job: apply -> live at once; reboot -> loaded by the
/// initrd from the new default; rollback -> gone live; reboot -> gone, the
/// old snapshot boots.
#[test]
fn apply_is_live_survives_reboot_and_rolls_back() {
    let Some(mut vm) = Vm::new("apply_reboot_rollback") else {
        return;
    };

    let b = vm.boot(
        "s1-apply",
        &["facts:before", &format!("apply:{SIMPLE}"), "facts:applied"],
        1,
    );
    b.assert_completed();
    assert_tool_package(&b);
    assert!(b.live("before").is_empty(), "{}", b.context());
    assert_eq!(markers(&b, "before", "cmdline"), "");
    b.assert_rc(2, 0);
    let r = b.tool_json(2);
    assert_eq!(r["live"], true, "{}", b.context());
    assert_eq!(names(&r["loaded"]), ["tlp_simple"], "{}", b.context());
    let new = r["new_snapshot"].as_u64().unwrap();
    let old = r["base_snapshot"].as_u64().unwrap();
    // Live in the same boot: the kernel's sysfs and the patched function.
    assert_eq!(b.live("applied"), ["tlp_simple"], "{}", b.context());
    assert_eq!(
        markers(&b, "applied", "cmdline"),
        "simple",
        "{}",
        b.context()
    );
    assert!(b.get("facts.applied.modules").contains("tlp_simple"));
    let s = b.status("applied");
    assert_eq!(s["default_snapshot"], new, "{}", b.context());
    assert_eq!(s["booted_snapshot"], old, "{}", b.context());
    assert_eq!(
        snapshot_in(b.get("facts.applied.default")),
        Some(new),
        "btrfs get-default{}",
        b.context()
    );
    assert_consistent(&b, "applied");

    let b = vm.boot(
        "s1-reboot",
        &["facts:booted", "rollback", "facts:rolled_back"],
        0,
    );
    b.assert_completed();
    // Enabled before init ran anything: only the initrd can have loaded it.
    assert_eq!(b.live("early"), ["tlp_simple"], "{}", b.context());
    assert_eq!(b.get("early.cmdline_marker"), "simple", "{}", b.context());
    assert!(
        b.all("early.dmesg")
            .iter()
            .any(|l| l
                .contains("transactional-livepatch: loaded livepatch tlp_simple from the initrd")),
        "no initrd load message in dmesg{}",
        b.context()
    );
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(new),
        "{}",
        b.context()
    );
    let bc = b.json("step.bootcheck.json");
    assert_eq!(
        names(&bc["loaded"]),
        Vec::<String>::new(),
        "{}",
        b.context()
    );
    assert_eq!(bc["in_sync"], true, "{}", b.context());
    let s = b.status("booted");
    assert_eq!(s["booted_snapshot"], new);
    assert_eq!(s["default_snapshot"], new);
    assert_consistent(&b, "booted");
    b.assert_rc(2, 0);
    let r = b.tool_json(2);
    assert_eq!(r["from_snapshot"], new);
    assert_eq!(r["to_snapshot"], old);
    assert_eq!(r["live"], true);
    assert_eq!(names(&r["removed"]), ["tlp_simple"], "{}", b.context());
    assert!(b.live("rolled_back").is_empty(), "{}", b.context());
    assert_eq!(markers(&b, "rolled_back", "cmdline"), "", "{}", b.context());
    assert!(!b.get("facts.rolled_back.modules").contains("tlp_simple"));
    assert_eq!(b.status("rolled_back")["default_snapshot"], old);
    assert_consistent(&b, "rolled_back");

    let b = vm.boot("s1-after-rollback", &["facts:final"], 0);
    b.assert_completed();
    assert!(b.live("early").is_empty(), "{}", b.context());
    assert_eq!(b.get("early.cmdline_marker"), "");
    assert!(
        !b.all("early.dmesg")
            .iter()
            .any(|l| l.contains("loaded livepatch")),
        "{}",
        b.context()
    );
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(old),
        "{}",
        b.context()
    );
    let s = b.status("final");
    assert_eq!(s["booted_snapshot"], old);
    assert_eq!(s["default_snapshot"], old);
    assert_consistent(&b, "final");
}

/// Scenario 2: cumulative v1 -> v2 replaces v1 (its module removed), and a
/// rollback brings v1 back live (v2 gone).
#[test]
fn cumulative_upgrade_replaces_and_rolls_back() {
    let Some(mut vm) = Vm::new("cumulative") else {
        return;
    };
    let b = vm.boot(
        "s2-cumulative",
        &[
            "apply-v:kernel-livepatch-tlp-cumulative-1-1",
            "facts:v1",
            "apply-v:kernel-livepatch-tlp-cumulative-2-1",
            "facts:v2",
            "rollback",
            "facts:rolled_back",
        ],
        2,
    );
    b.assert_completed();
    b.assert_rc(1, 0);
    let v1_snapshot = b.tool_json(1)["new_snapshot"].as_u64().unwrap();
    assert_eq!(b.live("v1"), ["tlp_cumul_1"], "{}", b.context());
    assert_eq!(markers(&b, "v1", "cmdline"), "cumul1");
    assert_consistent(&b, "v1");

    b.assert_rc(3, 0);
    let r = b.tool_json(3);
    assert_eq!(names(&r["loaded"]), ["tlp_cumul_2"], "{}", b.context());
    assert_eq!(names(&r["replaced"]), ["tlp_cumul_1"], "{}", b.context());
    assert_eq!(b.live("v2"), ["tlp_cumul_2"], "{}", b.context());
    assert_eq!(markers(&b, "v2", "cmdline"), "cumul2");
    let modules = b.get("facts.v2.modules");
    assert!(
        !modules.split_whitespace().any(|m| m == "tlp_cumul_1"),
        "v1's module is still loaded after v2 replaced it: {modules}{}",
        b.context()
    );
    assert_eq!(default_patches(&b.status("v2")), ["tlp_cumul_2"]);
    assert_consistent(&b, "v2");

    b.assert_rc(5, 0);
    let r = b.tool_json(5);
    assert_eq!(r["to_snapshot"], v1_snapshot, "{}", b.context());
    assert_eq!(b.live("rolled_back"), ["tlp_cumul_1"], "{}", b.context());
    assert_eq!(markers(&b, "rolled_back", "cmdline"), "cumul1");
    let modules = b.get("facts.rolled_back.modules");
    assert!(
        !modules.split_whitespace().any(|m| m == "tlp_cumul_2"),
        "v2's module is still loaded after the rollback: {modules}{}",
        b.context()
    );
    assert_eq!(b.status("rolled_back")["default_snapshot"], v1_snapshot);
    assert_consistent(&b, "rolled_back");
}

/// Scenario 3: two stacked (non-replace) patches of different functions, both
/// visible; a rollback removes only the newer one.
#[test]
fn stacked_patches_roll_back_one() {
    let Some(mut vm) = Vm::new("stacked") else {
        return;
    };
    let b = vm.boot(
        "s3-stacked",
        &[
            "apply:tlp-livepatch-stack-a",
            "apply:tlp-livepatch-stack-b",
            "facts:both",
            "rollback",
            "facts:rolled_back",
        ],
        2,
    );
    b.assert_completed();
    b.assert_rc(1, 0);
    let a_snapshot = b.tool_json(1)["new_snapshot"].as_u64().unwrap();
    b.assert_rc(2, 0);
    assert_eq!(
        b.live("both"),
        ["tlp_stack_a", "tlp_stack_b"],
        "{}",
        b.context()
    );
    assert_eq!(markers(&b, "both", "cmdline"), "stack_a");
    assert_eq!(markers(&b, "both", "version"), "stack_b");
    assert_consistent(&b, "both");

    b.assert_rc(4, 0);
    let r = b.tool_json(4);
    assert_eq!(r["to_snapshot"], a_snapshot);
    assert_eq!(names(&r["removed"]), ["tlp_stack_b"], "{}", b.context());
    assert_eq!(b.live("rolled_back"), ["tlp_stack_a"], "{}", b.context());
    assert_eq!(markers(&b, "rolled_back", "cmdline"), "stack_a");
    assert_eq!(markers(&b, "rolled_back", "version"), "");
    assert!(
        !b.get("facts.rolled_back.modules")
            .split_whitespace()
            .any(|m| m == "tlp_stack_b"),
        "{}",
        b.context()
    );
    assert_consistent(&b, "rolled_back");
}

/// Scenario 4: a transition that cannot finish (a kthread sleeps in the
/// patched function) is reported with its blocker, reversed, the module
/// removed, and nothing of the transaction stays: same default, no snapshot.
#[test]
fn stalled_transition_is_reversed() {
    let Some(mut vm) = Vm::new("stall") else {
        return;
    };
    let b = vm.boot(
        "s4-stall",
        &[
            "insmod:tlp_stall_holder",
            "facts:before",
            "apply:tlp-livepatch-stall",
            "facts:after",
        ],
        1,
    );
    b.assert_completed();
    assert_eq!(
        b.get("step.1.rc"),
        "0",
        "insmod of the holder{}",
        b.context()
    );
    let before = b.status("before");
    b.assert_rc(3, 19);
    let err = b.stderr(3);
    let error_line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{err}{}", b.context()));
    assert!(
        error_line.contains("tlp_stall_holder"),
        "the error does not name the blocking task: {error_line}{}",
        b.context()
    );
    assert!(b.live("after").is_empty(), "{}", b.context());
    let modules = b.get("facts.after.modules");
    assert!(
        !modules.split_whitespace().any(|m| m == "tlp_stall"),
        "the stalled patch's module is still loaded: {modules}{}",
        b.context()
    );
    let after = b.status("after");
    assert_eq!(after["default_snapshot"], before["default_snapshot"]);
    assert_eq!(
        snapshot_numbers(&b, "after"),
        snapshot_numbers(&b, "before"),
        "a snapshot of the failed apply is left{}",
        b.context()
    );
    // Same subvolume id and path ("gen" moves with every snapshot taken of it).
    let id_path = |label: &str| {
        let line = b.get(&format!("facts.{label}.default"));
        let w: Vec<&str> = line.split_whitespace().collect();
        (w.get(1).copied(), w.last().copied())
    };
    assert_eq!(id_path("after"), id_path("before"), "{}", b.context());
    assert_consistent(&b, "after");
}

/// Scenario 5: power cuts in the middle of an apply. After each, the next
/// boot's boot-check (what the boot unit runs) leaves the old or the new
/// state, never a half: here after the live load (the default was not switched
/// yet: back to old) and right after the default switch (forward to new).
/// Then one in the middle of a rollback (patch already removed live, default
/// not yet switched back): the rollback is undone.
#[test]
fn power_cut_mid_apply_recovers_old_or_new() {
    if !cfg!(feature = "failpoints") {
        skip_or_fail("a failpoints build (cargo test --features failpoints)");
        return;
    }
    let Some(mut vm) = Vm::new("power_cut") else {
        return;
    };

    let b = vm.boot(
        "s5-cut-after-live",
        &["facts:before", &format!("apply:{SIMPLE}:apply::after-live")],
        1,
    );
    assert!(
        !b.completed(),
        "the power cut at apply::after-live did not happen{}",
        b.context()
    );
    assert!(
        b.stderr(2).contains("[7/7]") || b.stderr(2).contains("[6/7]"),
        "{}",
        b.context()
    );
    let old = b.status("before")["default_snapshot"].as_u64().unwrap();

    let b = vm.boot(
        "s5-after-live-recovered",
        &[
            "facts:recovered",
            &format!("apply:{SIMPLE}:apply::after-default"),
        ],
        1,
    );
    assert!(
        !b.completed(),
        "the power cut at apply::after-default did not happen{}",
        b.context()
    );
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(old),
        "{}",
        b.context()
    );
    let bc = b.json("step.bootcheck.json");
    let actions = bc["recover"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{}", b.context());
    assert_eq!(actions[0]["action"], "rolled-back", "{}", b.context());
    assert!(b.live("recovered").is_empty(), "{}", b.context());
    assert_eq!(snapshot_numbers(&b, "recovered"), [old], "{}", b.context());
    assert_eq!(b.status("recovered")["default_snapshot"], old);
    assert_consistent(&b, "recovered");

    let b = vm.boot(
        "s5-after-default-recovered",
        &["facts:recovered", "rollback-cut:rollback::after-live"],
        0,
    );
    assert!(
        !b.completed(),
        "the power cut at rollback::after-live did not happen{}",
        b.context()
    );
    let bc = b.json("step.bootcheck.json");
    let actions = bc["recover"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{}", b.context());
    assert_eq!(actions[0]["action"], "rolled-forward", "{}", b.context());
    let s = b.status("recovered");
    let new = s["default_snapshot"].as_u64().unwrap();
    assert_ne!(new, old, "{}", b.context());
    assert_eq!(s["booted_snapshot"], new, "{}", b.context());
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(new),
        "{}",
        b.context()
    );
    // The new default boots with the patch, loaded by its initrd.
    assert_eq!(b.live("early"), ["tlp_simple"], "{}", b.context());
    assert_eq!(b.live("recovered"), ["tlp_simple"], "{}", b.context());
    assert_eq!(
        snapshot_numbers(&b, "recovered"),
        [old, new],
        "{}",
        b.context()
    );
    assert_consistent(&b, "recovered");
    // The rollback got as far as removing the patch from the running kernel
    // when the power went.
    assert!(
        b.stderr(2).contains("disabling livepatch tlp_simple"),
        "{}",
        b.context()
    );

    // The default was never switched back: the machine boots the new
    // snapshot with its patch, and the rollback is undone, not half-done.
    let b = vm.boot("s5-rollback-cut-recovered", &["facts:recovered"], 0);
    b.assert_completed();
    let bc = b.json("step.bootcheck.json");
    let actions = bc["recover"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{}", b.context());
    assert_eq!(actions[0]["action"], "rolled-back", "{}", b.context());
    let s = b.status("recovered");
    assert_eq!(s["default_snapshot"], new, "{}", b.context());
    assert_eq!(s["booted_snapshot"], new, "{}", b.context());
    assert_eq!(b.live("early"), ["tlp_simple"], "{}", b.context());
    assert_eq!(b.live("recovered"), ["tlp_simple"], "{}", b.context());
    assert_eq!(
        snapshot_numbers(&b, "recovered"),
        [old, new],
        "{}",
        b.context()
    );
    assert_consistent(&b, "recovered");
}

/// The `key=value` words of a guest `proc_info` line (pid, ppid, uid, cmd, ...).
fn proc_field<'a>(line: &'a str, field: &str) -> &'a str {
    let start = line
        .find(&format!("{field}="))
        .unwrap_or_else(|| panic!("no {field}= in {line:?}"))
        + field.len()
        + 1;
    let rest = &line[start..];
    // cmd= runs to the next " word=" (it has spaces itself).
    let end = [" starter=", " user="]
        .iter()
        .filter_map(|m| rest.find(m))
        .chain(if field == "cmd" { None } else { rest.find(' ') })
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

impl Boot {
    /// A D-Bus step (guest/init `dbus_step`): its transaction finished with
    /// success, the service was started by the bus, polkitd (activated by
    /// the bus too, running as its own user) decided, and the signals came
    /// in rpm-ostree's order. Returns the signals and the report.
    fn assert_dbus_step(&self, step: usize) -> (Vec<String>, Value) {
        let k = |s: &str| format!("step.{step}.{s}");
        let ctx = || self.context();
        let call = self.get(&k("call"));
        assert!(
            call.starts_with("(objectpath '/org/opensuse/TransactionalLivepatch1/Transaction/"),
            "{}: the call did not return a transaction object: {call}{}",
            self.stage,
            ctx()
        );
        let bus = self.get(&k("bus"));
        let bus_pid = proc_field(bus, "pid");
        assert!(
            proc_field(bus, "cmd").starts_with("dbus-daemon --system"),
            "{bus}{}",
            ctx()
        );
        // Bus activation: the bus ran the activation file's Exec= line (its
        // launch helper execs it; the process is then reparented to PID 1),
        // logged so, and told the service which bus started it.
        let service = self.get(&k("service"));
        assert_eq!(
            proc_field(service, "cmd"),
            "/usr/sbin/transactional-livepatch daemon",
            "{}",
            ctx()
        );
        assert_eq!(proc_field(service, "uid"), "0", "{service}{}", ctx());
        assert_eq!(
            proc_field(service, "starter"),
            "system",
            "{service}{}",
            ctx()
        );
        assert!(
            self.all("dbus.log").iter().any(|l| l
                .contains("Successfully activated service 'org.opensuse.TransactionalLivepatch1'")),
            "the bus did not log the activation{}",
            ctx()
        );
        let polkit = self.get(&k("polkit"));
        assert!(
            proc_field(polkit, "cmd").starts_with("/usr/lib/polkit-1/polkitd"),
            "{polkit}{}",
            ctx()
        );
        assert_eq!(proc_field(polkit, "user"), "polkitd", "{polkit}{}", ctx());
        assert_ne!(proc_field(polkit, "pid"), bus_pid, "{polkit}{}", ctx());
        assert!(
            self.all("dbus.log")
                .iter()
                .any(|l| l.contains("Successfully activated service 'org.freedesktop.PolicyKit1'")),
            "the bus did not log polkitd's activation{}",
            ctx()
        );

        // The Transaction interface's signals (PropertiesChanged of the same
        // object, also captured, left out).
        let signals: Vec<String> = self
            .all(&k("signal"))
            .iter()
            .map(|l| l.split_once("s ").map_or(*l, |(_, r)| r).to_string())
            .filter(|s| !s.starts_with("org.freedesktop.DBus.Properties."))
            .collect();
        assert_eq!(
            self.get(&k("finished")),
            "Finished (true, '', '')",
            "{}: the transaction did not succeed{}",
            self.stage,
            ctx()
        );
        assert_eq!(
            signals.last().map(String::as_str),
            Some("Finished (true, '', '')"),
            "{}",
            ctx()
        );
        assert!(
            signals[0].starts_with("TaskBegin "),
            "the first signal is {}{}",
            signals[0],
            ctx()
        );
        // Every step begins, then ends before the next begins; percentages
        // only grow and reach 100 before Finished.
        let mut open = false;
        let mut percent = 0u32;
        for s in &signals {
            let (name, args) = s.split_once(' ').unwrap_or((s, ""));
            match name {
                "TaskBegin" => {
                    assert!(!open, "TaskBegin inside a task: {signals:#?}");
                    open = true;
                }
                "TaskEnd" => {
                    assert!(open, "TaskEnd without TaskBegin: {signals:#?}");
                    open = false;
                }
                "PercentProgress" => {
                    let p: u32 = args
                        .rsplit_once(", ")
                        .and_then(|(_, p)| {
                            p.trim_end_matches(')')
                                .trim_start_matches("uint32 ")
                                .parse()
                                .ok()
                        })
                        .unwrap_or_else(|| panic!("bad PercentProgress {s}"));
                    assert!(p >= percent, "progress went back: {signals:#?}");
                    percent = p;
                }
                "Message" | "Finished" => {}
                other => panic!("unexpected signal {other}: {signals:#?}"),
            }
        }
        assert!(!open, "a task never ended: {signals:#?}");
        assert_eq!(percent, 100, "{signals:#?}");
        self.assert_rc(step, 0);
        (signals, self.json(&k("report")))
    }
}

/// Scenario 6 (issue 4): the main job through the D-Bus API, on the guest's
/// real system bus: Apply from gdbus → live at once (Finished after the
/// progress signals); reboot → loaded by the initrd of the new default;
/// Rollback through D-Bus → gone live; reboot → the old snapshot boots.
#[test]
fn dbus_apply_is_live_and_rolls_back() {
    let Some(mut vm) = Vm::new("dbus") else {
        return;
    };
    let b = vm.boot(
        "s6-dbus-apply",
        &[
            "facts:before",
            &format!("dbus-apply:{SIMPLE}"),
            "facts:applied",
        ],
        1,
    );
    b.assert_completed();
    assert!(b.live("before").is_empty(), "{}", b.context());
    let old = b.status("before")["default_snapshot"].as_u64().unwrap();
    // polkit refuses an unprivileged caller with the typed error.
    let denied = b.get("step.2.denied");
    assert!(
        denied.contains("org.opensuse.TransactionalLivepatch1.Error.NotAuthorized"),
        "nobody's Apply was not refused: {denied}{}",
        b.context()
    );
    let (signals, r) = b.assert_dbus_step(2);
    for want in [
        "TaskBegin ('Checking the package'",
        "Message ('snapshot ",
        "Message ('/boot/initrd",
        "TaskBegin ('Loading the livepatch into the running kernel'",
    ] {
        assert!(
            signals.iter().any(|s| s.starts_with(want)),
            "no {want}… signal: {signals:#?}"
        );
    }
    assert_eq!(r["live"], true, "{}", b.context());
    assert_eq!(names(&r["loaded"]), ["tlp_simple"], "{}", b.context());
    assert_eq!(r["base_snapshot"], old, "{}", b.context());
    let new = r["new_snapshot"].as_u64().unwrap();
    assert_eq!(b.live("applied"), ["tlp_simple"], "{}", b.context());
    assert_eq!(markers(&b, "applied", "cmdline"), "simple");
    assert_eq!(b.status("applied")["default_snapshot"], new);
    assert_eq!(snapshot_in(b.get("facts.applied.default")), Some(new));
    assert_consistent(&b, "applied");

    let b = vm.boot(
        "s6-reboot",
        &["facts:booted", "dbus-rollback", "facts:rolled_back"],
        0,
    );
    b.assert_completed();
    assert_eq!(b.live("early"), ["tlp_simple"], "{}", b.context());
    assert!(
        b.all("early.dmesg")
            .iter()
            .any(|l| l
                .contains("transactional-livepatch: loaded livepatch tlp_simple from the initrd")),
        "no initrd load message in dmesg{}",
        b.context()
    );
    assert_eq!(snapshot_in(b.get("early.root")), Some(new));
    assert_consistent(&b, "booted");
    let (signals, r) = b.assert_dbus_step(2);
    for want in [
        "TaskBegin (\"Changing the running kernel's livepatches\"",
        "Message ('disabling livepatch tlp_simple'",
    ] {
        assert!(
            signals.iter().any(|s| s.starts_with(want)),
            "no {want}… signal: {signals:#?}"
        );
    }
    assert_eq!(r["from_snapshot"], new, "{}", b.context());
    assert_eq!(r["to_snapshot"], old, "{}", b.context());
    assert_eq!(r["live"], true, "{}", b.context());
    assert_eq!(names(&r["removed"]), ["tlp_simple"], "{}", b.context());
    assert!(b.live("rolled_back").is_empty(), "{}", b.context());
    assert_eq!(markers(&b, "rolled_back", "cmdline"), "");
    assert!(!b.get("facts.rolled_back.modules").contains("tlp_simple"));
    assert_eq!(b.status("rolled_back")["default_snapshot"], old);
    assert_consistent(&b, "rolled_back");

    let b = vm.boot("s6-after-rollback", &["facts:final"], 0);
    b.assert_completed();
    assert!(b.live("early").is_empty(), "{}", b.context());
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(old),
        "{}",
        b.context()
    );
    assert_eq!(b.status("final")["default_snapshot"], old);
    assert_consistent(&b, "final");
}

/// Scenario 7 (issue 8): `check` and `update` against an rpm-md repository
/// (createrepo_c, zypper in the guest): v1 is found and applied live; the
/// repository gains v2, which replaces v1 live (cumulative); a further
/// `update` changes nothing; a reboot boots v2 from its initrd.
#[test]
fn update_from_a_repository_is_live() {
    let Some(mut vm) = Vm::new("update") else {
        return;
    };
    const PKG: &str = "kernel-livepatch-tlp-cumulative";
    let b = vm.boot(
        "s7-update",
        &[
            "facts:before",
            "repo:v1",
            "check",
            "update",
            "facts:v1",
            "repo:v2",
            "check",
            "update",
            "facts:v2",
            "update",
            "facts:again",
        ],
        2,
    );
    b.assert_completed();
    let old = b.status("before")["default_snapshot"].as_u64().unwrap();
    let package = |r: &Value| r["packages"][0].clone();

    // check: v1 available, nothing installed (exit 100).
    b.assert_rc(3, 100);
    let c = b.tool_json(3);
    assert_eq!(c["update_available"], true, "{}", b.context());
    assert_eq!(c["default_snapshot"], old);
    assert_eq!(package(&c)["name"], PKG);
    assert_eq!(package(&c)["installed"], Value::Null);
    assert_eq!(package(&c)["available"], "1-1", "{}", b.context());

    // update: v1 downloaded and applied live.
    b.assert_rc(4, 0);
    let u = b.tool_json(4);
    assert_eq!(u["result"], "applied", "{}", b.context());
    let a = &u["applied"][0];
    assert_eq!(a["package"], format!("{PKG}-1-1.x86_64"));
    assert_eq!(a["live"], true, "{}", b.context());
    assert_eq!(names(&a["loaded"]), ["tlp_cumul_1"], "{}", b.context());
    let v1 = a["new_snapshot"].as_u64().unwrap();
    assert_eq!(b.live("v1"), ["tlp_cumul_1"], "{}", b.context());
    assert_eq!(markers(&b, "v1", "cmdline"), "cumul1");
    assert_eq!(b.status("v1")["default_snapshot"], v1);
    assert_consistent(&b, "v1");

    // The repository now has v2: check sees it, update replaces v1 live.
    b.assert_rc(7, 100);
    let c = b.tool_json(7);
    assert_eq!(package(&c)["installed"], "1-1", "{}", b.context());
    assert_eq!(package(&c)["available"], "2-1", "{}", b.context());
    b.assert_rc(8, 0);
    let u = b.tool_json(8);
    assert_eq!(u["result"], "applied", "{}", b.context());
    let a = &u["applied"][0];
    assert_eq!(a["package"], format!("{PKG}-2-1.x86_64"));
    assert_eq!(a["live"], true);
    assert_eq!(names(&a["loaded"]), ["tlp_cumul_2"], "{}", b.context());
    assert_eq!(names(&a["replaced"]), ["tlp_cumul_1"], "{}", b.context());
    let v2 = a["new_snapshot"].as_u64().unwrap();
    // Replace semantics: only v2 in sysfs, v1's module gone.
    assert_eq!(b.live("v2"), ["tlp_cumul_2"], "{}", b.context());
    assert_eq!(markers(&b, "v2", "cmdline"), "cumul2");
    assert!(
        !b.get("facts.v2.modules")
            .split_whitespace()
            .any(|m| m == "tlp_cumul_1"),
        "{}",
        b.context()
    );
    assert_eq!(b.status("v2")["default_snapshot"], v2);
    assert_consistent(&b, "v2");

    // Nothing new: success, nothing changes.
    b.assert_rc(10, 0);
    let u = b.tool_json(10);
    assert_eq!(u["result"], "up-to-date", "{}", b.context());
    assert_eq!(u["applied"], serde_json::json!([]));
    // Same subvolume id and path ("gen" moves with the temporary snapshot
    // zypper ran in).
    let id_path = |label: &str| {
        let line = b.get(&format!("facts.{label}.default"));
        let w: Vec<&str> = line.split_whitespace().collect();
        (w.get(1).copied(), w.last().copied())
    };
    assert_eq!(id_path("again"), id_path("v2"), "{}", b.context());
    assert_eq!(
        snapshot_numbers(&b, "again"),
        snapshot_numbers(&b, "v2"),
        "{}",
        b.context()
    );
    assert_eq!(b.live("again"), ["tlp_cumul_2"]);
    assert_consistent(&b, "again");

    let b = vm.boot("s7-reboot", &["facts:booted"], 0);
    b.assert_completed();
    assert_eq!(b.live("early"), ["tlp_cumul_2"], "{}", b.context());
    assert_eq!(b.get("early.cmdline_marker"), "cumul2");
    assert!(
        b.all("early.dmesg")
            .iter()
            .any(|l| l
                .contains("transactional-livepatch: loaded livepatch tlp_cumul_2 from the initrd")),
        "no initrd load message in dmesg{}",
        b.context()
    );
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(v2),
        "{}",
        b.context()
    );
    assert_consistent(&b, "booted");
}

/// Scenario 8: the boot hook in a systemd initrd. SLE Micro's dracut builds
/// systemd initrds, where no init script sources hooks: dracut-pre-udev.service
/// runs the pre-udev hook of our dracut module. The tool applies a patch
/// boot-only on the host, with `[initrd] dracut_args` pointing dracut at the
/// image's configuration plus dracut's systemd modules
/// (tests/vm/install-guest.sh), and its own check of the initrd passes; the
/// new default then boots: systemd ran the initrd (its journal, left in /run,
/// says "Running in initrd"), our hook's line falls inside
/// dracut-pre-udev.service, before the switch to the root, and the patch is
/// enabled when init starts.
#[test]
fn systemd_initrd_loads_the_boot_stack() {
    let Some(mut vm) = Vm::new("systemd_initrd") else {
        return;
    };
    let config = vm.logs.join("systemd-initrd.toml");
    std::fs::write(
        &config,
        "[initrd]\ndracut_args = [\"--confdir\", \"/usr/lib/tlp-test/dracut-systemd.conf.d\"]\n",
    )
    .unwrap();
    let run = vm.host_tool(
        "apply",
        &[
            "--config",
            config.to_str().unwrap(),
            "apply",
            "--boot-only",
            "var/lib/tlp-test/rpms/tlp-livepatch-simple-1-1.x86_64.rpm",
            "--json",
        ],
    );
    assert_eq!(
        run.code,
        Some(0),
        "apply --boot-only on the host failed:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("verified: it loads 1 livepatch(es)"),
        "the tool did not verify the initrd:\n{}",
        run.stderr
    );
    let r: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("apply --json: {e}:\n{}", run.stdout));
    assert_eq!(r["live"], false, "{r}");
    let new = r["new_snapshot"].as_u64().unwrap();

    let b = vm.boot("s8-systemd-initrd", &["facts:booted"], 0);
    b.assert_completed();
    assert_eq!(
        snapshot_in(b.get("early.root")),
        Some(new),
        "{}",
        b.context()
    );
    // Enabled before init ran anything: only the initrd can have loaded it.
    assert_eq!(b.live("early"), ["tlp_simple"], "{}", b.context());
    assert_eq!(b.get("early.cmdline_marker"), "simple", "{}", b.context());
    const LOADED: &str = "transactional-livepatch: loaded livepatch tlp_simple from the initrd";
    assert!(
        b.all("early.dmesg").iter().any(|l| l.contains(LOADED)),
        "no initrd load message in dmesg{}",
        b.context()
    );
    // The initrd's own journal: systemd was its init, and the hook ran in
    // dracut-pre-udev.service, before the root was switched to.
    let journal = b.all("early.initrd_journal");
    let at = |what: &str| {
        journal
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| {
                panic!(
                    "no {what:?} in the initrd's journal (a systemd initrd?){}",
                    b.context()
                )
            })
    };
    let order = [
        at("systemd[1]: Running in initrd."),
        at("systemd[1]: Starting dracut-pre-udev.service"),
        at(LOADED),
        at("systemd[1]: Finished dracut-pre-udev.service"),
        at("systemd[1]: Switching root."),
    ];
    assert!(
        order.is_sorted(),
        "the initrd's journal is out of order (positions {order:?}):\n{}",
        journal.join("\n")
    );
    // boot-check found nothing to load: the initrd did it all.
    let bc = b.json("step.bootcheck.json");
    assert_eq!(
        names(&bc["loaded"]),
        Vec::<String>::new(),
        "{}",
        b.context()
    );
    assert_eq!(bc["in_sync"], true, "{}", b.context());
    let s = b.status("booted");
    assert_eq!(s["booted_snapshot"], new, "{}", b.context());
    assert_consistent(&b, "booted");
}
