//! A real patch server for the update tiers (tests/update.rs, tests/dbus.rs,
//! tests/cockpit.rs): a real rpm-md repository (createrepo_c, updateinfo by
//! modifyrepo_c) of the test livepatch RPMs, signed with a throwaway key
//! (rpmsign for the packages, a detached signature of repomd.xml for the
//! metadata), served by a real HTTP server on 127.0.0.1; and the test root
//! configured to use it with its own zypper and rpm database.

use super::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const PKG: &str = "kernel-livepatch-tlp-cumulative";

/// The privileged tier's prerequisites plus the patch server's.
pub fn update_prerequisites() -> bool {
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
    super::skip_unless_ci(&format!(
        "update tests need {} (run tests/support/deps.sh as root)",
        missing.join(", ")
    ))
}

pub fn cumulative(version: u32) -> PathBuf {
    let p = fixtures()
        .rpms
        .join(format!("{PKG}-{version}-1.x86_64.rpm"));
    assert!(p.exists(), "{} missing", p.display());
    p
}

/// A signing key in its own throwaway GNUPGHOME (short path: gpg-agent's
/// socket lives there).
pub struct Key {
    home: tempfile::TempDir,
    email: String,
}

impl Key {
    pub fn new(name: &str) -> Key {
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

    pub fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.home.path()).arg("--batch");
        c
    }

    pub fn public_armored(&self) -> Vec<u8> {
        let out = run(self.gpg().args(["--armor", "--export", &self.email]));
        assert!(out.status.success() && !out.stdout.is_empty());
        out.stdout
    }

    /// rpmsign, with Debian's rpm pointed at gpg (it defaults to gpg2).
    pub fn sign_rpm(&self, rpm: &Path) {
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

    pub fn detach_sign(&self, file: &Path) {
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
pub struct PatchServer {
    _dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub key: Key,
    server: Child,
    port: u16,
}

impl PatchServer {
    pub fn new() -> PatchServer {
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Add a package, signed with the repository key.
    pub fn add(&self, rpm: &Path) {
        let dest = self.repo.join(rpm.file_name().unwrap());
        std::fs::copy(rpm, &dest).unwrap();
        self.key.sign_rpm(&dest);
    }

    /// (Re)generate the metadata, with updateinfo, and sign repomd.xml.
    pub fn publish(&self, updateinfo: &str) {
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

    pub fn repodata(&self, f: &str) -> PathBuf {
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
pub fn updateinfo(patches: &[(u32, &str)]) -> String {
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
pub fn in_default_snapshot(sys: &TestSystem, f: impl FnOnce(&Path)) {
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
pub fn configure_root(sys: &TestSystem, url: &str, key: Option<&Key>) {
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
pub fn config(sys: &TestSystem, extra: &str) -> String {
    let p = sys.dir.path().join("update.toml");
    std::fs::write(&p, format!("[update]\npackages = [\"{PKG}\"]\n{extra}")).unwrap();
    p.display().to_string()
}
