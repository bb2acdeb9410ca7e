//! Path rules for the file list of a livepatch package. Pure: drive it from
//! tests with hand-made entries, no RPM needed.
//!
//! Every path must be absolute and normalised (no empty, `.` or `..`
//! components, no trailing slash, no control characters), listed once, and not
//! lie under a symlink the package itself ships. Symlink targets must be
//! relative and must not climb with `..`. Device nodes, FIFOs, sockets and
//! setuid/setgid files are refused. Kernel modules (`*.ko`, `*.ko.xz`,
//! `*.ko.zst`, `*.ko.gz`) must be regular files directly in
//! `/lib/modules/<kver>/livepatch/` or `/usr/lib/modules/<kver>/livepatch/`,
//! all for one `<kver>`. Anything else (docs, `/usr/share/livepatch/info/…`) is
//! allowed.

use crate::bail_kind;
use crate::error::FailureKind;
use anyhow::Result;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What kind of file an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Dir,
    /// A symbolic link with its target as stored in the package.
    Symlink(String),
    /// Device node, FIFO, socket or anything unknown; the string names it.
    Other(String),
}

/// One file entry as the package header lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `dirname + basename` exactly as stored (no normalisation).
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u16,
    /// `%ghost`: listed, but without content in the payload.
    pub ghost: bool,
}

impl Entry {
    pub fn file(path: &str) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Regular,
            mode: 0o644,
            ghost: false,
        }
    }
    pub fn dir(path: &str) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            ghost: false,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Entry {
            path: path.into(),
            kind: EntryKind::Symlink(target.into()),
            mode: 0o777,
            ghost: false,
        }
    }
}

/// A kernel module the package installs into a livepatch directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePath {
    /// Index into the entries passed to [`check_paths`].
    pub index: usize,
    pub path: String,
    /// The `<kver>` component of the path.
    pub kver: String,
    /// File name without `.ko[.xz|.zst|.gz]`.
    pub stem: String,
    /// `Some("xz" | "zstd" | "gzip")` for compressed modules.
    pub compression: Option<&'static str>,
}

/// What the file list says: the modules and the one kernel they target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPlan {
    pub modules: Vec<ModulePath>,
    pub kernel_release: String,
}

/// Render a path for a one-line message: as is when harmless, else escaped.
pub fn show(s: &str) -> String {
    if s.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
        format!("{s:?}")
    } else {
        s.to_string()
    }
}

fn has_bad_chars(s: &str) -> Option<&'static str> {
    if s.contains('\u{FFFD}') {
        Some("is not valid UTF-8")
    } else if s.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// Refuse anything but an absolute, normalised path.
pub fn check_normalised(path: &str) -> Result<()> {
    let p = show(path);
    if let Some(why) = has_bad_chars(path) {
        bail_kind!(FailureKind::UnsafePath, "path {p} {why}");
    }
    if !path.starts_with('/') {
        bail_kind!(FailureKind::UnsafePath, "path {p} is not absolute");
    }
    if path == "/" {
        bail_kind!(
            FailureKind::UnsafePath,
            "the package lists the root directory / itself"
        );
    }
    let components: Vec<&str> = path[1..].split('/').collect();
    if components.contains(&"..") {
        bail_kind!(
            FailureKind::UnsafePath,
            "path {p} contains a '..' component"
        );
    }
    if components.iter().any(|c| c.is_empty() || *c == ".") {
        bail_kind!(
            FailureKind::UnsafePath,
            "path {p} is not normalised (empty or '.' component, or a trailing slash)"
        );
    }
    Ok(())
}

/// Refuse symlink targets that are absolute or climb out with `..`.
pub fn check_symlink_target(path: &str, target: &str) -> Result<()> {
    let (p, t) = (show(path), show(target));
    if let Some(why) = has_bad_chars(target) {
        bail_kind!(
            FailureKind::UnsafePath,
            "symlink {p} has a target that {why}"
        );
    }
    if target.is_empty() {
        bail_kind!(FailureKind::UnsafePath, "symlink {p} has an empty target");
    }
    if target.starts_with('/') {
        bail_kind!(
            FailureKind::UnsafePath,
            "symlink {p} points to the absolute path {t}"
        );
    }
    if target.split('/').any(|c| c == "..") {
        bail_kind!(
            FailureKind::UnsafePath,
            "symlink {p} -> {t} climbs out of its directory with '..'"
        );
    }
    Ok(())
}

const MODULE_SUFFIXES: &[(&str, Option<&str>)] = &[
    (".ko", None),
    (".ko.xz", Some("xz")),
    (".ko.zst", Some("zstd")),
    (".ko.gz", Some("gzip")),
];

/// `Some((stem, compression))` when the file name is a kernel module's.
pub fn module_file_name(name: &str) -> Option<(&str, Option<&'static str>)> {
    MODULE_SUFFIXES.iter().find_map(|(suffix, comp)| {
        name.strip_suffix(suffix)
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, *comp))
    })
}

fn is_kver(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+~-".contains(c))
}

/// A module name as the kernel uses it (`/sys/module/<name>`): letters,
/// digits and `_`, at most 55 bytes.
pub fn is_module_name(s: &str) -> bool {
    is_module_stem(s) && !s.contains('-')
}

fn is_module_stem(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 55 // MODULE_NAME_LEN - 1 on 64-bit kernels
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Where a module path sits: `Some(kver)` when directly in a livepatch dir.
fn livepatch_kver(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/lib/modules/")
        .or_else(|| path.strip_prefix("/usr/lib/modules/"))?;
    let mut parts = rest.split('/');
    let (kver, dir, _file) = (parts.next()?, parts.next()?, parts.next()?);
    (dir == "livepatch" && parts.next().is_none()).then_some(kver)
}

/// Check every entry and find the livepatch modules. Errors: `UnsafePath`
/// for any unsafe entry, `NoLivepatch` when no module is in a livepatch dir,
/// `WrongKernel` when modules target more than one kernel, `InvalidPackage`
/// for a `%ghost` module.
pub fn check_paths(entries: &[Entry]) -> Result<PathPlan> {
    let mut seen = HashSet::with_capacity(entries.len());
    let mut symlinks = HashSet::new();
    for e in entries {
        check_normalised(&e.path)?;
        let p = show(&e.path);
        if !seen.insert(e.path.as_str()) {
            bail_kind!(FailureKind::UnsafePath, "path {p} is listed twice");
        }
        match &e.kind {
            EntryKind::Other(what) => bail_kind!(
                FailureKind::UnsafePath,
                "{p} is a {what}; a livepatch package may only ship files, directories and symlinks"
            ),
            EntryKind::Symlink(target) => {
                check_symlink_target(&e.path, target)?;
                symlinks.insert(e.path.as_str());
            }
            EntryKind::Regular if e.mode & 0o6000 != 0 => bail_kind!(
                FailureKind::UnsafePath,
                "{p} is setuid or setgid (mode {:04o})",
                e.mode
            ),
            EntryKind::Regular | EntryKind::Dir => {}
        }
    }
    // Nothing may be installed through a symlink the package itself creates.
    for e in entries {
        let mut dir = e.path.as_str();
        while let Some(i) = dir.rfind('/').filter(|&i| i > 0) {
            dir = &dir[..i];
            if symlinks.contains(dir) {
                bail_kind!(
                    FailureKind::UnsafePath,
                    "{} lies under the symlink {} the package also ships",
                    show(&e.path),
                    show(dir)
                );
            }
        }
    }

    let mut modules = Vec::new();
    let mut names: HashMap<String, &str> = HashMap::new();
    for (index, e) in entries.iter().enumerate() {
        if e.kind == EntryKind::Dir {
            continue;
        }
        let file_name = e.path.rsplit('/').next().unwrap_or_default();
        let Some((stem, compression)) = module_file_name(file_name) else {
            continue;
        };
        let p = show(&e.path);
        if matches!(e.kind, EntryKind::Symlink(_)) {
            bail_kind!(
                FailureKind::UnsafePath,
                "module {p} is a symlink; modules must be regular files"
            );
        }
        let Some(kver) = livepatch_kver(&e.path) else {
            bail_kind!(
                FailureKind::UnsafePath,
                "module {p} is outside the livepatch directory /lib/modules/<kver>/livepatch/"
            );
        };
        if !is_kver(kver) {
            bail_kind!(
                FailureKind::UnsafePath,
                "module {p} is in a directory that is not a kernel release: {}",
                show(kver)
            );
        }
        if !is_module_stem(stem) {
            bail_kind!(
                FailureKind::UnsafePath,
                "module file name {p} must be 1 to 55 letters, digits, '_' or '-'"
            );
        }
        if e.ghost {
            bail_kind!(
                FailureKind::InvalidPackage,
                "module {p} is a %ghost entry without content"
            );
        }
        if let Some(other) = names.insert(stem.replace('-', "_"), &e.path) {
            bail_kind!(
                FailureKind::UnsafePath,
                "modules {} and {p} have the same module name",
                show(other)
            );
        }
        modules.push(ModulePath {
            index,
            path: e.path.clone(),
            kver: kver.to_string(),
            stem: stem.to_string(),
            compression,
        });
    }
    if modules.is_empty() {
        bail_kind!(
            FailureKind::NoLivepatch,
            "the package contains no kernel module under /lib/modules/<kver>/livepatch/"
        );
    }
    let kvers: BTreeSet<&str> = modules.iter().map(|m| m.kver.as_str()).collect();
    if kvers.len() > 1 {
        let list: Vec<&str> = kvers.into_iter().collect();
        bail_kind!(
            FailureKind::WrongKernel,
            "the package has modules for more than one kernel: {}",
            list.join(", ")
        );
    }
    let kernel_release = modules[0].kver.clone();
    Ok(PathPlan {
        modules,
        kernel_release,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    const MOD: &str = "/lib/modules/6.1.0-56-amd64/livepatch/tlp_x.ko";

    fn refused(entries: &[Entry]) -> (FailureKind, String) {
        let e = check_paths(entries).expect_err("should be refused");
        let msg = format!("{e:#}");
        assert!(!msg.contains('\n'), "multi-line message: {msg:?}");
        (kind_of(&e), msg)
    }

    fn with_module(mut extra: Vec<Entry>) -> Vec<Entry> {
        extra.insert(0, Entry::file(MOD));
        extra
    }

    #[test]
    fn good_package_is_accepted() {
        let plan = check_paths(&[
            Entry::dir("/lib/modules/6.1.0-56-amd64/livepatch"),
            Entry::file(MOD),
            Entry::file("/usr/share/livepatch/info/tlp_x.txt"),
            Entry::file("/usr/share/doc/packages/tlp-x/README"),
            Entry::symlink("/usr/share/doc/packages/tlp-x/LINK", "README"),
            Entry::symlink("/usr/share/doc/packages/tlp-x/sub", "a/b/c"),
        ])
        .unwrap();
        assert_eq!(plan.kernel_release, "6.1.0-56-amd64");
        assert_eq!(plan.modules.len(), 1);
        assert_eq!(plan.modules[0].stem, "tlp_x");
        assert_eq!(plan.modules[0].index, 1);
        assert_eq!(plan.modules[0].compression, None);
    }

    #[test]
    fn usr_lib_modules_and_compressed_names_are_recognised() {
        let plan = check_paths(&[
            Entry::file("/usr/lib/modules/6.4.0-150600.23.22-default/livepatch/a.ko.zst"),
            Entry::file("/usr/lib/modules/6.4.0-150600.23.22-default/livepatch/b.ko.xz"),
        ])
        .unwrap();
        assert_eq!(plan.kernel_release, "6.4.0-150600.23.22-default");
        assert_eq!(plan.modules[0].compression, Some("zstd"));
        assert_eq!(plan.modules[1].compression, Some("xz"));
        assert_eq!(plan.modules[1].stem, "b");
    }

    #[test]
    fn unnormalised_paths_are_unsafe() {
        for (path, needle) in [
            ("/lib/modules/../../etc/shadow", "'..'"),
            ("/lib/modules/6.1/livepatch/../../../etc/x.ko", "'..'"),
            ("/usr/share/doc/..", "'..'"),
            ("lib/modules/x", "not absolute"),
            ("", "not absolute"),
            ("./etc/x", "not absolute"),
            ("//etc/passwd", "not normalised"),
            ("/lib//modules/x", "not normalised"),
            ("/lib/./modules/x", "not normalised"),
            ("/usr/share/doc/", "not normalised"),
            ("/usr/share/doc/.", "not normalised"),
            ("/", "root directory"),
            ("/usr/share/doc/a\nb", "control character"),
            ("/usr/share/doc/\u{FFFD}", "not valid UTF-8"),
        ] {
            let (kind, msg) = refused(&with_module(vec![Entry::file(path)]));
            assert_eq!(kind, FailureKind::UnsafePath, "{path:?}: {msg}");
            assert!(msg.contains(needle), "{path:?}: {msg}");
        }
    }

    #[test]
    fn control_characters_are_escaped_in_messages() {
        let (_, msg) = refused(&with_module(vec![Entry::file("/x\n/y")]));
        assert!(msg.contains(r#""/x\n/y""#), "{msg}");
    }

    #[test]
    fn dotted_names_that_are_not_dot_components_are_fine() {
        check_paths(&with_module(vec![
            Entry::file("/usr/share/doc/..foo"),
            Entry::file("/usr/share/doc/.hidden"),
            Entry::file("/usr/share/doc/a..b"),
            Entry::symlink("/usr/share/doc/l", "..foo"),
        ]))
        .unwrap();
    }

    #[test]
    fn escaping_symlinks_are_unsafe() {
        for (target, needle) in [
            ("/etc/shadow", "absolute"),
            ("../../../../etc/shadow", "'..'"),
            ("a/../../b", "'..'"),
            ("..", "'..'"),
            ("", "empty target"),
            ("a\u{7}", "control character"),
        ] {
            let (kind, msg) = refused(&with_module(vec![Entry::symlink(
                "/usr/share/doc/tlp/link",
                target,
            )]));
            assert_eq!(kind, FailureKind::UnsafePath, "{target:?}: {msg}");
            assert!(msg.contains(needle), "{target:?}: {msg}");
            assert!(msg.contains("/usr/share/doc/tlp/link"), "{msg}");
        }
    }

    #[test]
    fn nothing_may_go_through_a_shipped_symlink() {
        let (kind, msg) = refused(&with_module(vec![
            Entry::symlink("/usr/share/doc/tlp", "sub"),
            Entry::file("/usr/share/doc/tlp/README"),
        ]));
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(
            msg.contains("under the symlink /usr/share/doc/tlp"),
            "{msg}"
        );
        // The livepatch dir itself as a symlink.
        let (kind, _) = refused(&[
            Entry::symlink("/lib/modules/6.1.0-56-amd64/livepatch", "x"),
            Entry::file(MOD),
        ]);
        assert_eq!(kind, FailureKind::UnsafePath);
    }

    #[test]
    fn special_files_and_setuid_are_unsafe() {
        let mut dev = Entry::file("/usr/share/doc/dev");
        dev.kind = EntryKind::Other("character device".into());
        let (kind, msg) = refused(&with_module(vec![dev]));
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("character device"), "{msg}");
        let mut suid = Entry::file("/usr/bin/x");
        suid.mode = 0o4755;
        let (kind, msg) = refused(&with_module(vec![suid]));
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("setuid"), "{msg}");
    }

    #[test]
    fn duplicates_are_unsafe() {
        let (kind, msg) = refused(&with_module(vec![Entry::file(MOD)]));
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("listed twice"), "{msg}");
        let (kind, msg) = refused(&with_module(vec![Entry::file(
            "/usr/lib/modules/6.1.0-56-amd64/livepatch/tlp-x.ko",
        )]));
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("same module name"), "{msg}");
    }

    #[test]
    fn modules_outside_livepatch_dirs_are_unsafe() {
        for path in [
            "/lib/modules/6.1.0-56-amd64/extra/foo.ko",
            "/lib/modules/6.1.0-56-amd64/foo.ko",
            "/lib/modules/6.1.0-56-amd64/livepatch/sub/foo.ko",
            "/lib/modules/livepatch/foo.ko",
            "/usr/share/doc/foo.ko",
            "/tmp/foo.ko.xz",
            "/usr/local/lib/modules/6.1.0-56-amd64/livepatch/foo.ko",
        ] {
            let (kind, msg) = refused(&with_module(vec![Entry::file(path)]));
            assert_eq!(kind, FailureKind::UnsafePath, "{path}: {msg}");
            assert!(
                msg.contains(&format!("module {path} is outside the livepatch directory")),
                "{msg}"
            );
        }
    }

    #[test]
    fn module_names_and_kinds_are_checked() {
        let (kind, msg) = refused(&[Entry::symlink(MOD, "other.ko")]);
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("is a symlink"), "{msg}");
        let (kind, msg) = refused(&[Entry::file(
            "/lib/modules/6.1.0-56-amd64/livepatch/bad name.ko",
        )]);
        assert_eq!(kind, FailureKind::UnsafePath);
        assert!(msg.contains("module file name"), "{msg}");
        let (kind, _) = refused(&[Entry::file("/lib/modules/-x/livepatch/a.ko")]);
        assert_eq!(kind, FailureKind::UnsafePath);
        let mut ghost = Entry::file(MOD);
        ghost.ghost = true;
        let (kind, msg) = refused(&[ghost]);
        assert_eq!(kind, FailureKind::InvalidPackage);
        assert!(msg.contains("%ghost"), "{msg}");
        // A directory named like a module is just a directory, and ".ko" alone is no module.
        check_paths(&with_module(vec![
            Entry::dir("/usr/share/doc/x.ko"),
            Entry::file("/usr/share/doc/.ko"),
        ]))
        .unwrap();
    }

    #[test]
    fn kernel_module_names() {
        assert!(is_module_name("tlp_x"));
        assert!(is_module_name("livepatch_6_4_0_150600_23_22"));
        for bad in ["", "tlp-x", "../x", "a/b", "a b", "x\n", &"a".repeat(56)] {
            assert!(!is_module_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn no_module_is_no_livepatch() {
        let (kind, msg) = refused(&[
            Entry::dir("/lib/modules/6.1.0-56-amd64/livepatch"),
            Entry::file("/usr/share/doc/README"),
        ]);
        assert_eq!(kind, FailureKind::NoLivepatch);
        assert!(msg.contains("no kernel module"), "{msg}");
        let (kind, _) = refused(&[]);
        assert_eq!(kind, FailureKind::NoLivepatch);
    }

    #[test]
    fn two_kernels_is_wrong_kernel() {
        let (kind, msg) = refused(&with_module(vec![Entry::file(
            "/lib/modules/6.1.0-57-amd64/livepatch/tlp_y.ko",
        )]));
        assert_eq!(kind, FailureKind::WrongKernel);
        assert!(msg.contains("6.1.0-56-amd64, 6.1.0-57-amd64"), "{msg}");
    }

    #[test]
    fn unsafe_paths_win_over_missing_modules() {
        let (kind, _) = refused(&[Entry::file("/etc/../x")]);
        assert_eq!(kind, FailureKind::UnsafePath);
    }
}
