//! Read-only questions to a snapshot's rpm database, and rpm's version order.
//!
//! The database of a (read-only) snapshot is queried with the running
//! system's `rpm --root <snapshot> --dbpath <its dbpath>`; nothing is written.

use crate::cmd;
use crate::inroot::Root;
use anyhow::{Context, Result};
use std::cmp::Ordering;
use std::path::Path;

/// Where the snapshot keeps its rpm database: `/usr/lib/sysimage/rpm` (SUSE
/// since 15.x, Fedora) if it exists there, else the classic `/var/lib/rpm`.
pub fn dbpath(snapshot_root: &Path) -> Result<&'static str> {
    let root = Root::open(snapshot_root)?;
    Ok(if root.is_dir("/usr/lib/sysimage/rpm") {
        "/usr/lib/sysimage/rpm"
    } else {
        "/var/lib/rpm"
    })
}

/// An rpm command against the database of `snapshot_root`.
pub fn rpm_command(program: &str, snapshot_root: &Path) -> Result<std::process::Command> {
    let mut c = cmd::command(program);
    // rpm misreads a relative --root (it finds no keys, no packages).
    let root = std::path::absolute(snapshot_root)
        .with_context(|| format!("resolving {}", snapshot_root.display()))?;
    c.arg("--root")
        .arg(root)
        .args(["--dbpath", dbpath(snapshot_root)?]);
    Ok(c)
}

/// Epoch, version and release of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    pub epoch: u32,
    pub version: String,
    pub release: String,
}

impl Evr {
    /// Parse `E:V-R` (as printed by `%{EPOCHNUM}:%{VERSION}-%{RELEASE}`).
    pub fn parse(s: &str) -> Option<Evr> {
        let (e, vr) = s.split_once(':')?;
        let (v, r) = vr.rsplit_once('-')?;
        Some(Evr {
            epoch: e.parse().ok()?,
            version: v.to_string(),
            release: r.to_string(),
        })
    }
}

impl std::fmt::Display for Evr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        write!(f, "{}-{}", self.version, self.release)
    }
}

/// rpm's order of two EVRs: epoch, then version, then release.
pub fn compare_evr(a: &Evr, b: &Evr) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| vercmp(&a.version, &b.version))
        .then_with(|| vercmp(&a.release, &b.release))
}

/// `rpm -q --qf FORMAT -- WHAT` in the snapshot: its output, or None when
/// rpm says the package is not installed (exit 1, the ordinary "none").
fn query(snapshot_root: &Path, format: &str, what: &str) -> Result<Option<String>> {
    let out = rpm_command("rpm", snapshot_root)?
        .args(["-q", "--qf", format, "--", what])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("querying the rpm database of {}", snapshot_root.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        if text.contains("is not installed") {
            return Ok(None);
        }
        anyhow::bail!(
            "`rpm -q {what}` in {} failed: {}",
            snapshot_root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Some(text))
}

/// The versions of package `name` installed in the snapshot (usually none or one).
pub fn installed(snapshot_root: &Path, name: &str) -> Result<Vec<Evr>> {
    let text = query(snapshot_root, "%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n", name)?;
    Ok(text
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter_map(Evr::parse)
        .collect())
}

/// The CVE ids an installed package names, as preflight finds them in a
/// package file: summary, description, changelog, and its files under
/// `/usr/share/livepatch/info/` (read inside the snapshot, at most 1 MiB
/// each). `nevra` is `name-version-release.arch`; None when not installed.
pub fn installed_cves(snapshot_root: &Path, nevra: &str) -> Result<Option<Vec<String>>> {
    use std::io::Read;
    const FILES: &str = "\u{1}files\u{1}";
    let Some(text) = query(
        snapshot_root,
        "%{SUMMARY}\\n%{DESCRIPTION}\\n[%{CHANGELOGTEXT}\\n]\u{1}files\u{1}\\n[%{FILENAMES}\\n]",
        nevra,
    )?
    else {
        return Ok(None);
    };
    let (head, files) = text.split_once(FILES).unwrap_or((&text, ""));
    let mut all = head.to_string();
    let root = Root::open(snapshot_root)?;
    for f in files
        .lines()
        .filter(|f| f.starts_with(super::INFO_DIR) && !f.contains("/../"))
    {
        // Inside the snapshot only (a symlink never leads out); a file the
        // package lists but that is gone or unreadable names nothing.
        if let Ok(h) = root.open_read(f) {
            let mut buf = Vec::new();
            if h.take(super::MAX_INFO_SIZE).read_to_end(&mut buf).is_ok() {
                all.push('\n');
                all.push_str(&String::from_utf8_lossy(&buf));
            }
        }
    }
    Ok(Some(super::find_cves(&all)))
}

/// The order of two version (or release) strings, by rpm's rules: segments of
/// digits compare numerically and are newer than letters, letters compare
/// as strings, other characters only separate; `~` sorts before anything
/// (even the end: `1.0~rc1 < 1.0`), `^` after the end but before anything
/// else (`1.0 < 1.0^git1 < 1.0.1`).
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while x.first().is_some_and(|&c| sep(c)) {
            x = &x[1..];
        }
        while y.first().is_some_and(|&c| sep(c)) {
            y = &y[1..];
        }
        match (x.first(), y.first()) {
            (Some(b'~'), Some(b'~')) => {
                x = &x[1..];
                y = &y[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            _ => {}
        }
        match (x.first(), y.first()) {
            (Some(b'^'), Some(b'^')) => {
                x = &x[1..];
                y = &y[1..];
                continue;
            }
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), None) => return Ordering::Greater,
            (Some(b'^'), _) => return Ordering::Less,
            (_, Some(b'^')) => return Ordering::Greater,
            _ => {}
        }
        let (Some(&cx), Some(_)) = (x.first(), y.first()) else {
            break;
        };
        let numeric = cx.is_ascii_digit();
        let take = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (nx, ny) = (take(x), take(y));
        let (sx, sy) = (&x[..nx], &y[..ny]);
        x = &x[nx..];
        y = &y[ny..];
        if sy.is_empty() {
            // Different segment types: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
            let (tx, ty) = (&sx[strip(sx)..], &sy[strip(sy)..]);
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            sx.cmp(sy)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (x.is_empty(), y.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, _) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn version_order_follows_rpm() {
        for (a, b, want) in [
            ("1", "1", Equal),
            ("1.0", "1.0", Equal),
            ("2", "10", Less),
            ("1.0", "1.0.1", Less),
            ("1.01", "1.1", Equal),
            ("1.0a", "1.0", Greater),
            ("1.0a", "1.0.1", Less),
            ("1a", "1b", Less),
            ("a", "1", Less),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.0^", "1.0~", Greater),
            ("1_2", "1.2", Equal),
            ("150500.55.39", "150500.55.4", Greater),
            ("5", "5.0", Less),
        ] {
            assert_eq!(vercmp(a, b), want, "{a} vs {b}");
            assert_eq!(vercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn evr_parse_display_and_order() {
        let a = Evr::parse("0:2-1").unwrap();
        let b = Evr::parse("1:1-1").unwrap();
        assert_eq!(a.to_string(), "2-1");
        assert_eq!(b.to_string(), "1:1-1");
        assert_eq!(compare_evr(&a, &b), Less);
        let c = Evr::parse("0:2-1.1").unwrap();
        assert_eq!(compare_evr(&a, &c), Less);
        assert!(Evr::parse("garbage").is_none());
    }
}
