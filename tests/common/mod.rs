//! Shared fixtures of the privileged tiers: a real btrfs image on a loop
//! device holding a real Debian rootfs in SUSE layout, with this project
//! installed from its own RPM (`TLP_TOOL_RPM`, as tests/run-all.sh does) or
//! else by its own `make install`, and real livepatch RPMs built against
//! the matching kernel headers (tests/support/*.sh build and cache them).
#![allow(dead_code)]

pub mod bus;
pub mod repo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const BIN: &str = env!("CARGO_BIN_EXE_transactional-livepatch");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn support(script: &str) -> PathBuf {
    repo().join("tests/support").join(script)
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this tier can run here. Missing prerequisites fail the test under
/// `CI=true` (never a silent skip there) and print a skip line otherwise.
pub fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for c in [
        "mkfs.btrfs",
        "losetup",
        "mmdebstrap",
        "rpmbuild",
        "chroot",
        "btrfs",
    ] {
        if !have(c) {
            missing.push(c.to_string());
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("/dev/loop-control".into());
    }
    if missing.is_empty() {
        return true;
    }
    skip_unless_ci(&format!(
        "privileged tier prerequisites missing: {} (run tests/support/deps.sh as root)",
        missing.join(", ")
    ))
}

/// A prerequisite named by `msg` is missing. Under `CI=true` that fails the
/// test (never a silent skip there); otherwise it prints a skip line and
/// returns false, for the caller to return on.
pub fn skip_unless_ci(msg: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: {msg}");
    }
    eprintln!("skipped: {msg}");
    false
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Fixtures {
    pub golden: PathBuf,
    pub rpms: PathBuf,
    pub kver: String,
}

/// Built once per test process: the golden image and the RPMs.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        // A fixed place per test binary, cleared at start: a static is never
        // dropped, so a temp dir here would leak a golden image every run.
        let exe = std::env::current_exe().unwrap();
        let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let base = std::env::var("TLP_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
        let dir = base.join(format!("fixtures-{stem}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kver = run_ok(&mut Command::new(support("kernel-abi.sh")))
            .trim()
            .to_string();
        let rpms = dir.join("rpms");
        std::fs::create_dir_all(&rpms).unwrap();
        run_ok(Command::new(support("livepatches.sh")).arg(&rpms));
        let golden = dir.join("golden.img");
        let mut make_image = Command::new(support("make-image.sh"));
        make_image.arg(&golden);
        match tool_rpm() {
            // make-image.sh installs it with the image's rpm (inherited env).
            Some(_) => make_image.env_remove("TLP_INSTALL_CMD"),
            // Developers' quick path: this build, by the project's own
            // `make install`.
            None => make_image.env(
                "TLP_INSTALL_CMD",
                format!(
                    "make -C {} install DESTDIR=\"$DESTDIR\" BIN={}",
                    repo().display(),
                    BIN
                ),
            ),
        };
        run_ok(&mut make_image);
        Fixtures { golden, rpms, kver }
    })
}

/// The tool's own RPM the images install (`TLP_TOOL_RPM`, set by
/// tests/run-all.sh from tests/support/tool-rpm.sh), if any. Without it the
/// images get this build by `make install`.
pub fn tool_rpm() -> Option<PathBuf> {
    std::env::var_os("TLP_TOOL_RPM")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The RPM of a test package, by package name.
pub fn rpm(name: &str) -> PathBuf {
    let f = fixtures();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&f.rpms)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".rpm")
                && n.strip_prefix(name)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no test RPM named {name} in {}", f.rpms.display()))
}

/// A throwaway copy of the golden image, mounted as the running system sees itself.
pub struct TestSystem {
    pub dir: tempfile::TempDir,
    pub image: PathBuf,
    pub mnt: PathBuf,
}

impl TestSystem {
    pub fn new() -> TestSystem {
        let f = fixtures();
        let dir = tempfile::Builder::new()
            .prefix("tlp-sys-")
            .tempdir_in(f.golden.parent().unwrap())
            .unwrap();
        let image = dir.path().join("disk.img");
        run_ok(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(&f.golden)
                .arg(&image),
        );
        let mnt = dir.path().join("root");
        std::fs::create_dir_all(&mnt).unwrap();
        run_ok(
            Command::new(support("mount-image.sh"))
                .arg(&image)
                .arg(&mnt),
        );
        TestSystem { dir, image, mnt }
    }

    /// The tool, pointed at this system.
    pub fn tlp_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.mnt).args(args);
        c.env_remove("FAILPOINTS");
        c
    }

    pub fn tlp(&self, args: &[&str]) -> Output {
        run(&mut self.tlp_cmd(args))
    }

    pub fn tlp_ok(&self, args: &[&str]) -> String {
        run_ok(&mut self.tlp_cmd(args))
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.tlp_ok(&["status", "--json"])).unwrap()
    }

    pub fn snapshot_path(&self, n: u64) -> PathBuf {
        self.mnt.join(format!(".snapshots/{n}/snapshot"))
    }

    /// `btrfs subvolume get-default`, as the snapshot number.
    pub fn default_number(&self) -> u64 {
        let out = run_ok(
            Command::new("btrfs")
                .args(["subvolume", "get-default"])
                .arg(&self.mnt),
        );
        // "ID 257 gen 10 top level 256 path @/.snapshots/1/snapshot"
        let path = out.split_whitespace().last().unwrap().to_string();
        path.trim_start_matches("@/.snapshots/")
            .trim_end_matches("/snapshot")
            .parse()
            .unwrap_or_else(|_| panic!("default is not a numbered snapshot: {out}"))
    }

    pub fn is_readonly(&self, n: u64) -> bool {
        let out = run_ok(
            Command::new("btrfs")
                .args(["property", "get", "-ts"])
                .arg(self.snapshot_path(n))
                .arg("ro"),
        );
        out.trim() == "ro=true"
    }

    /// `rpm -q` against a snapshot's own database.
    pub fn rpm_installed(&self, n: u64, name: &str) -> bool {
        run(Command::new("rpm")
            .arg("--root")
            .arg(self.snapshot_path(n))
            .args(["--dbpath", "/usr/lib/sysimage/rpm", "-q", name]))
        .status
        .success()
    }

    /// Everything a failed operation must leave unchanged.
    pub fn state(&self) -> State {
        // The filesystem generation moves with any write (the journal on /var
        // too): compare the subvolumes and the default, not the generation.
        let no_gen = |s: String| -> String {
            let mut out = String::new();
            for line in s.lines() {
                let mut words = line.split_whitespace();
                while let Some(w) = words.next() {
                    if w == "gen" {
                        words.next();
                        continue;
                    }
                    out.push_str(w);
                    out.push(' ');
                }
                out.push('\n');
            }
            out
        };
        let subvolumes = no_gen(run_ok(
            Command::new("btrfs")
                .args(["subvolume", "list", "-o"])
                .arg(self.mnt.join(".snapshots")),
        ));
        let default = no_gen(run_ok(
            Command::new("btrfs")
                .args(["subvolume", "get-default"])
                .arg(&self.mnt),
        ));
        let mounts = run_ok(Command::new("findmnt").args(["-rn", "-o", "TARGET"]))
            .lines()
            .filter(|l| l.starts_with(self.dir.path().to_str().unwrap()))
            .map(str::to_string)
            .collect();
        let journal = self
            .mnt
            .join("var/lib/transactional-livepatch/transactions");
        let open_entries = std::fs::read_dir(&journal)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        std::fs::read_to_string(e.path())
                            .is_ok_and(|t| t.contains("\"outcome\": \"open\""))
                    })
                    .count()
            })
            .unwrap_or(0);
        State {
            subvolumes,
            default,
            mounts,
            open_entries,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub subvolumes: String,
    pub default: String,
    pub mounts: Vec<String>,
    pub open_entries: usize,
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        let _ = Command::new(support("umount-image.sh"))
            .arg(&self.mnt)
            .status();
    }
}

/// Exit code of a finished command (None when killed by a signal).
pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The single `error:` line of a failed command.
pub fn error_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    lines[0].to_string()
}

/// The CVE ids tlp-livepatch-cve names: one in its changelog, one in its
/// /usr/share/livepatch/info/ file.
pub const CVE_CHANGELOG: &str = "CVE-2026-31337";
pub const CVE_INFO: &str = "CVE-2026-4242";

/// A livepatch package that names CVEs, built with rpmbuild from the test
/// module tlp_stack_a.ko (as SUSE's packages do: a changelog entry and a file
/// under /usr/share/livepatch/info/).
pub fn build_cve_package(dir: &Path) -> PathBuf {
    let f = fixtures();
    let ko = f.rpms.join("modules/tlp_stack_a.ko");
    assert!(ko.exists(), "{} missing", ko.display());
    let top = dir.join("rpmbuild");
    std::fs::create_dir_all(top.join("SOURCES")).unwrap();
    std::fs::copy(&ko, top.join("SOURCES/tlp_stack_a.ko")).unwrap();
    let kver = &f.kver;
    let spec = format!(
        r#"%define _build_id_links none
%define debug_package %{{nil}}
%define __strip /bin/true
%global __os_install_post %{{nil}}
Name: tlp-livepatch-cve
Version: 1
Release: 1
Summary: transactional-livepatch test fixture: a livepatch naming CVEs
License: GPL-2.0-only
AutoReqProv: no

%description
Test fixture for CVE lists (status, the Cockpit page): the module of tlp-livepatch-stack-a,
with CVE ids in the changelog and in /usr/share/livepatch/info/.

%install
install -D -m 0644 %{{_sourcedir}}/tlp_stack_a.ko %{{buildroot}}/lib/modules/{kver}/livepatch/tlp_stack_a.ko
mkdir -p %{{buildroot}}/usr/share/livepatch/info
echo "Fixes {CVE_INFO} (test)" > %{{buildroot}}/usr/share/livepatch/info/tlp-livepatch-cve.txt

%files
/lib/modules/{kver}/livepatch/tlp_stack_a.ko
/usr/share/livepatch/info/tlp-livepatch-cve.txt

%changelog
* Mon Nov 23 2026 Test <test@example.org> - 1-1
- Fix {CVE_CHANGELOG} in a test function (test fixture).
"#
    );
    let spec_path = top.join("tlp-livepatch-cve.spec");
    std::fs::write(&spec_path, spec).unwrap();
    run_ok(
        Command::new("rpmbuild")
            .args(["--quiet", "-bb", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec_path),
    );
    let rpm = top.join("RPMS/x86_64/tlp-livepatch-cve-1-1.x86_64.rpm");
    assert!(rpm.exists(), "rpmbuild made no {}", rpm.display());
    rpm
}
