//! Hostile input and faults (issue 5), on the real stack: a real btrfs image
//! on a loop device, real rpm and dracut in a chroot, the real CLI binary.
//!
//! Every refusal asserts the documented exit code, a single `error:` line
//! naming the problem, and that nothing changed: same subvolumes, same
//! default, no mount left, no journal entry left open, same snapshot
//! directories, same kernel livepatch set (on this host: none, and no
//! /sys/kernel/livepatch at all; the VM tier covers a livepatching kernel).
//! The bad packages are generated here: byte surgery on a real rpmbuild
//! package, the `rpm` crate's builder for what rpmbuild refuses to make
//! (`..` in file names, foreign arch), rpmbuild for installable ones
//! (scriptlets, dependencies), `rpmsign` with throwaway keys for signatures.
//!
//! Every bad input is submitted a second time through the real D-Bus service
//! (a private dbus-daemon with a real polkitd, tests/common/bus.rs; one bus
//! and daemon per test, pointed at that test's system): the typed D-Bus
//! error (the Apply call's own error, or the transaction's Finished error)
//! must be the one of the CLI's exit code, and nothing may change either.
//!
//! The run writes a table of every case (expected, observed, D-Bus error,
//! nothing-changed check) to `target/hostile-report.md`; docs/hostile-input.md
//! summarises it.

mod common;

use common::bus::*;
use common::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tlp::error::FailureKind;

macro_rules! require {
    () => {
        if !dbus_prerequisites(true) {
            return;
        }
    };
}

// ---------------------------------------------------------------- report

struct Row {
    category: &'static str,
    case: String,
    expected: String,
    observed: String,
    /// The typed D-Bus error of the same input through the daemon ("—" when
    /// the row has no D-Bus half).
    dbus: String,
    unchanged: String,
    ok: bool,
}

static ROWS: Mutex<Vec<Row>> = Mutex::new(Vec::new());

fn report_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("hostile-report.md")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Add a row and rewrite the whole report (tests run in parallel; the last
/// one to finish leaves the complete table).
fn record(row: Row) {
    let mut rows = ROWS.lock().unwrap_or_else(|e| e.into_inner());
    rows.push(row);
    rows.sort_by(|a, b| (a.category, &a.case).cmp(&(b.category, &b.case)));
    let mut counts: Vec<(&str, usize, usize, usize)> = Vec::new();
    for r in rows.iter() {
        let via_bus = usize::from(r.dbus != "—");
        match counts.iter_mut().find(|c| c.0 == r.category) {
            Some(c) => {
                c.1 += 1;
                c.2 += usize::from(r.ok);
                c.3 += via_bus;
            }
            None => counts.push((r.category, 1, usize::from(r.ok), via_bus)),
        }
    }
    let mut text = String::from(
        "# Hostile input and faults: report\n\n\
         Written by `cargo test --features failpoints --test hostile` (tests/hostile.rs).\n\
         \"Unchanged\" compares subvolumes, default subvolume, mounts, open journal\n\
         entries, snapshot directories and the kernel livepatch set before and after\n\
         (after the CLI and again after the D-Bus call). \"D-Bus\" is the typed error\n\
         of the same input submitted through the daemon on a private bus: the error\n\
         of the call itself (call) or of the transaction's Finished signal.\n\n\
         | Category | Cases | Passed | Also through D-Bus |\n|---|---|---|---|\n",
    );
    for (c, n, ok, bus) in &counts {
        text.push_str(&format!("| {c} | {n} | {ok} | {bus} |\n"));
    }
    text.push_str(
        "\n| Category | Case | Expected | Observed (CLI) | D-Bus | Unchanged | Result |\n|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter() {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.category,
            cell(&r.case),
            cell(&r.expected),
            cell(&r.observed),
            cell(&r.dbus),
            cell(&r.unchanged),
            if r.ok { "ok" } else { "FAILED" }
        ));
    }
    let path = report_path();
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

// ---------------------------------------------------------------- probes

/// Everything a refused or failed command must leave as it was.
#[derive(Debug, PartialEq)]
struct Probe {
    state: State,
    snapshot_dirs: Vec<String>,
    livepatch: Option<Vec<String>>,
}

/// The running kernel's livepatch set; None when the kernel has none at all.
fn livepatch_set() -> Option<Vec<String>> {
    let rd = std::fs::read_dir("/sys/kernel/livepatch").ok()?;
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

fn probe(sys: &TestSystem) -> Probe {
    let mut snapshot_dirs: Vec<String> = std::fs::read_dir(sys.mnt.join(".snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    snapshot_dirs.sort();
    Probe {
        state: sys.state(),
        snapshot_dirs,
        livepatch: livepatch_set(),
    }
}

fn kind_name(code: i32) -> &'static str {
    FailureKind::ALL
        .iter()
        .find(|k| k.exit_code() == code)
        .map_or("?", |k| k.name())
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Collects failures so that every case of a test gets its report row.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Run `cmd`, expect exit `code` with one `error:` line containing every
    /// needle (case-insensitive), and nothing changed on `sys`.
    fn refusal(
        &mut self,
        sys: &TestSystem,
        category: &'static str,
        case: &str,
        cmd: &mut Command,
        code: i32,
        needles: &[&str],
    ) -> Output {
        self.refuse(sys, category, case, cmd, None, (code, needles))
    }

    /// [`Checks::refusal`], then the same input through the daemon (`call`):
    /// its typed D-Bus error must be the one of `code`, its message must
    /// hold the needles too, and again nothing may change.
    fn refusal_both(
        &mut self,
        sys: &TestSystem,
        daemon: &Daemon,
        category: &'static str,
        case: &str,
        (cmd, call): (&mut Command, Call),
        want: (i32, &[&str]),
    ) -> Output {
        self.refuse(sys, category, case, cmd, Some((daemon, call)), want)
    }

    fn refuse(
        &mut self,
        sys: &TestSystem,
        category: &'static str,
        case: &str,
        cmd: &mut Command,
        via: Option<(&Daemon, Call)>,
        (code, needles): (i32, &[&str]),
    ) -> Output {
        let before = probe(sys);
        let out = run(cmd);
        let after = probe(sys);
        let lines = error_lines(&out);
        let line = lines.first().cloned().unwrap_or_default();
        let got = out.status.code();
        let mut why = Vec::new();
        if got != Some(code) {
            why.push(format!("exit {got:?}, expected {code}"));
        }
        if lines.len() != 1 {
            why.push(format!("{} error lines", lines.len()));
        }
        for n in needles {
            if !line.to_lowercase().contains(&n.to_lowercase()) {
                why.push(format!("message lacks {n:?}"));
            }
        }
        let unchanged = before == after;
        if !unchanged {
            why.push(format!("state changed: {before:?} -> {after:?}"));
        }
        let mut dbus = "—".to_string();
        let mut dbus_unchanged = true;
        if let Some((daemon, call)) = via {
            let before = probe(sys);
            let r = daemon.call(&call);
            let after = probe(sys);
            dbus = r.summary();
            let expected = format!("{ERR}.{}", kind_name(code));
            if r.error_name() != expected {
                why.push(format!("D-Bus error {r:?}, expected {expected}"));
            }
            let msg = r.message().to_lowercase();
            for n in needles {
                if !msg.contains(&n.to_lowercase()) {
                    why.push(format!("D-Bus message lacks {n:?}: {}", r.message()));
                }
            }
            if r.message().contains('\n') {
                why.push(format!("D-Bus message is not one line: {}", r.message()));
            }
            dbus_unchanged = before == after;
            if !dbus_unchanged {
                why.push(format!(
                    "state changed by the D-Bus call: {before:?} -> {after:?}"
                ));
            }
        }
        record(Row {
            category,
            case: case.to_string(),
            expected: format!("{code} {}; {}", kind_name(code), needles.join(", ")),
            observed: format!(
                "{} {}",
                got.map_or("signal".to_string(), |c| c.to_string()),
                short(&line, 160)
            ),
            dbus,
            unchanged: match (unchanged, dbus_unchanged) {
                (true, true) => "yes".into(),
                (false, true) => "NO (CLI)".into(),
                (true, false) => "NO (D-Bus)".into(),
                (false, false) => "NO (CLI, D-Bus)".into(),
            },
            ok: why.is_empty(),
        });
        if !why.is_empty() {
            self.failures.push(format!(
                "{category}/{case}: {}\n  stderr: {}",
                why.join("; "),
                stderr(&out).trim()
            ));
        }
        out
    }

    /// A check that is not a refusal (faults, security): one report row.
    fn check(
        &mut self,
        category: &'static str,
        case: &str,
        expected: &str,
        observed: &str,
        unchanged: &str,
        ok: bool,
    ) {
        self.check_dbus(category, case, expected, (observed, "—"), unchanged, ok)
    }

    /// [`Checks::check`] with a D-Bus column.
    fn check_dbus(
        &mut self,
        category: &'static str,
        case: &str,
        expected: &str,
        (observed, dbus): (&str, &str),
        unchanged: &str,
        ok: bool,
    ) {
        record(Row {
            category,
            case: case.to_string(),
            expected: expected.to_string(),
            observed: short(observed, 200),
            dbus: short(dbus, 120),
            unchanged: unchanged.to_string(),
            ok,
        });
        if !ok {
            self.failures.push(format!(
                "{category}/{case}: expected {expected}, observed {observed}"
            ));
        }
    }

    /// [`Checks::finish`], with the bus's logs and polkitd's state on failure.
    fn finish_with(self, daemon: &mut Daemon) {
        if !self.failures.is_empty() {
            eprintln!("{}", daemon.bus.diagnostics());
        }
        self.finish();
    }

    fn finish(self) {
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }
}

// ---------------------------------------------------------------- daemon

/// A changing call of the D-Bus interface, as root unless said otherwise.
#[derive(Debug, Clone)]
enum Call {
    Apply {
        pkg: PathBuf,
        boot_only: bool,
    },
    Rollback {
        snapshot: Option<u32>,
        boot_only: bool,
    },
    Recover,
    Update {
        boot_only: bool,
    },
    /// Not a transaction: only ever expected to be refused (see
    /// [`Daemon::gdbus_as`]).
    CheckUpdates,
}

impl Call {
    fn apply(pkg: &Path) -> Call {
        Call::Apply {
            pkg: pkg.to_path_buf(),
            boot_only: true,
        }
    }
}

/// Our service on a private bus with polkitd, activated on demand, pointed
/// at one test system: one per test, shared by all its cases.
struct Daemon {
    bus: Bus,
    /// The daemon's `--config` (its children read it anew each time): empty,
    /// or a case's configuration.
    config: PathBuf,
    /// The daemon's `--kernel-root`: a symlink to `/`, or to a case's fake
    /// kernel root (resolved anew by each child).
    kernel_root: PathBuf,
    /// The directory of the `hold` failpoint its children are configured
    /// with (src/failpoints.rs): inert until a test arms it.
    // Only the failpoints build can hold a transaction.
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    hold: PathBuf,
}

impl Daemon {
    fn start(sys: &TestSystem) -> Daemon {
        let d = sys.dir.path();
        let config = d.join("daemon.toml");
        std::fs::write(&config, "").unwrap();
        let kernel_root = d.join("daemon-kernel-root");
        std::os::unix::fs::symlink("/", &kernel_root).unwrap();
        let hold = d.join("hold");
        std::fs::create_dir_all(&hold).unwrap();
        let mut opts = BusOptions::new(&sys.mnt, 600);
        opts.global = vec![
            "--config".into(),
            config.display().to_string(),
            "--kernel-root".into(),
            kernel_root.display().to_string(),
        ];
        // The bus hands its environment to the daemon, the daemon passes
        // FAILPOINTS on to its transaction children.
        opts.env = vec![("FAILPOINTS".into(), hold_failpoint(&hold))];
        Daemon {
            bus: Bus::start_with(opts),
            config,
            kernel_root,
            hold,
        }
    }

    fn set_config(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    fn set_kernel_root(&self, target: &Path) {
        let tmp = self.kernel_root.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, &self.kernel_root).unwrap();
    }

    fn call(&self, call: &Call) -> CallResult {
        let limit = Duration::from_secs(900);
        let opts = |boot_only: bool, snapshot: Option<u32>| {
            let mut o: HashMap<&str, zbus::Variant> = HashMap::new();
            if boot_only {
                o.insert("boot-only", true.into());
            }
            if let Some(n) = snapshot {
                o.insert("snapshot", n.into());
            }
            o
        };
        match call {
            Call::Apply { pkg, boot_only } => self.bus.call(
                "Apply",
                &(pkg.to_str().unwrap(), opts(*boot_only, None)),
                limit,
            ),
            Call::Rollback {
                snapshot,
                boot_only,
            } => self
                .bus
                .call("Rollback", &(opts(*boot_only, *snapshot),), limit),
            Call::Recover => self.bus.call("Recover", &(), limit),
            Call::Update { boot_only } => {
                self.bus.call("Update", &(opts(*boot_only, None),), limit)
            }
            Call::CheckUpdates => panic!("CheckUpdates starts no transaction: use gdbus_as"),
        }
    }

    /// The same call through `gdbus` as user `uid` (None: root); only its
    /// refusal is read (the caller expects one).
    fn gdbus_as(&self, uid: Option<u32>, call: &Call) -> (CallResult, Output) {
        let (method, args): (&str, Vec<String>) = match call {
            Call::Apply { pkg, boot_only } => (
                "Apply",
                vec![
                    pkg.display().to_string(),
                    if *boot_only {
                        "{'boot-only': <true>}".into()
                    } else {
                        "{}".into()
                    },
                ],
            ),
            Call::Rollback {
                snapshot,
                boot_only,
            } => {
                let mut o = Vec::new();
                if *boot_only {
                    o.push("'boot-only': <true>".to_string());
                }
                if let Some(n) = snapshot {
                    o.push(format!("'snapshot': <uint32 {n}>"));
                }
                ("Rollback", vec![format!("{{{}}}", o.join(", "))])
            }
            Call::Recover => ("Recover", vec![]),
            Call::Update { boot_only } => (
                "Update",
                vec![if *boot_only {
                    "{'boot-only': <true>}".into()
                } else {
                    "{}".into()
                }],
            ),
            Call::CheckUpdates => ("CheckUpdates", vec!["{}".into()]),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self
            .bus
            .gdbus_call(uid, PATH, &format!("{MANAGER}.{method}"), &args);
        // gdbus prints "Error: GDBus.Error:NAME: MESSAGE".
        let err = stderr(&out);
        let r = match err.split_once("GDBus.Error:") {
            Some((_, rest)) => {
                let (name, message) = rest.split_once(": ").unwrap_or((rest, ""));
                CallResult::Refused {
                    name: name.trim().to_string(),
                    message: message.trim().to_string(),
                }
            }
            None => CallResult::Finished {
                path: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                success: out.status.success(),
                name: String::new(),
                message: format!("not refused: {}", err.trim()),
            },
        };
        (r, out)
    }
}

/// The FAILPOINTS value that makes an apply hold after installing the
/// package when `dir/arm` exists (src/failpoints.rs `hold`).
fn hold_failpoint(dir: &Path) -> String {
    format!("apply::after-install=return(hold:{})", dir.display())
}

/// Arm the `hold` failpoint in `dir`: the next apply passing it holds.
// Only the failpoints build can hold a transaction.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn arm(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in ["held", "release"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    std::fs::write(dir.join("arm"), "").unwrap();
}

/// Wait until an apply holds at the failpoint armed in `dir` (an event, not
/// a duration); `alive` says whether the holder can still get there.
// Only the failpoints build can hold a transaction.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn wait_held(dir: &Path, mut alive: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !dir.join("held").exists() {
        assert!(alive(), "the first transaction ended before it held");
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "the first transaction never reached the failpoint"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Only the failpoints build can hold a transaction.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn release(dir: &Path) {
    std::fs::write(dir.join("release"), "").unwrap();
}

/// The journal's files with their contents (absent: none).
fn journal_files(sys: &TestSystem) -> Vec<(String, Vec<u8>)> {
    tree(&sys.mnt.join("var/lib/transactional-livepatch/transactions"))
}

fn apply_cmd(sys: &TestSystem, pkg: &Path) -> Command {
    sys.tlp_cmd(&["apply", "--boot-only", pkg.to_str().unwrap()])
}

fn set_ro(path: &Path, ro: bool) {
    run_ok(
        Command::new("btrfs")
            .args(["property", "set", "-ts"])
            .arg(path)
            .args(["ro", if ro { "true" } else { "false" }]),
    );
}

/// Change the (read-only) snapshot `n` with `f`, read-only again afterwards.
fn in_snapshot(sys: &TestSystem, n: u64, f: impl FnOnce(&Path)) {
    let p = sys.snapshot_path(n);
    set_ro(&p, false);
    f(&p);
    set_ro(&p, true);
}

/// Every file below `dir` with its contents, for "untouched" checks.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.push((rel + "/", Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn df_avail(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() * st.fragment_size()
}

// ---------------------------------------------------------------- corpus

/// The kernel release of the image with one digit changed: same length, not installed.
fn other_kver(kver: &str) -> String {
    let mut b = kver.as_bytes().to_vec();
    let i = kver.find('-').map_or(0, |i| i + 1);
    let j = (i..b.len()).find(|&j| b[j].is_ascii_digit()).unwrap();
    b[j] = b'0' + (b[j] - b'0' + 1) % 10;
    String::from_utf8(b).unwrap()
}

/// A real livepatch module with its vermagic release replaced by `to`.
fn module_with_vermagic(ko: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let needle = format!("vermagic={from}");
    let pos = ko
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("vermagic in module");
    let mut out = ko.to_vec();
    out[pos + 9..pos + 9 + to.len()].copy_from_slice(to.as_bytes());
    out
}

/// (header_start, payload_start) of an RPM, from its bytes.
fn offsets(b: &[u8]) -> (usize, usize) {
    let be = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let sig_len = 16 + 16 * be(96 + 8) + be(96 + 12);
    let header_start = 96 + sig_len + (8 - sig_len % 8) % 8;
    let payload_start = header_start + 16 + 16 * be(header_start + 8) + be(header_start + 12);
    (header_start, payload_start)
}

/// Build a package with the `rpm` crate, which writes what it is told
/// (rpmbuild would refuse `..`, a foreign arch needs a cross toolchain).
fn build(
    dir: &Path,
    file: &str,
    name: &str,
    arch: &str,
    f: impl FnOnce(&mut rpm::PackageBuilder) -> Result<(), rpm::Error>,
) -> PathBuf {
    let mut b = rpm::PackageBuilder::new(name, "1", "GPL-2.0-only", arch, "hostile fixture");
    b.release("1");
    f(&mut b).unwrap_or_else(|e| panic!("building {file}: {e}"));
    let pkg = b.build().unwrap_or_else(|e| panic!("building {file}: {e}"));
    let path = dir.join(format!("{file}.rpm"));
    pkg.write_file(&path).unwrap();
    path
}

/// Build an installable package with rpmbuild (shape as tests/support/livepatches.sh).
fn rpmbuild(
    dir: &Path,
    name: &str,
    module: &Path,
    dest: &str,
    extra: &str,
    scripts: &str,
) -> PathBuf {
    let top = dir.join(format!("top-{name}"));
    std::fs::create_dir_all(&top).unwrap();
    let spec = top.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "%define _build_id_links none\n%define debug_package %{{nil}}\n\
             %define __strip /bin/true\n%global __os_install_post %{{nil}}\n\
             Name: {name}\nVersion: 1\nRelease: 1\nSummary: hostile fixture\n\
             License: GPL-2.0-only\nAutoReqProv: no\n{extra}\n\
             %description\nHostile-input fixture of transactional-livepatch.\n\
             %install\ninstall -D -m 0644 {} %{{buildroot}}{dest}\n{scripts}\n\
             %files\n{dest}\n",
            module.display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new("rpmbuild")
            .args(["--quiet", "-bb", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec),
    );
    let rpms = top.join("RPMS/x86_64");
    let p = std::fs::read_dir(&rpms)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "rpm"))
        .unwrap();
    let out = dir.join(format!("{name}.rpm"));
    std::fs::rename(p, &out).unwrap();
    out
}

/// A fresh host directory for the tricks that aim at host paths, below
/// `/srv/tlp-hostile`: a path no mount of the chroot covers (/var, /run,
/// /tmp, /dev, /proc, /sys), so the snapshot's view of the same path is a
/// plain directory of its own. Below the target directory it would not be
/// when the checkout lives in /var or /tmp (a symlink's target would then
/// resolve into the shared /var or a fresh tmpfs, and these checks would
/// test the mounts instead of the tool). An empty `name` gives the parent.
fn host_side(name: &str) -> PathBuf {
    let p = Path::new("/srv/tlp-hostile").join(name);
    if !name.is_empty() {
        let _ = std::fs::remove_dir_all(&p);
    }
    std::fs::create_dir_all(&p).unwrap();
    p
}

struct Corpus {
    pkgs: HashMap<&'static str, PathBuf>,
    /// Public key of the trusted test key (armored).
    trusted_key: PathBuf,
    /// Host directories the hostile scriptlets try to write into.
    outside_pre: PathBuf,
    outside_post: PathBuf,
}

impl Corpus {
    fn get(&self, k: &str) -> &Path {
        self.pkgs
            .get(k)
            .unwrap_or_else(|| panic!("no corpus package {k}"))
    }
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home)
        .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]);
    c
}

fn sign(home: &Path, uid: &str, rpm_in: &Path, out: &Path) {
    std::fs::copy(rpm_in, out).unwrap();
    run_ok(
        Command::new("rpmsign")
            .env("GNUPGHOME", home)
            .args(["--define", "__gpg /usr/bin/gpg"])
            .args([
                "--define",
                "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback",
            ])
            .args(["--define", &format!("_gpg_name {uid}")])
            .arg("--addsign")
            .arg(out),
    );
}

/// Flip the last byte of the signature packet (tag 268 RSAHEADER or 267
/// DSAHEADER) in the signature header: the header and payload stay intact.
fn break_signature(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let be = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let count = be(&b, 96 + 8);
    let store = 96 + 16 + 16 * count;
    let mut done = false;
    for i in 0..count {
        let e = 96 + 16 + 16 * i;
        let (tag, off, n) = (be(&b, e), be(&b, e + 8), be(&b, e + 12));
        if tag == 268 || tag == 267 {
            b[store + off + n - 3] ^= 0xff;
            done = true;
        }
    }
    assert!(done, "no signature tag in {}", path.display());
    std::fs::write(path, b).unwrap();
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let f = fixtures();
        let kver = f.kver.as_str();
        let other = other_kver(kver);
        let dir = f.golden.parent().unwrap().join("corpus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ko_path = f.rpms.join("modules/tlp_simple.ko");
        let ko = std::fs::read(&ko_path).unwrap();
        let lp = |file: &str| format!("/lib/modules/{kver}/livepatch/{file}");
        let mut pkgs: HashMap<&'static str, PathBuf> = HashMap::new();
        let mut put = |k: &'static str, bytes: &[u8]| {
            let p = dir.join(format!("{k}.rpm"));
            std::fs::write(&p, bytes).unwrap();
            pkgs.insert(k, p);
        };

        // Byte surgery on a real rpmbuild package.
        let good = std::fs::read(rpm("tlp-livepatch-simple")).unwrap();
        let (hs, ps) = offsets(&good);
        put("not-an-rpm", b"#!/bin/sh\necho this is not a package\n");
        put("empty", b"");
        put("truncated-lead", &good[..50]);
        put("truncated-signature-header", &good[..100]);
        put("truncated-header", &good[..hs + 30]);
        put("truncated-payload", &good[..ps + (good.len() - ps) / 2]);
        put("truncated-last-byte", &good[..good.len() - 1]);
        let mut b = good.clone();
        b[hs + 16 + 8] = 0xff; // first index entry's offset: negative
        put("corrupt-header-index", &b);
        let mut b = good.clone();
        let n = u32::from_be_bytes(b[hs + 8..hs + 12].try_into().unwrap()) as usize;
        b[hs + 16 + 16 * n + 40] ^= 0x41; // a byte of the header's data store
        put("corrupt-header-data", &b);
        let mut b = good.clone();
        let mut x: u32 = 0x1234_5678;
        for byte in &mut b[ps..] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *byte = x as u8;
        }
        put("payload-not-decompressing", &b);
        let mut b = good.clone();
        b.extend_from_slice(b"appended after the payload");
        put("appended-data", &b);
        let mut b = good.clone();
        b[hs + 12..hs + 16].copy_from_slice(&0xfff0_0000u32.to_be_bytes());
        put("huge-header-claimed", &b);
        let mut b = good.clone();
        b[hs + 8..hs + 12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        put("huge-header-index-count", &b);

        // Built with the rpm crate.
        let lpf = |p: &str| rpm::FileOptions::new(p.to_string()).permissions(0o644);
        let ko_for = |b: &mut rpm::PackageBuilder, dest: &str, bytes: &[u8]| {
            b.with_file_contents(bytes.to_vec(), lpf(dest)).map(|_| ())
        };
        let mut add =
            |k: &'static str,
             arch: &str,
             f: &dyn Fn(&mut rpm::PackageBuilder) -> Result<(), rpm::Error>| {
                let p = build(&dir, k, &format!("tlp-hostile-{k}"), arch, f);
                pkgs.insert(k, p);
            };
        add("huge-header-real", "x86_64", &|b| {
            b.description("x".repeat(65 << 20));
            ko_for(b, &lp("tlp_huge.ko"), &ko)
        });
        add("other-arch", "aarch64", &|b| {
            ko_for(b, &lp("tlp_arm.ko"), &ko)
        });
        let ko_other = module_with_vermagic(&ko, kver, &other);
        add("kernel-not-installed", "x86_64", &|b| {
            ko_for(
                b,
                &format!("/lib/modules/{other}/livepatch/tlp_other.ko"),
                &ko_other,
            )
        });
        add("vermagic-mismatch", "x86_64", &|b| {
            ko_for(b, &lp("tlp_vermagic.ko"), &ko_other)
        });
        add("module-in-boot", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            ko_for(b, "/boot/tlp_evil.ko", &ko)
        });
        add("dotdot-file", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_file_contents(
                b"* * * * * root /bin/sh -c id\n".to_vec(),
                lpf(&format!(
                    "/lib/modules/{kver}/livepatch/../../../../etc/cron.d/tlp"
                )),
            )
            .map(|_| ())
        });
        add("dotdot-module", "x86_64", &|b| {
            ko_for(
                b,
                &format!("/lib/modules/{kver}/livepatch/../../../../tmp/tlp_x.ko"),
                &ko,
            )
        });
        add("dot-component", "x86_64", &|b| {
            ko_for(b, &format!("/lib/modules/{kver}/./livepatch/tlp_x.ko"), &ko)
        });
        add("control-char-path", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_file_contents(b"x".to_vec(), lpf("/usr/share/doc/tlp/a\nb"))
                .map(|_| ())
        });
        add("symlink-escape-relative", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_symlink(rpm::FileOptions::symlink(
                "/usr/share/doc/tlp/evil",
                "../../../../../../etc/shadow",
            ))
            .map(|_| ())
        });
        add("symlink-escape-absolute", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_symlink(rpm::FileOptions::symlink(
                "/usr/share/doc/tlp/evil",
                "/etc/shadow",
            ))
            .map(|_| ())
        });
        add("file-below-own-symlink", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_symlink(rpm::FileOptions::symlink("/usr/share/tlp-dir", "doc"))?;
            b.with_file_contents(b"x".to_vec(), lpf("/usr/share/tlp-dir/x"))
                .map(|_| ())
        });
        add("setuid-file", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_file_contents(
                b"#!/bin/sh\n".to_vec(),
                rpm::FileOptions::new("/usr/bin/tlp-suid").permissions(0o4755),
            )
            .map(|_| ())
        });
        add("device-node", "x86_64", &|b| {
            ko_for(b, &lp("tlp_ok.ko"), &ko)?;
            b.with_special_file(
                rpm::FileOptions::new("/usr/share/tlp-mem")
                    .mode(rpm::FileMode::character_device(0o600)),
            )
            .map(|_| ())
        });

        // Installable packages that fail (or escape) inside the chroot.
        let outside_pre = host_side("outside-pre");
        let outside_post = host_side("outside-post");
        let stack_a = f.rpms.join("modules/tlp_stack_a.ko");
        pkgs.insert(
            "scriptlet-writes-outside",
            rpmbuild(
                &dir,
                "tlp-hostile-escape",
                &stack_a,
                &lp("tlp_stack_a.ko"),
                "",
                &format!(
                    "%pre\nmkdir -p {o} && echo escaped > {o}/from-pre\n\
                     echo escaped > /../../../..{o}/from-pre-dotdot\n\
                     echo 'tlp-hostile-escape: refusing to install (test fixture)' >&2\nexit 1\n",
                    o = outside_pre.display()
                ),
            ),
        );
        pkgs.insert(
            "requires-missing",
            rpmbuild(
                &dir,
                "tlp-hostile-requires",
                &stack_a,
                &lp("tlp_stack_a.ko"),
                "Requires: tlp-nonexistent-capability >= 99",
                "",
            ),
        );
        let envleak = rpmbuild(
            &dir,
            "tlp-hostile-envleak",
            &stack_a,
            &lp("tlp_stack_a.ko"),
            "",
            &format!(
                "%post\nenv > /usr/share/tlp-hostile-envleak.env\n\
                 mkdir -p {o} && echo escaped > {o}/from-post\n",
                o = outside_post.display()
            ),
        );
        pkgs.insert("envleak-unsigned", envleak.clone());

        // Signatures: a trusted and an untrusted throwaway key.
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let trusted = "tlp trusted <trusted@example.com>";
        let untrusted = "tlp untrusted <untrusted@example.com>";
        for uid in [trusted, untrusted] {
            run_ok(gpg(&home).args(["--quick-gen-key", uid, "rsa2048", "sign", "never"]));
        }
        let trusted_key = dir.join("trusted.asc");
        let key = run_ok(gpg(&home).args(["--armor", "--export", trusted]));
        std::fs::write(&trusted_key, key).unwrap();
        let simple = rpm("tlp-livepatch-simple");
        let p = dir.join("signed-untrusted.rpm");
        sign(&home, untrusted, &simple, &p);
        pkgs.insert("signed-untrusted-key", p);
        let p = dir.join("signed-bad.rpm");
        sign(&home, trusted, &simple, &p);
        break_signature(&p);
        pkgs.insert("signed-bad-signature", p);
        let p = dir.join("envleak-signed.rpm");
        sign(&home, trusted, &envleak, &p);
        pkgs.insert("envleak-signed", p);
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "gpg-agent"])
            .status();

        Corpus {
            pkgs,
            trusted_key,
            outside_pre,
            outside_post,
        }
    })
}

// ---------------------------------------------------------------- bad packages

/// Packages refused by preflight and the checks before the transaction:
/// no snapshot is ever made for them.
#[test]
fn bad_packages_are_refused_and_nothing_changes() {
    require!();
    let c = corpus();
    let sys = TestSystem::new();
    let kver = fixtures().kver.clone();
    let other = other_kver(&kver);
    let mut daemon = Daemon::start(&sys);
    let mut ck = Checks::default();
    let cat = "bad package";
    let cases: &[(&str, i32, &[&str])] = &[
        ("not-an-rpm", 10, &["not an rpm"]),
        ("empty", 10, &["empty"]),
        ("truncated-lead", 10, &["truncated", "lead"]),
        (
            "truncated-signature-header",
            10,
            &["truncated", "signature header"],
        ),
        ("truncated-header", 10, &["truncated", "header"]),
        ("truncated-payload", 10, &["truncated"]),
        ("truncated-last-byte", 10, &["truncated"]),
        ("corrupt-header-index", 10, &["corrupt rpm", "index entry"]),
        ("corrupt-header-data", 10, &["corrupt rpm", "digest"]),
        ("payload-not-decompressing", 10, &["corrupt rpm", "payload"]),
        ("appended-data", 10, &["after the payload"]),
        ("huge-header-claimed", 10, &["too large"]),
        ("huge-header-index-count", 10, &["too large"]),
        ("huge-header-real", 10, &["too large"]),
        ("other-arch", 10, &["built for aarch64"]),
        ("kernel-not-installed", 13, &["not installed", &other]),
        ("vermagic-mismatch", 13, &["vermagic", &other]),
        ("module-in-boot", 12, &["/boot/tlp_evil.ko"]),
        ("dotdot-file", 12, &["'..'"]),
        ("dotdot-module", 12, &["'..'"]),
        ("dot-component", 12, &["not normalised"]),
        ("control-char-path", 12, &["control character"]),
        (
            "symlink-escape-relative",
            12,
            &["/usr/share/doc/tlp/evil", "'..'"],
        ),
        (
            "symlink-escape-absolute",
            12,
            &["/usr/share/doc/tlp/evil", "absolute"],
        ),
        ("file-below-own-symlink", 12, &["/usr/share/tlp-dir"]),
        ("setuid-file", 12, &["/usr/bin/tlp-suid"]),
        ("device-node", 12, &["/usr/share/tlp-mem"]),
        ("signed-untrusted-key", 24, &["does not trust"]),
    ];
    for (k, code, needles) in cases {
        ck.refusal_both(
            &sys,
            &daemon,
            cat,
            k,
            (&mut apply_cmd(&sys, c.get(k)), Call::apply(c.get(k))),
            (*code, needles),
        );
    }
    // The fixture packages of tests/support/livepatches.sh.
    for (p, code, needles) in [
        ("tlp-nomodule", 11, &["no kernel module"][..]),
        ("tlp-notlp", 11, &["livepatch=y"][..]),
        ("tlp-outside", 12, &["outside the livepatch director"][..]),
        ("tlp-wrongkver", 13, &["9.9.9-1-default"][..]),
    ] {
        ck.refusal_both(
            &sys,
            &daemon,
            cat,
            p,
            (&mut apply_cmd(&sys, &rpm(p)), Call::apply(&rpm(p))),
            (code, needles),
        );
    }
    let missing = sys.dir.path().join("no-such-file.rpm");
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "missing-file",
        (&mut apply_cmd(&sys, &missing), Call::apply(&missing)),
        (10, &["cannot open"]),
    );

    // Signatures when the configuration requires them; the trusted key is
    // then imported into the default snapshot's rpm database.
    let cfg = sys.dir.path().join("require-signature.toml");
    std::fs::write(&cfg, "[packages]\nrequire_signature = true\n").unwrap();
    daemon.set_config("[packages]\nrequire_signature = true\n");
    let with_cfg = |pkg: &Path| {
        sys.tlp_cmd(&[
            "--config",
            cfg.to_str().unwrap(),
            "apply",
            "--boot-only",
            pkg.to_str().unwrap(),
        ])
    };
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "unsigned-when-required",
        (
            &mut with_cfg(&rpm("tlp-livepatch-simple")),
            Call::apply(&rpm("tlp-livepatch-simple")),
        ),
        (24, &["not signed", "require_signature"]),
    );
    in_snapshot(&sys, 1, |s| {
        run_ok(
            Command::new("rpmkeys")
                .arg("--root")
                .arg(s)
                .args(["--dbpath", "/usr/lib/sysimage/rpm", "--import"])
                .arg(&c.trusted_key),
        );
    });
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "signed-bad-signature",
        (
            &mut with_cfg(c.get("signed-bad-signature")),
            Call::apply(c.get("signed-bad-signature")),
        ),
        (24, &["bad signature"]),
    );
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "signed-untrusted-key-when-required",
        (
            &mut with_cfg(c.get("signed-untrusted-key")),
            Call::apply(c.get("signed-untrusted-key")),
        ),
        (24, &["does not trust"]),
    );
    daemon.set_config("");

    // Live applies. The host kernel cannot livepatch: refused before
    // anything else (14), even for a kernel that is installed but not running.
    let live = Call::Apply {
        pkg: rpm("tlp-livepatch-simple"),
        boot_only: false,
    };
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "live-apply-on-kernel-without-livepatch",
        (
            &mut sys.tlp_cmd(&["apply", rpm("tlp-livepatch-simple").to_str().unwrap()]),
            live.clone(),
        ),
        (14, &["does not support livepatching", "--boot-only"]),
    );
    // A livepatching kernel (a fake /sys and /proc) running another release
    // than the package's, which is installed in the snapshot: WrongKernel.
    let kroot = sys.dir.path().join("fake-kernel");
    std::fs::create_dir_all(kroot.join("sys/kernel/livepatch")).unwrap();
    std::fs::create_dir_all(kroot.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        kroot.join("proc/sys/kernel/osrelease"),
        format!("{other}\n"),
    )
    .unwrap();
    daemon.set_kernel_root(&kroot);
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "live-apply-installed-but-not-running-kernel",
        (
            &mut sys.tlp_cmd(&[
                "--kernel-root",
                kroot.to_str().unwrap(),
                "apply",
                rpm("tlp-livepatch-simple").to_str().unwrap(),
            ]),
            live,
        ),
        (13, &[&format!("running kernel is {other}"), "--boot-only"]),
    );
    daemon.set_kernel_root(Path::new("/"));
    assert_eq!(sys.default_number(), 1);
    ck.finish_with(&mut daemon);
}

/// Packages that pass every check but fail inside the new snapshot: the
/// snapshot is deleted again, and a scriptlet never writes to the host.
#[test]
fn packages_failing_in_the_snapshot_change_nothing() {
    require!();
    let c = corpus();
    let sys = TestSystem::new();
    let mut daemon = Daemon::start(&sys);
    let mut ck = Checks::default();
    let cat = "bad package";
    let host_before = tree(&c.outside_pre);
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "scriptlet-fails",
        (
            &mut apply_cmd(&sys, &rpm("tlp-badscript")),
            Call::apply(&rpm("tlp-badscript")),
        ),
        (16, &["installing tlp-badscript", "refusing to install"]),
    );
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "scriptlet-writes-outside",
        (
            &mut apply_cmd(&sys, c.get("scriptlet-writes-outside")),
            Call::apply(c.get("scriptlet-writes-outside")),
        ),
        (16, &["installing tlp-hostile-escape"]),
    );
    let host_after = tree(&c.outside_pre);
    ck.check(
        "confinement",
        "failing scriptlet writes to a host path",
        "host directory untouched (CLI and D-Bus runs)",
        &format!(
            "{} entries before, {} after",
            host_before.len(),
            host_after.len()
        ),
        "yes (snapshot deleted)",
        host_before == host_after && host_after.is_empty(),
    );
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "requires-missing",
        (
            &mut apply_cmd(&sys, c.get("requires-missing")),
            Call::apply(c.get("requires-missing")),
        ),
        (16, &["tlp-nonexistent-capability"]),
    );
    assert_eq!(sys.default_number(), 1);
    ck.finish_with(&mut daemon);
}

/// The same patch again is AlreadyApplied; an older cumulative version than
/// the default snapshot's is refused unless --allow-downgrade.
#[test]
fn duplicate_and_downgrade() {
    require!();
    let sys = TestSystem::new();
    let mut ck = Checks::default();
    let cat = "bad package";
    let dir = fixtures().rpms.clone();
    let cumul = |v: &str| dir.join(format!("kernel-livepatch-tlp-cumulative-{v}-1.x86_64.rpm"));
    sys.tlp_ok(&["apply", "--boot-only", cumul("2").to_str().unwrap()]);
    assert_eq!(sys.default_number(), 2);
    let mut daemon = Daemon::start(&sys);
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "duplicate-of-applied",
        (&mut apply_cmd(&sys, &cumul("2")), Call::apply(&cumul("2"))),
        (23, &["already in the default snapshot 2"]),
    );
    ck.refusal_both(
        &sys,
        &daemon,
        cat,
        "older-cumulative-version",
        (&mut apply_cmd(&sys, &cumul("1")), Call::apply(&cumul("1"))),
        (
            23,
            &["newer", "2-1", "refusing to downgrade", "--allow-downgrade"],
        ),
    );
    let out = sys.tlp(&[
        "apply",
        "--boot-only",
        "--allow-downgrade",
        cumul("1").to_str().unwrap(),
    ]);
    let stack = std::fs::read_to_string(
        sys.snapshot_path(3)
            .join("etc/transactional-livepatch/stack")
            .join(&fixtures().kver),
    )
    .unwrap_or_default();
    let ok = out.status.success()
        && sys.default_number() == 3
        && sys.rpm_installed(3, "kernel-livepatch-tlp-cumulative-1")
        && !sys.rpm_installed(3, "kernel-livepatch-tlp-cumulative-2")
        && stack.contains("tlp_cumul_1")
        && !stack.contains("tlp_cumul_2");
    ck.check(
        "bad package",
        "older-cumulative-version --allow-downgrade",
        "0: snapshot 3 with version 1 only",
        &format!("{:?} {}", out.status.code(), stderr(&out).trim()),
        "n/a (applied)",
        ok,
    );
    ck.finish_with(&mut daemon);
}

// ---------------------------------------------------------------- faults

/// A disk too full for the initrd: NoSpace, snapshot deleted, space returned.
#[test]
fn full_disk_fails_cleanly_and_returns_the_space() {
    require!();
    let sys = TestSystem::new();
    let mut daemon = Daemon::start(&sys);
    let mut ck = Checks::default();
    // Leave less than an initrd (~25 MiB here) but enough for rpm.
    let fill = sys.mnt.join("var/tlp-fill");
    let avail = df_avail(&sys.mnt);
    run_ok(
        Command::new("fallocate")
            .args(["-l", &(avail - (12 << 20)).to_string()])
            .arg(&fill),
    );
    let settle = || {
        run_ok(
            Command::new("btrfs")
                .args(["subvolume", "sync"])
                .arg(&sys.mnt),
        );
        run_ok(
            Command::new("btrfs")
                .args(["filesystem", "sync"])
                .arg(&sys.mnt),
        );
    };
    settle();
    let free_before = df_avail(&sys.mnt);
    let out = ck.refusal_both(
        &sys,
        &daemon,
        "fault",
        "full disk during the initrd build",
        (
            &mut apply_cmd(&sys, &rpm("tlp-livepatch-simple")),
            Call::apply(&rpm("tlp-livepatch-simple")),
        ),
        (20, &["out of disk space", "no space left on device"]),
    );
    settle();
    let free_after = df_avail(&sys.mnt);
    let diff = free_before.abs_diff(free_after);
    ck.check(
        "fault",
        "full disk: space returned",
        "free space after the CLI and D-Bus runs = before (±1 MiB)",
        &format!("{free_before} -> {free_after} bytes"),
        "snapshot 2 deleted",
        diff <= 1 << 20 && !sys.snapshot_path(2).exists(),
    );
    // The failure is recorded, closed, with its kind.
    let list = sys.tlp_ok(&["list", "--json"]);
    ck.check(
        "fault",
        "full disk: journal",
        "two aborted entries (CLI, D-Bus) of kind no-space",
        &short(&list, 200),
        "no open entry",
        list.matches("\"aborted\"").count() == 2 && list.matches("\"no-space\"").count() == 2,
    );
    // And with space again, the same apply works.
    std::fs::remove_file(&fill).unwrap();
    settle();
    let again = sys.tlp(&[
        "apply",
        "--boot-only",
        rpm("tlp-livepatch-simple").to_str().unwrap(),
    ]);
    ck.check(
        "fault",
        "full disk: works after freeing space",
        "exit 0",
        &format!("{:?}", again.status.code()),
        "n/a",
        again.status.success(),
    );
    drop(out);
    ck.finish_with(&mut daemon);
}

/// Two applies at once: one runs, the other is Busy and names it; recover
/// and rollback are Busy too while an apply runs (recover must not "recover"
/// a live transaction). Never two half transactions.
#[test]
fn concurrent_transactions_get_busy() {
    require!();
    let sys = TestSystem::new();
    let mut ck = Checks::default();
    let simple = rpm("tlp-livepatch-simple");
    let stack_a = rpm("tlp-livepatch-stack-a");

    #[cfg(feature = "failpoints")]
    {
        // Hold the first apply inside its transaction (snapshot made,
        // package installed) until the others have been refused.
        let hold = sys.dir.path().join("hold-cli");
        arm(&hold);
        let mut first = apply_cmd(&sys, &simple);
        first
            .env("FAILPOINTS", hold_failpoint(&hold))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = first.spawn().unwrap();
        wait_held(&hold, || child.try_wait().unwrap().is_none());
        for (case, args) in [
            (
                "second apply while one runs",
                vec!["apply", "--boot-only", stack_a.to_str().unwrap()],
            ),
            ("recover while an apply runs", vec!["recover"]),
            (
                "rollback while an apply runs",
                vec!["rollback", "--boot-only", "1"],
            ),
        ] {
            ck.refusal(
                &sys,
                "fault",
                case,
                &mut sys.tlp_cmd(&args),
                15,
                &["another transaction is running (apply tlp-livepatch-simple-1-1.x86_64"],
            );
        }
        release(&hold);
        let out = child.wait_with_output().unwrap();
        ck.check(
            "fault",
            "the running apply finishes",
            "exit 0, snapshot 2 default",
            &format!("{:?} default {}", out.status.code(), sys.default_number()),
            "n/a",
            out.status.success() && sys.default_number() == 2,
        );
    }
    #[cfg(not(feature = "failpoints"))]
    sys.tlp_ok(&["apply", "--boot-only", simple.to_str().unwrap()]);

    // Started together: exactly one runs, the other is Busy.
    let before = sys.state();
    let base = sys.default_number();
    let spawn = |p: &Path| {
        apply_cmd(&sys, p)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&stack_a);
    let b = spawn(&rpm("tlp-livepatch-stack-b"));
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [oa.status.code(), ob.status.code()];
    codes.sort();
    let busy = if oa.status.success() { &ob } else { &oa };
    let busy_line = error_lines(busy).join(" ");
    let after = sys.state();
    let new: Vec<u64> = (base + 1..base + 4)
        .filter(|n| sys.snapshot_path(*n).exists())
        .collect();
    ck.check(
        "fault",
        "two applies started together",
        "one 0, one 15 naming the other; one new snapshot, default, nothing open",
        &format!("{codes:?}: {busy_line}; new snapshots {new:?}"),
        &format!("open entries {}", after.open_entries),
        codes == [Some(0), Some(15)]
            && busy_line.contains("another transaction is running (apply tlp-livepatch-stack-")
            && new.len() == 1
            && sys.default_number() == new[0]
            && after.open_entries == 0
            && after.mounts == before.mounts,
    );
    ck.finish();
}

/// CLI and D-Bus at once: a CLI apply in progress when D-Bus calls arrive,
/// then a D-Bus apply in progress when CLI commands and a second D-Bus call
/// arrive. The second gets Busy naming the running one (typed D-Bus error,
/// exit 15), nothing is corrupted, the first completes. The first is held
/// at the `hold` failpoint until the test releases it: no durations guessed.
#[cfg(feature = "failpoints")]
#[test]
fn cli_and_dbus_at_once_get_busy() {
    require!();
    let sys = TestSystem::new();
    let mut daemon = Daemon::start(&sys);
    let mut ck = Checks::default();
    let cat = "fault";
    let simple = rpm("tlp-livepatch-simple");
    let stack_a = rpm("tlp-livepatch-stack-a");
    let stack_b = rpm("tlp-livepatch-stack-b");
    let rest = sys.state();
    let busy = format!("{ERR}.Busy");
    let unchanged = |same: bool| if same { "yes" } else { "NO" };

    // The CLI first; D-Bus calls arrive while it runs.
    arm(&daemon.hold);
    let mut first = apply_cmd(&sys, &simple);
    first
        .env("FAILPOINTS", hold_failpoint(&daemon.hold))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = first.spawn().unwrap();
    wait_held(&daemon.hold, || child.try_wait().unwrap().is_none());
    let cli_running = "another transaction is running (apply tlp-livepatch-simple-1-1.x86_64";
    for (case, call) in [
        ("D-Bus Apply while a CLI apply runs", Call::apply(&stack_a)),
        (
            "D-Bus Rollback while a CLI apply runs",
            Call::Rollback {
                snapshot: Some(1),
                boot_only: true,
            },
        ),
        ("D-Bus Recover while a CLI apply runs", Call::Recover),
        (
            "D-Bus Update while a CLI apply runs",
            Call::Update { boot_only: true },
        ),
        // Its child `check` takes the lock as the CLI's would, and says whose it is.
        (
            "D-Bus CheckUpdates while a CLI apply runs",
            Call::CheckUpdates,
        ),
    ] {
        let before = probe(&sys);
        let r = match call {
            Call::CheckUpdates => daemon.gdbus_as(None, &call).0,
            _ => daemon.call(&call),
        };
        let same = probe(&sys) == before;
        ck.check_dbus(
            cat,
            case,
            &format!("{busy} from the call, naming the CLI's apply; nothing changed"),
            (r.message(), &r.summary()),
            unchanged(same),
            matches!(r, CallResult::Refused { .. })
                && r.error_name() == busy
                && r.message().contains(cli_running)
                && same,
        );
    }
    release(&daemon.hold);
    let out = child.wait_with_output().unwrap();
    let after = sys.state();
    ck.check(
        cat,
        "the CLI apply finishes after the D-Bus calls",
        "exit 0, snapshot 2 default and read-only, nothing open, no mount left",
        &format!(
            "{:?} default {} {}",
            out.status.code(),
            sys.default_number(),
            error_lines(&out).join(" ")
        ),
        &format!("open entries {}", after.open_entries),
        out.status.success()
            && sys.default_number() == 2
            && sys.is_readonly(2)
            && after.open_entries == 0
            && after.mounts == rest.mounts,
    );

    // D-Bus first; CLI commands and a second D-Bus call arrive while it runs.
    arm(&daemon.hold);
    let (finished, path) = std::thread::scope(|s| {
        let first = s.spawn(|| daemon.call(&Call::apply(&stack_a)));
        wait_held(&daemon.hold, || !first.is_finished());
        let active = daemon.bus.busctl(
            None,
            &["get-property", NAME, PATH, MANAGER, "ActiveTransaction"],
        );
        let path = String::from_utf8_lossy(&active.stdout)
            .trim()
            .trim_start_matches("o ")
            .trim_matches('"')
            .to_string();
        let dbus_running = "another transaction is running (apply tlp-livepatch-stack-a-1-1";
        for (case, args) in [
            (
                "CLI apply while a D-Bus apply runs",
                vec!["apply", "--boot-only", stack_b.to_str().unwrap()],
            ),
            ("CLI recover while a D-Bus apply runs", vec!["recover"]),
            (
                "CLI rollback while a D-Bus apply runs",
                vec!["rollback", "--boot-only", "1"],
            ),
        ] {
            ck.refusal(
                &sys,
                cat,
                case,
                &mut sys.tlp_cmd(&args),
                15,
                &[dbus_running],
            );
        }
        let before = probe(&sys);
        let r = daemon.call(&Call::apply(&stack_b));
        let same = probe(&sys) == before;
        ck.check_dbus(
            cat,
            "second D-Bus Apply while a D-Bus apply runs",
            &format!("{busy} from the call, naming the running transaction; nothing changed"),
            (r.message(), &r.summary()),
            unchanged(same),
            matches!(r, CallResult::Refused { .. })
                && r.error_name() == busy
                && path.starts_with("/org/opensuse/TransactionalLivepatch1/Transaction/")
                && r.message().contains(&format!("transaction {path} (apply"))
                && same,
        );
        release(&daemon.hold);
        (first.join().unwrap(), path)
    });
    let after = sys.state();
    ck.check_dbus(
        cat,
        "the D-Bus apply finishes after the CLI commands",
        "Finished(true), snapshot 3 default with stack-a, nothing open, no mount left",
        (
            &format!("{path}: default {}", sys.default_number()),
            &finished.summary(),
        ),
        &format!("open entries {}", after.open_entries),
        matches!(&finished, CallResult::Finished { success: true, path: p, .. } if *p == path)
            && sys.default_number() == 3
            && sys.is_readonly(3)
            && sys.rpm_installed(3, "tlp-livepatch-stack-a")
            && !sys.rpm_installed(3, "tlp-livepatch-stack-b")
            && after.open_entries == 0
            && after.mounts == rest.mounts,
    );
    ck.finish_with(&mut daemon);
}

/// Symlinks planted in the base snapshot that point out of it: the tool
/// never follows them out (it refuses mount targets that are symlinks, and
/// resolves every other path inside the snapshot, as the chroot does).
#[test]
fn symlinks_in_the_snapshot_never_lead_out() {
    require!();
    let sys = TestSystem::new();
    let mut daemon = Daemon::start(&sys);
    let mut ck = Checks::default();
    let kver = fixtures().kver.clone();
    let cat = "symlink trick";
    // Host directories the planted symlinks point at, with canaries.
    let host_dir = tempfile::Builder::new()
        .prefix("symlinks-")
        .tempdir_in(host_side(""))
        .unwrap();
    let host = host_dir.path().to_path_buf();
    let canary = |d: &str, files: &[(&str, &str)]| -> PathBuf {
        let p = host.join(d);
        std::fs::create_dir_all(&p).unwrap();
        for (f, t) in files {
            std::fs::write(p.join(f), t).unwrap();
        }
        p
    };
    // An absolute symlink is resolved by the host at the host's root; a
    // climbing one reaches the host's root from the snapshot's directory.
    let climb = |target: &Path| {
        format!(
            "{}{}",
            "../".repeat(40).trim_end_matches('/'),
            target.display()
        )
    };

    // Mount targets that are symlinks: refused (12), before any mount. The
    // planted symlinks live in a copy of snapshot 1 made the default (the
    // base of the next apply): snapshot 1's /var is busy as a mount point.
    for dir in ["run", "var", "dev"] {
        let target = canary(&format!("{dir}-target"), &[]);
        let before = tree(&host);
        let copy = sys.mnt.join(".snapshots/9");
        std::fs::create_dir(&copy).unwrap();
        run_ok(
            Command::new("btrfs")
                .args(["subvolume", "snapshot"])
                .arg(sys.snapshot_path(1))
                .arg(copy.join("snapshot")),
        );
        std::fs::write(
            copy.join("info.xml"),
            "<?xml version=\"1.0\"?>\n<snapshot><type>single</type><num>9</num><date>2026-11-23 10:00:00</date><description>planted</description></snapshot>\n",
        )
        .unwrap();
        let s = copy.join("snapshot");
        std::fs::remove_dir_all(s.join(dir)).unwrap();
        std::os::unix::fs::symlink(&target, s.join(dir)).unwrap();
        set_ro(&s, true);
        run_ok(
            Command::new("btrfs")
                .args(["subvolume", "set-default"])
                .arg(&s),
        );
        ck.refusal_both(
            &sys,
            &daemon,
            cat,
            &format!("/{dir} -> host directory"),
            (
                &mut apply_cmd(&sys, &rpm("tlp-livepatch-simple")),
                Call::apply(&rpm("tlp-livepatch-simple")),
            ),
            (12, &[&format!("/{dir}: it is a symbolic link")]),
        );
        let same = tree(&host) == before;
        ck.check(
            cat,
            &format!("/{dir} -> host directory: host side"),
            "untouched by the CLI and D-Bus runs",
            &format!("{same}"),
            "n/a",
            same,
        );
        run_ok(
            Command::new("btrfs")
                .args(["subvolume", "set-default"])
                .arg(sys.snapshot_path(1)),
        );
        set_ro(&s, false);
        run_ok(Command::new("btrfs").args(["subvolume", "delete"]).arg(&s));
        std::fs::remove_dir_all(&copy).unwrap();
    }

    // /boot, the livepatch module directory and the boot stack directory
    // made symlinks climbing out to host directories that hold decoys: a
    // stale temp initrd (renamed into place if followed), an identical module
    // (an "already applied" false positive if followed), a stack directory
    // (written to if followed).
    let ko = std::fs::read(fixtures().rpms.join("modules/tlp_simple.ko")).unwrap();
    let hboot = canary(
        "boot",
        &[
            (&format!(".tlp-new-initrd-{kver}"), "host decoy initrd"),
            (&format!("initrd.img-{kver}"), "host initrd"),
        ],
    );
    let hmod = canary("livepatch", &[]);
    std::fs::write(hmod.join("tlp_simple.ko"), &ko).unwrap();
    let hstack = canary("stack", &[("README", "host stack dir")]);
    let inside = |s: &Path, h: &Path| s.join(h.strip_prefix("/").unwrap());
    // Replace `rel` in snapshot `n` by a symlink to host dir `h`; the
    // snapshot's own view of `h` gets the original content.
    let plant = |n: u64, rel: &str, h: &Path| {
        in_snapshot(&sys, n, |s| {
            let ih = inside(s, h);
            std::fs::create_dir_all(ih.parent().unwrap()).unwrap();
            if s.join(rel).exists() {
                std::fs::rename(s.join(rel), &ih).unwrap();
            } else {
                std::fs::create_dir_all(&ih).unwrap();
                std::fs::create_dir_all(s.join(rel).parent().unwrap()).unwrap();
            }
            std::os::unix::fs::symlink(climb(h), s.join(rel)).unwrap();
        })
    };
    let unplant = |n: u64, rel: &str, h: &Path| {
        in_snapshot(&sys, n, |s| {
            std::fs::remove_file(s.join(rel)).unwrap();
            std::fs::rename(inside(s, h), s.join(rel)).unwrap();
        })
    };

    let before = tree(&host);
    plant(1, "boot", &hboot);
    let out = sys.tlp(&[
        "apply",
        "--boot-only",
        rpm("tlp-livepatch-simple").to_str().unwrap(),
    ]);
    let host_same = tree(&host) == before;
    let s2 = sys.snapshot_path(2);
    let initrd = inside(&s2, &hboot).join(format!("initrd.img-{kver}"));
    let listing = run(Command::new("lsinitrd").arg(&initrd));
    let has_module = String::from_utf8_lossy(&listing.stdout).contains("livepatch/tlp_simple.ko");
    ck.check(
        cat,
        "/boot -> host directory with a decoy temp initrd",
        "exit 0; the initrd inside the snapshot (where the chroot wrote it) has the module; host untouched",
        &format!(
            "{:?}; initrd has module {has_module}; {}",
            out.status.code(),
            short(&error_lines(&out).join(" "), 120)
        ),
        if host_same { "host: yes" } else { "host: NO" },
        out.status.success() && host_same && has_module && sys.default_number() == 2,
    );

    let lpdir = format!("usr/lib/modules/{kver}/livepatch");
    for (case, rel, h, pkg) in [
        (
            "module dir -> host directory with an identical module",
            lpdir.as_str(),
            &hmod,
            "tlp-livepatch-stack-a",
        ),
        (
            "boot stack dir -> host directory",
            "etc/transactional-livepatch/stack",
            &hstack,
            "tlp-livepatch-stack-b",
        ),
    ] {
        let n = sys.default_number();
        plant(n, rel, h);
        let before = tree(&host);
        // Resolved inside the snapshot, the paths are consistent for rpm
        // and the tool, but dracut copies the resolved path into the
        // initrd: the initrd check refuses what would not boot right.
        ck.refusal_both(
            &sys,
            &daemon,
            cat,
            case,
            (&mut apply_cmd(&sys, &rpm(pkg)), Call::apply(&rpm(pkg))),
            (17, &["the new initrd lacks"]),
        );
        let same = tree(&host) == before;
        ck.check(
            cat,
            &format!("{case}: host side"),
            "untouched by the CLI and D-Bus runs (nothing read as applied, nothing written)",
            &format!("{same}"),
            "n/a",
            same,
        );
        unplant(n, rel, h);
    }
    ck.finish_with(&mut daemon);
}

// ---------------------------------------------------------------- security

/// Caller environment never reaches the chroot; a scriptlet's write to a
/// host path lands inside the snapshot; a signed package from a trusted key
/// applies under require_signature; state files are root-only.
#[test]
fn environment_confinement_signature_and_permissions() {
    require!();
    let c = corpus();
    let sys = TestSystem::new();
    let mut ck = Checks::default();
    in_snapshot(&sys, 1, |s| {
        run_ok(
            Command::new("rpmkeys")
                .arg("--root")
                .arg(s)
                .args(["--dbpath", "/usr/lib/sysimage/rpm", "--import"])
                .arg(&c.trusted_key),
        );
    });
    let cfg = sys.dir.path().join("require-signature.toml");
    std::fs::write(&cfg, "[packages]\nrequire_signature = true\n").unwrap();
    let host_before = tree(&c.outside_post);
    let out = run(sys
        .tlp_cmd(&[
            "--config",
            cfg.to_str().unwrap(),
            "apply",
            "--boot-only",
            c.get("envleak-signed").to_str().unwrap(),
        ])
        .env("TLP_LEAK_TEST", "1")
        .env("HOME", "/root/tlp-leak")
        .env("LD_LIBRARY_PATH", "/nonexistent/tlp-leak")
        .env("RPM_CONFIGDIR", "/nonexistent/tlp-leak")
        .env("GNUPGHOME", "/nonexistent/tlp-leak"));
    ck.check(
        "signature",
        "signed by a trusted key, require_signature = true",
        "exit 0",
        &format!("{:?} {}", out.status.code(), error_lines(&out).join(" ")),
        "n/a (applied)",
        out.status.success() && sys.default_number() == 2,
    );
    // The environment the scriptlet saw.
    let env = std::fs::read_to_string(
        sys.snapshot_path(2)
            .join("usr/share/tlp-hostile-envleak.env"),
    )
    .unwrap_or_default();
    let keys: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    // The tool's fixed list (cmd::BASE_ENV + chroot's two), what rpm sets for
    // scriptlets, and what the shell itself adds.
    let allowed = [
        "PATH",
        "LC_ALL",
        "LANG",
        "TRANSACTIONAL_UPDATE",
        "SYSTEMD_OFFLINE",
        "RPM_INSTALL_PREFIX",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    let extra: Vec<&&str> = keys.iter().filter(|k| !allowed.contains(k)).collect();
    ck.check(
        "security",
        "caller environment does not reach the chroot",
        &format!("only {allowed:?}"),
        &format!("keys {keys:?}"),
        "n/a",
        !keys.is_empty() && extra.is_empty() && !env.contains("tlp-leak"),
    );
    let host_after = tree(&c.outside_post);
    let inside = sys
        .snapshot_path(2)
        .join(c.outside_post.strip_prefix("/").unwrap())
        .join("from-post");
    ck.check(
        "confinement",
        "succeeding scriptlet writes to a host path",
        "lands inside the new snapshot, host untouched",
        &format!(
            "inside: {}, host entries: {}",
            inside.is_file(),
            host_after.len()
        ),
        "host: yes",
        inside.is_file() && host_after == host_before && host_after.is_empty(),
    );

    // State files and the journal: root-only.
    let state = sys.mnt.join("var/lib/transactional-livepatch");
    let mut modes = Vec::new();
    let mut ok = true;
    let mut check_mode = |p: &Path, want: u32| {
        let md = std::fs::metadata(p).unwrap();
        let mode = md.permissions().mode() & 0o777;
        modes.push(format!(
            "{} {mode:o}",
            p.strip_prefix(&sys.mnt).unwrap().display()
        ));
        use std::os::unix::fs::MetadataExt;
        ok &= mode == want && md.uid() == 0;
    };
    check_mode(&state, 0o700);
    check_mode(&state.join("transactions"), 0o700);
    check_mode(&state.join("lock"), 0o600);
    for e in std::fs::read_dir(state.join("transactions"))
        .unwrap()
        .flatten()
    {
        check_mode(&e.path(), 0o600);
    }
    ck.check(
        "security",
        "state directory, lock and journal are root-only",
        "dirs 0700, files 0600, owner root",
        &modes.join(", "),
        "n/a",
        ok && modes.len() >= 4,
    );
    ck.finish();
}

/// Unprivileged callers are refused before anything is touched: not even
/// the state directory is created.
#[test]
fn non_root_is_refused_for_every_changing_command() {
    require!();
    let sys = TestSystem::new();
    let mut ck = Checks::default();
    let state = sys.mnt.join("var/lib/transactional-livepatch");
    let existed = state.exists();
    let pkg = rpm("tlp-livepatch-simple");
    for args in [
        vec!["apply", "--boot-only", pkg.to_str().unwrap()],
        vec!["apply", pkg.to_str().unwrap()],
        vec!["rollback", "--boot-only", "1"],
        vec!["recover"],
        vec!["boot-check"],
    ] {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(BIN)
            .arg("--root")
            .arg(&sys.mnt)
            .args(&args);
        ck.refusal(
            &sys,
            "security",
            &format!("non-root {}", args.join(" ")).replace(pkg.to_str().unwrap(), "PKG"),
            &mut cmd,
            22,
            &["must run as root"],
        );
    }
    ck.check(
        "security",
        "non-root: state directory not created",
        "absent as before",
        &format!("existed {existed}, exists {}", state.exists()),
        "yes",
        existed || !state.exists(),
    );

    // The same through the daemon, as nobody: polkit denies every changing
    // call (auth_admin_keep, no session, no agent) with the typed error
    // naming the action, and nothing changes, not even the journal.
    let mut daemon = Daemon::start(&sys);
    let denied = format!("{ERR}.NotAuthorized");
    for (case, call, action) in [
        ("Apply (boot-only)", Call::apply(&pkg), "apply"),
        (
            "Apply (live)",
            Call::Apply {
                pkg: pkg.clone(),
                boot_only: false,
            },
            "apply",
        ),
        (
            "Rollback (boot-only, to snapshot 1)",
            Call::Rollback {
                snapshot: Some(1),
                boot_only: true,
            },
            "rollback",
        ),
        ("Recover", Call::Recover, "recover"),
        // Update installs a package: the action of Apply.
        (
            "Update (boot-only)",
            Call::Update { boot_only: true },
            "apply",
        ),
        ("Update (live)", Call::Update { boot_only: false }, "apply"),
        // It would make the service contact the repositories.
        ("CheckUpdates", Call::CheckUpdates, "check"),
    ] {
        let before = (probe(&sys), journal_files(&sys));
        let (r, out) = daemon.gdbus_as(Some(NOBODY), &call);
        let same = (probe(&sys), journal_files(&sys)) == before;
        let action = format!("org.opensuse.transactionallivepatch.{action}");
        ck.check_dbus(
            "security",
            &format!("nobody: D-Bus {case}"),
            &format!("{denied} naming {action}; nothing changed"),
            (r.message(), &r.summary()),
            if same { "yes (journal too)" } else { "NO" },
            !out.status.success()
                && matches!(r, CallResult::Refused { .. })
                && r.error_name() == denied
                && r.message().contains(&action)
                && same,
        );
    }
    let active = daemon.bus.busctl(
        Some(NOBODY),
        &["get-property", NAME, PATH, MANAGER, "ActiveTransaction"],
    );
    let active = String::from_utf8_lossy(&active.stdout).trim().to_string();
    ck.check_dbus(
        "security",
        "nobody: no transaction started",
        "ActiveTransaction \"/\", default still 1",
        (&active, &active),
        "yes",
        active == "o \"/\"" && sys.default_number() == 1,
    );
    ck.finish_with(&mut daemon);
}

/// No subprocess is built from a shell string: the source never names a
/// shell as a program, and runs every program through `cmd::command`
/// (cleared environment, argument vector).
#[test]
fn no_shell_strings_and_one_way_to_run_programs() {
    let mut ck = Checks::default();
    let mut offenders = Vec::new();
    let mut files = Vec::new();
    let mut stack = vec![repo().join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let shells = [
        "\"sh\"",
        "\"bash\"",
        "\"dash\"",
        "\"zsh\"",
        "\"/bin/sh\"",
        "\"/bin/bash\"",
        "\"/usr/bin/sh\"",
        "\"/usr/bin/bash\"",
    ];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests (`#[cfg(test)]` modules, `tests.rs` files) may use a
        // shell to produce failures on purpose.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            let shell = shells.iter().any(|s| l.contains(s));
            let dash_c = l.contains("\"-c\"") && (l.contains("sh") || shell);
            let string_cmd = l.contains("sh -c") || l.contains("bash -c");
            let raw_command = l.contains("Command::new(") && !rel.ends_with("src/cmd.rs");
            if shell || dash_c || string_cmd || raw_command {
                offenders.push(format!("{rel}:{}: {}", n + 1, l));
            }
        }
    }
    ck.check(
        "security",
        "no subprocess from a shell string; all through cmd::command",
        &format!(
            "no shell program, no `-c`, no Command::new outside src/cmd.rs ({} files)",
            files.len()
        ),
        &if offenders.is_empty() {
            "none".to_string()
        } else {
            offenders.join("; ")
        },
        "n/a",
        offenders.is_empty() && files.len() > 10,
    );
    ck.finish();
}
