//! The initrd of a snapshot: the boot stack file, dracut, verification.
//!
//! What a snapshot boots with is decided inside the snapshot: the ordered list
//! of livepatch modules for each kernel (the *boot stack*,
//! `/etc/transactional-livepatch/stack/<kver>`, one `name path package` line
//! per module, load order) rolls back with it. Our dracut module
//! (`dracut-module/90transactional-livepatch`) copies the stack file and the
//! modules into the initrd and loads them early in boot. dracut writes into a
//! temp file next to the final one, which is renamed into place only after the
//! result was checked to hold every module of the stack and the hook.

use crate::chroot::ChrootEnv;
use crate::cmd::CommandRunExt;
use crate::error::{FailureKind, failure};
use crate::inroot::{FileKind, Root};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const STACK_DIR: &str = "etc/transactional-livepatch/stack";
pub const DRACUT_MODULE: &str = "transactional-livepatch";
/// The hook script's file name as installed in the initrd.
pub const HOOK_NAME: &str = "tlp-load-livepatches.sh";

/// One module of a boot stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StackEntry {
    /// Module name, as the kernel names the livepatch in /sys/kernel/livepatch.
    pub name: String,
    /// Absolute path of the .ko inside the snapshot.
    pub path: String,
    /// name-version-release.arch of the package that brought it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// The boot stack of `snapshot_root` for kernel `kver`: the recorded order,
/// minus modules whose file is gone (an `rpm -U` of a cumulative patch removes
/// the older one), plus modules present in the livepatch directories but not
/// recorded (installed by other means), by name.
pub fn read_stack(snapshot_root: &Path, kver: &str) -> Result<Vec<StackEntry>> {
    // Every path is resolved inside the snapshot: a symlink in it never
    // leads to a host file (see crate::inroot).
    let root = Root::open(snapshot_root)?;
    let file = format!("{STACK_DIR}/{kver}");
    let mut out: Vec<StackEntry> = Vec::new();
    match root.read_to_string(&file) {
        Ok(text) => {
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut it = line.split_whitespace();
                let (Some(name), Some(path)) = (it.next(), it.next()) else {
                    continue;
                };
                let package = it.next().filter(|p| *p != "-").map(str::to_string);
                if is_livepatch_path(path)
                    && root.symlink_metadata(path).ok().flatten() == Some(FileKind::File)
                {
                    out.push(StackEntry {
                        name: name.into(),
                        path: path.into(),
                        package,
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display(&file))),
    }
    let mut extra = Vec::new();
    for base in ["lib/modules", "usr/lib/modules"] {
        let Ok(Some(entries)) = root.read_dir(&format!("{base}/{kver}/livepatch")) else {
            continue;
        };
        for (fname, kind) in entries {
            let Some(stem) = fname.strip_suffix(".ko") else {
                continue;
            };
            if kind != FileKind::File {
                continue;
            }
            let path = format!("/{base}/{kver}/livepatch/{fname}");
            let name = stem.replace('-', "_");
            if !out.iter().any(|s| s.name == name)
                && !extra.iter().any(|s: &StackEntry| s.name == name)
            {
                extra.push(StackEntry {
                    name,
                    path,
                    package: None,
                });
            }
        }
    }
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(extra);
    Ok(out)
}

pub fn write_stack(snapshot_root: &Path, kver: &str, stack: &[StackEntry]) -> Result<()> {
    let root = Root::open(snapshot_root)?;
    root.create_dir_all(STACK_DIR, 0o755)?;
    let mut text = String::from(
        "# Livepatch modules this snapshot loads at boot, in order. Written by transactional-livepatch.\n",
    );
    for s in stack {
        let package = s.package.as_deref().unwrap_or("-");
        text.push_str(&format!("{} {} {package}\n", s.name, s.path));
    }
    root.write_atomic(&format!("{STACK_DIR}/{kver}"), text.as_bytes(), 0o644)
}

/// `/lib/modules/<kver>/livepatch/<file>.ko` or the same below /usr, nothing else.
pub fn is_livepatch_path(path: &str) -> bool {
    let rest = path
        .strip_prefix("/usr/lib/modules/")
        .or_else(|| path.strip_prefix("/lib/modules/"));
    let Some(rest) = rest else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 3
        && parts[1] == "livepatch"
        && parts
            .iter()
            .all(|p| !p.is_empty() && *p != "." && *p != "..")
        && parts[2].ends_with(".ko")
}

/// Where the initrd for `kver` lives inside a snapshot.
pub fn initrd_path(snapshot_root: &Path, kver: &str, configured: &str) -> String {
    if !configured.is_empty() {
        return configured.replace("{kver}", kver);
    }
    let suse = format!("/boot/initrd-{kver}");
    let debian = format!("/boot/initrd.img-{kver}");
    let exists = |p: &str| Root::open(snapshot_root).is_ok_and(|r| r.exists(p));
    if exists(&debian) && !exists(&suse) {
        debian
    } else {
        suse
    }
}

/// Paths listed by `lsinitrd` (without leading slash; symlinks by their name).
pub fn parse_lsinitrd(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| {
            let t = l.as_bytes().first().copied().unwrap_or(b' ');
            // An `ls -l` line starts with the file type character.
            matches!(t, b'-' | b'd' | b'l' | b'c' | b'b' | b'p' | b's')
                && l.len() > 10
                && l.as_bytes()[1..10].iter().all(|c| b"rwxsStT-".contains(c))
        })
        .filter_map(|l| {
            let l = l.split(" -> ").next().unwrap_or(l);
            l.split_whitespace()
                .last()
                .map(|p| p.trim_start_matches("./").to_string())
        })
        .collect()
}

/// What the new initrd must contain, checked against a listing.
pub fn missing_from(listing: &[String], kver: &str, stack: &[StackEntry]) -> Vec<String> {
    let mut missing = Vec::new();
    let has_suffix = |suffix: &str| listing.iter().any(|p| p.ends_with(suffix));
    if !has_suffix(HOOK_NAME) {
        missing.push(format!("the hook {HOOK_NAME}"));
    }
    if !stack.is_empty() && !has_suffix(&format!("{STACK_DIR}/{kver}")) {
        missing.push(format!("the stack file {STACK_DIR}/{kver}"));
    }
    for s in stack {
        let file = s.path.rsplit('/').next().unwrap_or(&s.path);
        if !has_suffix(&format!("modules/{kver}/livepatch/{file}")) {
            missing.push(format!("module {}", s.path));
        }
    }
    missing
}

/// Build the initrd of the snapshot in `env` for `kver` and put it in place
/// at `final_path` (inside the snapshot) once verified.
pub fn regenerate(
    env: &ChrootEnv,
    kver: &str,
    final_path: &str,
    stack: &[StackEntry],
    extra_args: &[String],
) -> Result<()> {
    let root = Root::open(env.root())?;
    let dir_inner = Path::new(final_path)
        .parent()
        .context("initrd path without directory")?
        .to_string_lossy()
        .into_owned();
    let tmp_inner = format!("{dir_inner}/.tlp-new-initrd-{kver}");
    let result = (|| -> Result<()> {
        env.command("dracut")
            .args(["--force", "--quiet", "--no-hostonly"])
            .args(["--add", DRACUT_MODULE])
            .args(extra_args)
            .args(["--kver", kver, &tmp_inner])
            .run_ok()
            .map_err(|e| {
                crate::error::failure_or_no_space(
                    FailureKind::InitrdFailed,
                    format!("dracut failed: {e:#}"),
                )
            })?;
        let listing = env
            .command("lsinitrd")
            .arg(&tmp_inner)
            .run_stdout()
            .map_err(|e| {
                failure(
                    FailureKind::InitrdFailed,
                    format!("cannot list the new initrd: {e:#}"),
                )
            })?;
        let paths = parse_lsinitrd(&listing);
        let missing = missing_from(&paths, kver, stack);
        if !missing.is_empty() {
            crate::bail_kind!(
                FailureKind::InitrdFailed,
                "the new initrd lacks {}",
                missing.join(", ")
            );
        }
        if !stack.is_empty() {
            let inside = env
                .command("lsinitrd")
                .args(["-f", &format!("{STACK_DIR}/{kver}"), &tmp_inner])
                .run_stdout()
                .context("reading the stack file from the new initrd")?;
            let on_disk = root.read_to_string(&format!("{STACK_DIR}/{kver}"))?;
            if inside.trim() != on_disk.trim() {
                crate::bail_kind!(
                    FailureKind::InitrdFailed,
                    "the new initrd holds a different livepatch stack than the snapshot"
                );
            }
        }
        // Resolved inside the snapshot, as dracut in the chroot saw it.
        root.rename(&tmp_inner, final_path)
    })();
    if result.is_err() {
        let _ = root.remove_file(&tmp_inner);
    }
    result.with_context(|| format!("building the initrd for kernel {kver}"))
}

/// Host path of a snapshot-internal path, for messages: to open it, use
/// [`crate::inroot::Root`], which never leaves the snapshot.
pub fn host(snapshot_root: &Path, inner: &str) -> PathBuf {
    snapshot_root.join(inner.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "Image: /boot/initrd.img-6.1.0-56-amd64: 9.7M
========================================================================
Early CPIO image
========================================================================
Version: dracut-059-4

dracut modules:
transactional-livepatch
========================================================================
drwxr-xr-x  12 root     root            0 Nov 23 11:00 .
lrwxrwxrwx   1 root     root            7 Nov 23 11:00 lib -> usr/lib
-rw-r--r--   1 root     root           80 Nov 23 11:00 etc/transactional-livepatch/stack/6.1.0-56-amd64
-rwxr-xr-x   1 root     root          900 Nov 23 11:00 usr/lib/dracut/hooks/pre-udev/00-tlp-load-livepatches.sh
-rw-r--r--   1 root     root        90000 Nov 23 11:00 usr/lib/modules/6.1.0-56-amd64/livepatch/tlp_simple.ko
========================================================================
";

    #[test]
    fn lsinitrd_listing_is_parsed() {
        let p = parse_lsinitrd(LISTING);
        assert!(p.contains(&"lib".to_string()), "{p:?}");
        assert!(p.contains(&"usr/lib/modules/6.1.0-56-amd64/livepatch/tlp_simple.ko".to_string()));
        assert!(!p.iter().any(|x| x.contains("Version")));
    }

    #[test]
    fn verification_names_what_is_missing() {
        let p = parse_lsinitrd(LISTING);
        let k = "6.1.0-56-amd64";
        let simple = StackEntry {
            name: "tlp_simple".into(),
            path: format!("/lib/modules/{k}/livepatch/tlp_simple.ko"),
            package: Some("tlp-livepatch-simple-1-1.x86_64".into()),
        };
        assert!(missing_from(&p, k, std::slice::from_ref(&simple)).is_empty());
        let other = StackEntry {
            name: "tlp_other".into(),
            path: format!("/lib/modules/{k}/livepatch/tlp_other.ko"),
            package: None,
        };
        let m = missing_from(&p, k, &[simple, other]);
        assert_eq!(
            m,
            vec![format!("module /lib/modules/{k}/livepatch/tlp_other.ko")]
        );
        assert_eq!(
            missing_from(&[], k, &[]),
            vec![format!("the hook {HOOK_NAME}")]
        );
    }

    #[test]
    fn stack_keeps_order_drops_gone_and_adds_unrecorded() {
        let d = tempfile::tempdir().unwrap();
        let k = "6.1.0-56-amd64";
        let lp = d.path().join("lib/modules").join(k).join("livepatch");
        std::fs::create_dir_all(&lp).unwrap();
        for f in ["tlp_b.ko", "tlp_a.ko", "tlp_z.ko"] {
            std::fs::write(lp.join(f), "x").unwrap();
        }
        let e = |n: &str| StackEntry {
            name: n.into(),
            path: format!("/lib/modules/{k}/livepatch/{n}.ko"),
            package: None,
        };
        write_stack(d.path(), k, &[e("tlp_b"), e("tlp_gone"), e("tlp_a")]).unwrap();
        let s = read_stack(d.path(), k).unwrap();
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["tlp_b", "tlp_a", "tlp_z"]);
    }

    #[test]
    fn livepatch_paths() {
        assert!(is_livepatch_path(
            "/lib/modules/6.1.0-56-amd64/livepatch/a.ko"
        ));
        assert!(is_livepatch_path(
            "/usr/lib/modules/6.1.0-56-amd64/livepatch/a.ko"
        ));
        assert!(!is_livepatch_path("/lib/modules/6.1.0-56-amd64/extra/a.ko"));
        assert!(!is_livepatch_path("/lib/modules/../livepatch/a.ko"));
        assert!(!is_livepatch_path(
            "/lib/modules/k/livepatch/../../../etc/a.ko"
        ));
        assert!(!is_livepatch_path("lib/modules/k/livepatch/a.ko"));
        assert!(!is_livepatch_path("/lib/modules/k/livepatch/a.txt"));
    }

    #[test]
    fn initrd_name_follows_the_distribution() {
        let d = tempfile::tempdir().unwrap();
        let k = "6.1.0-56-amd64";
        assert_eq!(initrd_path(d.path(), k, ""), format!("/boot/initrd-{k}"));
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        std::fs::write(d.path().join(format!("boot/initrd.img-{k}")), "").unwrap();
        assert_eq!(
            initrd_path(d.path(), k, ""),
            format!("/boot/initrd.img-{k}")
        );
        assert_eq!(
            initrd_path(d.path(), k, "/boot/x-{kver}"),
            format!("/boot/x-{k}")
        );
    }
}
