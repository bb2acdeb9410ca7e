//! The initrd of a snapshot: the boot stack file, dracut, verification.
//!
//! What a snapshot boots with is decided inside the snapshot: the ordered list
//! of livepatch modules for each kernel (the *boot stack*,
//! `/etc/transactional-livepatch/stack/<kver>`, one `name path package cves`
//! line per module, load order) rolls back with it. The CVE ids are recorded
//! at apply time, from the package file, so that `status` never asks the
//! snapshot's rpm database for them (a snapshot's stack never changes). Our dracut module
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
    /// The CVE ids its package names, as preflight found them when it was
    /// applied; None when not recorded (a stack written by an older version,
    /// or a module installed by other means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cves: Option<Vec<String>>,
}

/// The fourth field of a stack line: CVE ids joined by commas, `-` for none.
fn cves_field(cves: &[String]) -> String {
    if cves.is_empty() {
        "-".into()
    } else {
        cves.join(",")
    }
}

/// Only well-formed ids come back (the stack file is plain text in the
/// snapshot's /etc; status --json promises the `CVE-YYYY-NNNN` form).
fn parse_cves_field(field: &str) -> Vec<String> {
    crate::package::find_cves(field)
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
                let cves = it.next().map(parse_cves_field);
                if is_livepatch_path(path)
                    && root.symlink_metadata(path).ok().flatten() == Some(FileKind::File)
                {
                    out.push(StackEntry {
                        name: name.into(),
                        path: path.into(),
                        package,
                        cves,
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
                    cves: None,
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
        // The dracut module reads `name path _`: the fields after the path
        // are the tool's alone.
        match &s.cves {
            Some(cves) => text.push_str(&format!(
                "{} {} {package} {}\n",
                s.name,
                s.path,
                cves_field(cves)
            )),
            None => text.push_str(&format!("{} {} {package}\n", s.name, s.path)),
        }
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

/// The one `lsinitrd --unpack` pattern that selects everything the
/// verification needs: the hook, the stack file and the livepatch modules all
/// have it in their path (checked by a unit test), so a single pass over the
/// archive extracts them. A shell glob: `lsinitrd` hands it to `cpio`
/// unquoted, which is harmless because it runs in an empty directory.
const UNPACK_PATTERN: &str = "*livepatch*";

/// Relative paths of the regular files below `dir` (not following symlinks),
/// as a listing to check with [`missing_from`].
fn files_below(dir: &Path) -> Result<Vec<String>> {
    let root = Root::open(dir)?;
    let mut out = Vec::new();
    let mut todo = vec![String::new()];
    while let Some(d) = todo.pop() {
        let inner = if d.is_empty() {
            ".".to_string()
        } else {
            d.clone()
        };
        for (name, kind) in root.read_dir(&inner)?.unwrap_or_default() {
            let rel = if d.is_empty() {
                name
            } else {
                format!("{d}/{name}")
            };
            match kind {
                FileKind::Dir => todo.push(rel),
                FileKind::File => out.push(rel),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the new initrd must contain, checked against a listing (paths
/// relative to the archive root).
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
        if !has_suffix(&module_suffix(kver, s)) {
            missing.push(format!("module {}", s.path));
        }
    }
    missing
}

/// How a stack module's path ends in the initrd (below `lib/` or `usr/lib/`).
fn module_suffix(kver: &str, s: &StackEntry) -> String {
    let file = s.path.rsplit('/').next().unwrap_or(&s.path);
    format!("modules/{kver}/livepatch/{file}")
}

/// The hook script as our dracut module in the snapshot ships it, when the
/// module is installed there (dracut copies it into the initrd unchanged).
fn hook_source(snapshot: &Root) -> Result<Option<(String, Vec<u8>)>> {
    for base in ["usr/lib/dracut/modules.d", "lib/dracut/modules.d"] {
        for (name, kind) in snapshot.read_dir(base)?.unwrap_or_default() {
            let numbered = name
                .strip_suffix(DRACUT_MODULE)
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit()));
            if kind == FileKind::Dir && numbered {
                let inner = format!("{base}/{name}/{HOOK_NAME}");
                if let Some(bytes) = read_if_present(snapshot, &inner)? {
                    return Ok(Some((inner, bytes)));
                }
            }
        }
    }
    Ok(None)
}

fn read_if_present(root: &Root, inner: &str) -> Result<Option<Vec<u8>>> {
    match root.open_read(inner) {
        Ok(mut f) => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut v)
                .with_context(|| format!("reading {}", root.display(inner)))?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", root.display(inner))),
    }
}

/// Check the files `lsinitrd --unpack` extracted into `unpacked` against the
/// snapshot: the hook, the stack file and every module of `stack` are there,
/// and each holds the same bytes as its source in the snapshot (so a stale
/// module or stack of the same name does not pass). Returns a one-line
/// account of what is wrong, None when the initrd is right.
pub fn check_unpacked(
    unpacked: &Path,
    snapshot: &Path,
    kver: &str,
    stack: &[StackEntry],
) -> Result<Option<String>> {
    let listing = files_below(unpacked)?;
    let missing = missing_from(&listing, kver, stack);
    let mut different = Vec::new();
    let inside = Root::open(unpacked)?;
    let snap = Root::open(snapshot)?;
    let found = |suffix: &str| listing.iter().find(|p| p.ends_with(suffix));
    let mut differs = |what: String, in_initrd: &str, source: &[u8]| -> Result<()> {
        if read_if_present(&inside, in_initrd)?.as_deref() != Some(source) {
            different.push(what);
        }
        Ok(())
    };
    if let Some(hook) = listing.iter().find(|p| p.ends_with(HOOK_NAME))
        && let Some((src, bytes)) = hook_source(&snap)?
    {
        differs(
            format!("hook {HOOK_NAME} (not the one of /{src})"),
            hook,
            &bytes,
        )?;
    }
    let stack_file = format!("{STACK_DIR}/{kver}");
    if !stack.is_empty()
        && let Some(p) = found(&stack_file)
    {
        let on_disk = read_if_present(&snap, &stack_file)?.unwrap_or_default();
        differs(format!("stack file {stack_file}"), p, &on_disk)?;
    }
    for s in stack {
        if let Some(p) = found(&module_suffix(kver, s)) {
            let on_disk = read_if_present(&snap, &s.path)?.unwrap_or_default();
            differs(format!("module {}", s.path), p, &on_disk)?;
        }
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("lacks {}", missing.join(", ")));
    }
    if !different.is_empty() {
        parts.push(format!(
            "holds a different {} than the snapshot",
            different.join(", ")
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.join("; it ")))
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
        // One lsinitrd pass: unpack what we check into an empty directory on
        // the chroot's /run (a tmpfs of this transaction), then compare it
        // with the snapshot here. Listing the archive and reading files from
        // it would take one full lsinitrd run each.
        let unpack = tempfile::Builder::new()
            .prefix("tlp-initrd-check.")
            .tempdir_in(env.host_path("/run"))
            .context("creating a directory to unpack the new initrd into")?;
        let unpack_inner = format!(
            "/run/{}",
            unpack
                .path()
                .file_name()
                .context("temp dir without name")?
                .to_string_lossy()
        );
        env.command("env")
            .args(["-C", &unpack_inner, "lsinitrd", "--unpack", &tmp_inner])
            .arg(UNPACK_PATTERN)
            .run_ok()
            .map_err(|e| {
                failure(
                    FailureKind::InitrdFailed,
                    format!("cannot unpack the new initrd: {e:#}"),
                )
            })?;
        if let Some(wrong) = check_unpacked(unpack.path(), env.root(), kver, stack)? {
            crate::bail_kind!(FailureKind::InitrdFailed, "the new initrd {wrong}");
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

    const K: &str = "6.1.0-56-amd64";

    fn listing() -> Vec<String> {
        [
            "etc/transactional-livepatch/stack/6.1.0-56-amd64",
            "usr/lib/dracut/hooks/pre-udev/00-tlp-load-livepatches.sh",
            "usr/lib/modules/6.1.0-56-amd64/livepatch/tlp_simple.ko",
        ]
        .map(String::from)
        .to_vec()
    }

    fn entry(name: &str) -> StackEntry {
        StackEntry {
            name: name.into(),
            path: format!("/lib/modules/{K}/livepatch/{name}.ko"),
            package: None,
            cves: None,
        }
    }

    #[test]
    fn verification_names_what_is_missing() {
        let p = listing();
        let simple = entry("tlp_simple");
        assert!(missing_from(&p, K, std::slice::from_ref(&simple)).is_empty());
        let m = missing_from(&p, K, &[simple, entry("tlp_other")]);
        assert_eq!(
            m,
            vec![format!("module /lib/modules/{K}/livepatch/tlp_other.ko")]
        );
        assert_eq!(
            missing_from(&[], K, &[]),
            vec![format!("the hook {HOOK_NAME}")]
        );
    }

    #[test]
    fn one_unpack_pattern_selects_everything_checked() {
        let glob = UNPACK_PATTERN.trim_matches('*');
        assert!(!glob.contains(['*', '?', '[']), "{UNPACK_PATTERN}");
        for p in listing() {
            assert!(p.contains(glob), "{p} is not selected by {UNPACK_PATTERN}");
        }
        assert!(STACK_DIR.contains(glob) && HOOK_NAME.contains(glob));
    }

    fn put(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// A snapshot with our dracut module and a stack of tlp_simple, and what
    /// lsinitrd would unpack from a right initrd of it.
    fn snapshot_and_unpacked() -> (tempfile::TempDir, tempfile::TempDir) {
        let snap = tempfile::tempdir().unwrap();
        let hook = format!("usr/lib/dracut/modules.d/90{DRACUT_MODULE}/{HOOK_NAME}");
        put(snap.path(), &hook, b"#!/bin/sh\nload\n");
        put(
            snap.path(),
            &format!("lib/modules/{K}/livepatch/tlp_simple.ko"),
            b"ko v2",
        );
        write_stack(snap.path(), K, &[entry("tlp_simple")]).unwrap();
        let stack = std::fs::read(snap.path().join(format!("{STACK_DIR}/{K}"))).unwrap();
        let un = tempfile::tempdir().unwrap();
        put(un.path(), &listing()[0], &stack);
        put(un.path(), &listing()[1], b"#!/bin/sh\nload\n");
        put(un.path(), &listing()[2], b"ko v2");
        (snap, un)
    }

    #[test]
    fn unpacked_initrd_matching_the_snapshot_passes() {
        let (snap, un) = snapshot_and_unpacked();
        let stack = [entry("tlp_simple")];
        assert_eq!(
            check_unpacked(un.path(), snap.path(), K, &stack).unwrap(),
            None
        );
    }

    #[test]
    fn unpacked_initrd_with_missing_or_stale_files_fails() {
        let stack = [entry("tlp_simple")];
        let check = |un: &Path, snap: &Path| {
            check_unpacked(un, snap, K, &stack)
                .unwrap()
                .expect("a bad initrd passed")
        };
        // A stale module and a stale stack file of the right names.
        let (snap, un) = snapshot_and_unpacked();
        put(un.path(), &listing()[2], b"ko v1");
        put(un.path(), &listing()[0], b"tlp_old /x -\n");
        assert_eq!(
            check(un.path(), snap.path()),
            format!(
                "holds a different stack file {STACK_DIR}/{K}, module /lib/modules/{K}/livepatch/tlp_simple.ko than the snapshot"
            )
        );
        // A hook that is not our dracut module's.
        let (snap, un) = snapshot_and_unpacked();
        put(un.path(), &listing()[1], b"#!/bin/sh\n");
        let m = check(un.path(), snap.path());
        assert!(
            m.starts_with(&format!("holds a different hook {HOOK_NAME}")),
            "{m}"
        );
        // Nothing unpacked (our dracut module left out); a symlink where the
        // module should be is not a module.
        let (snap, un) = snapshot_and_unpacked();
        std::fs::remove_dir_all(un.path().join("etc")).unwrap();
        std::fs::remove_dir_all(un.path().join("usr/lib/dracut")).unwrap();
        let ko = un.path().join(&listing()[2]);
        std::fs::remove_file(&ko).unwrap();
        std::os::unix::fs::symlink(
            snap.path()
                .join(format!("lib/modules/{K}/livepatch/tlp_simple.ko")),
            &ko,
        )
        .unwrap();
        assert_eq!(
            check(un.path(), snap.path()),
            format!(
                "lacks the hook {HOOK_NAME}, the stack file {STACK_DIR}/{K}, module /lib/modules/{K}/livepatch/tlp_simple.ko"
            )
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
            cves: None,
        };
        write_stack(d.path(), k, &[e("tlp_b"), e("tlp_gone"), e("tlp_a")]).unwrap();
        let s = read_stack(d.path(), k).unwrap();
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["tlp_b", "tlp_a", "tlp_z"]);
    }

    #[test]
    fn stack_records_packages_and_cves_when_known() {
        let d = tempfile::tempdir().unwrap();
        let k = "6.1.0-56-amd64";
        let lp = d.path().join("lib/modules").join(k).join("livepatch");
        std::fs::create_dir_all(&lp).unwrap();
        for f in ["tlp_a.ko", "tlp_b.ko", "tlp_c.ko"] {
            std::fs::write(lp.join(f), "x").unwrap();
        }
        let e = |n: &str, package: Option<&str>, cves: Option<&[&str]>| StackEntry {
            name: n.into(),
            path: format!("/lib/modules/{k}/livepatch/{n}.ko"),
            package: package.map(str::to_string),
            cves: cves.map(|c| c.iter().map(|c| c.to_string()).collect()),
        };
        let written = [
            e(
                "tlp_a",
                Some("a-1-1.x86_64"),
                Some(&["CVE-2026-0001", "CVE-2026-22222"]),
            ),
            e("tlp_b", Some("b-1-1.x86_64"), Some(&[])),
            e("tlp_c", None, None),
        ];
        write_stack(d.path(), k, &written).unwrap();
        let text = std::fs::read_to_string(d.path().join(STACK_DIR).join(k)).unwrap();
        assert!(
            text.contains(&format!(
                "tlp_a /lib/modules/{k}/livepatch/tlp_a.ko a-1-1.x86_64 CVE-2026-0001,CVE-2026-22222\n"
            )),
            "{text}"
        );
        assert!(text.contains("b-1-1.x86_64 -\n"), "{text}");
        assert!(text.ends_with("tlp_c.ko -\n"), "{text}");
        assert_eq!(read_stack(d.path(), k).unwrap(), written);
        // A stack written before CVEs were recorded: three fields.
        std::fs::write(
            d.path().join(STACK_DIR).join(k),
            format!("tlp_a /lib/modules/{k}/livepatch/tlp_a.ko a-1-1.x86_64\n"),
        )
        .unwrap();
        let old = read_stack(d.path(), k).unwrap();
        assert_eq!(old[0].package.as_deref(), Some("a-1-1.x86_64"));
        assert_eq!(old[0].cves, None);
        // Whatever else is in the field, only well-formed ids come out.
        std::fs::write(
            d.path().join(STACK_DIR).join(k),
            format!("tlp_a /lib/modules/{k}/livepatch/tlp_a.ko a-1 <b>,CVE-2026-0007,x\n"),
        )
        .unwrap();
        assert_eq!(
            read_stack(d.path(), k).unwrap()[0].cves,
            Some(vec!["CVE-2026-0007".to_string()])
        );
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
