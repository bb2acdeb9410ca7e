//! `tlp::btrfs` against a real kernel: every test makes a fresh btrfs on a
//! sparse file attached to a loop device, exercises the wrappers and checks the
//! result with the `btrfs` command-line tool.
//!
//! Needs root, mkfs.btrfs, losetup, btrfs, mount, umount, /dev/loop-control and
//! btrfs in the kernel. When something is missing the tests print
//! "skipped: ..." and pass, except with CI=true, where they fail.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tlp::btrfs;

const TOOLS: &[&str] = &["mkfs.btrfs", "losetup", "btrfs", "mount", "umount"];

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn kernel_has_btrfs() -> bool {
    let has = || {
        std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|s| s.lines().any(|l| l.trim_end().ends_with("btrfs")))
    };
    if !has() {
        let _ = Command::new("modprobe").arg("btrfs").output();
    }
    has()
}

/// What keeps these tests from running here (empty: nothing).
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root privileges".to_string());
    }
    for t in TOOLS {
        if find_tool(t).is_none() {
            missing.push(format!("{t} (not in PATH)"));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("/dev/loop-control".to_string());
    }
    if !kernel_has_btrfs() {
        missing.push("btrfs support in the kernel".to_string());
    }
    missing
}

/// True if the test may run. With CI=true missing prerequisites fail the test;
/// otherwise the test is reported as skipped.
fn prerequisites_met(test: &str) -> bool {
    let missing = missing_prerequisites();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but prerequisites are missing: {what}");
    }
    eprintln!("{test}: skipped: missing {what}");
    false
}

fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A mounted scratch btrfs; unmounted and detached on drop, also on panic.
struct LoopFs {
    mnt: PathBuf,
    loopdev: Option<String>,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl LoopFs {
    /// None when the test is to be skipped.
    fn new(test: &str) -> Option<LoopFs> {
        if !prerequisites_met(test) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("btrfs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(300 << 20))
            .expect("sparse image");
        let mut fs = LoopFs {
            mnt,
            loopdev: None,
            mounted: false,
            _dir: dir,
        };
        run("mkfs.btrfs", &["-q", "-f", s(&image)]);
        let dev = run("losetup", &["--find", "--show", s(&image)])
            .trim()
            .to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        fs.loopdev = Some(dev.clone());
        run("mount", &["-t", "btrfs", &dev, s(&fs.mnt)]);
        fs.mounted = true;
        Some(fs)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(dev) = &self.loopdev {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}

// ---------------------------------------------------------------------------
// The CLI's view

fn cli_create(p: &Path) {
    run("btrfs", &["subvolume", "create", s(p)]);
}

/// `btrfs subvolume get-default`: "ID 5 (FS_TREE)" or "ID 256 gen 7 top level 5 path a".
fn cli_default(mnt: &Path) -> u64 {
    let out = run("btrfs", &["subvolume", "get-default", s(mnt)]);
    let id = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("get-default printed {out:?}"));
    id.parse()
        .unwrap_or_else(|_| panic!("get-default printed {out:?}"))
}

fn cli_ro(p: &Path) -> bool {
    match run("btrfs", &["property", "get", "-ts", s(p), "ro"]).trim() {
        "ro=true" => true,
        "ro=false" => false,
        other => panic!("property get printed {other:?}"),
    }
}

/// `btrfs subvolume show` as key -> value ("-" stays "-").
fn cli_show(p: &Path) -> HashMap<String, String> {
    run("btrfs", &["subvolume", "show", s(p)])
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn cli_uuid(p: &Path, key: &str) -> String {
    let v = cli_show(p)
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no {key} in subvolume show"));
    if v == "-" { String::new() } else { v }
}

/// `btrfs subvolume list`: path (relative to the top level) -> id.
fn cli_list(mnt: &Path) -> HashMap<String, u64> {
    run("btrfs", &["subvolume", "list", s(mnt)])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.first(), Some(&"ID"), "list line {l:?}");
            let path = l.split_once(" path ").expect("path field").1.to_string();
            (path, f[1].parse().expect("id"))
        })
        .collect()
}

fn chain_errno(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .and_then(|io| io.raw_os_error())
}

// ---------------------------------------------------------------------------

#[test]
fn default_subvolume_starts_at_top_level_and_roundtrips() {
    let Some(fs) = LoopFs::new("default_subvolume_starts_at_top_level_and_roundtrips") else {
        return;
    };
    assert_eq!(cli_default(&fs.mnt), 5);
    assert_eq!(btrfs::default_subvolume(&fs.mnt).unwrap(), 5);

    let a = fs.path("a");
    cli_create(&a);
    let id = btrfs::subvolume_info(&a).unwrap().id;
    assert_eq!(cli_list(&fs.mnt)["a"], id);

    btrfs::set_default_subvolume(&fs.mnt, id).unwrap();
    assert_eq!(
        cli_default(&fs.mnt),
        id,
        "CLI does not see the default we set"
    );
    assert_eq!(btrfs::default_subvolume(&fs.mnt).unwrap(), id);
    // Any directory of the filesystem will do.
    assert_eq!(btrfs::default_subvolume(&a).unwrap(), id);

    // Set by the CLI, read by us.
    let b = fs.path("b");
    cli_create(&b);
    let b_id = btrfs::subvolume_info(&b).unwrap().id;
    run(
        "btrfs",
        &["subvolume", "set-default", &b_id.to_string(), s(&fs.mnt)],
    );
    assert_eq!(btrfs::default_subvolume(&fs.mnt).unwrap(), b_id);

    btrfs::set_default_subvolume(&fs.mnt, 5).unwrap();
    assert_eq!(cli_default(&fs.mnt), 5);
    assert_eq!(btrfs::default_subvolume(&fs.mnt).unwrap(), 5);

    let e = btrfs::set_default_subvolume(&fs.mnt, 9999).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("9999") && msg.contains(s(&fs.mnt)), "{msg}");
    assert_eq!(cli_default(&fs.mnt), 5);
}

#[test]
fn snapshots_rw_and_ro() {
    let Some(fs) = LoopFs::new("snapshots_rw_and_ro") else {
        return;
    };
    let src = fs.path("src");
    cli_create(&src);
    std::fs::write(src.join("file"), b"payload").unwrap();

    btrfs::create_snapshot(&src, &fs.mnt, "rw", false).unwrap();
    btrfs::create_snapshot(&src, &fs.mnt, "ro", true).unwrap();
    std::fs::create_dir(fs.path("snaps")).unwrap();
    btrfs::create_snapshot(&src, &fs.path("snaps"), "1", true).unwrap();

    let (rw, ro) = (fs.path("rw"), fs.path("ro"));
    assert!(!cli_ro(&rw));
    assert!(cli_ro(&ro));
    assert!(cli_ro(&fs.path("snaps/1")));
    assert_eq!(std::fs::read(rw.join("file")).unwrap(), b"payload");
    assert_eq!(std::fs::read(ro.join("file")).unwrap(), b"payload");
    std::fs::write(rw.join("new"), b"x").unwrap();
    let e = std::fs::write(ro.join("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));

    let src_info = btrfs::subvolume_info(&src).unwrap();
    let ro_info = btrfs::subvolume_info(&ro).unwrap();
    let rw_info = btrfs::subvolume_info(&rw).unwrap();
    assert_eq!(src_info.uuid, cli_uuid(&src, "UUID"));
    assert_eq!(ro_info.parent_uuid, src_info.uuid);
    assert_eq!(rw_info.parent_uuid, src_info.uuid);
    assert_eq!(cli_uuid(&ro, "Parent UUID"), src_info.uuid);
    assert!(ro_info.readonly && !rw_info.readonly && !src_info.readonly);

    let list = cli_list(&fs.mnt);
    assert_eq!(list["rw"], rw_info.id);
    assert_eq!(list["ro"], ro_info.id);
    assert!(list.contains_key("snaps/1"), "{list:?}");

    // Only whole subvolumes are snapshotted.
    std::fs::create_dir(src.join("dir")).unwrap();
    let e = btrfs::create_snapshot(&src.join("dir"), &fs.mnt, "bad", false).unwrap_err();
    assert!(
        format!("{e:#}").contains("not the root directory of a btrfs subvolume"),
        "{e:#}"
    );
    assert!(!fs.path("bad").exists());
}

#[test]
fn readonly_flag_set_and_clear() {
    let Some(fs) = LoopFs::new("readonly_flag_set_and_clear") else {
        return;
    };
    let a = fs.path("a");
    cli_create(&a);
    assert!(!cli_ro(&a));

    btrfs::set_readonly(&a, true).unwrap();
    assert!(cli_ro(&a), "CLI does not see the read-only flag");
    assert_eq!(cli_show(&a)["Flags"], "readonly");
    assert!(btrfs::subvolume_info(&a).unwrap().readonly);
    let e = std::fs::write(a.join("f"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    btrfs::set_readonly(&a, true).unwrap(); // idempotent

    btrfs::set_readonly(&a, false).unwrap();
    assert!(!cli_ro(&a));
    assert!(!btrfs::subvolume_info(&a).unwrap().readonly);
    std::fs::write(a.join("f"), b"x").unwrap();

    // Set by the CLI, seen by us.
    run("btrfs", &["property", "set", "-ts", s(&a), "ro", "true"]);
    assert!(btrfs::subvolume_info(&a).unwrap().readonly);
    btrfs::set_readonly(&a, false).unwrap();
    assert!(!cli_ro(&a));
}

#[test]
fn delete_subvolume_removes_only_what_it_should() {
    let Some(fs) = LoopFs::new("delete_subvolume_removes_only_what_it_should") else {
        return;
    };
    let (a, b) = (fs.path("a"), fs.path("b"));
    cli_create(&a);
    cli_create(&b);
    cli_create(&b.join("nested"));
    std::os::unix::fs::symlink(&a, fs.path("link")).unwrap();
    std::fs::create_dir(fs.path("plain")).unwrap();

    for refused in [
        fs.path("link"),
        a.join(".."),
        fs.path("a/"),
        a.join("."),
        fs.path("plain"),
    ] {
        let e = btrfs::delete_subvolume(&refused).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!("deleting subvolume {}", refused.display())),
            "{msg}"
        );
    }
    assert!(
        cli_list(&fs.mnt).contains_key("a"),
        "a refused delete removed a"
    );

    // Nested subvolumes block deletion.
    let e = btrfs::delete_subvolume(&b).unwrap_err();
    assert!(format!("{e:#}").contains(s(&b)), "{e:#}");
    assert!(cli_list(&fs.mnt).contains_key("b"));

    btrfs::delete_subvolume(&a).unwrap();
    btrfs::delete_subvolume(&b.join("nested")).unwrap();
    btrfs::delete_subvolume(&b).unwrap();
    // A read-only snapshot can be deleted too.
    cli_create(&a);
    btrfs::create_snapshot(&a, &fs.mnt, "snap", true).unwrap();
    btrfs::delete_subvolume(&fs.path("snap")).unwrap();

    let list = cli_list(&fs.mnt);
    assert_eq!(list.keys().collect::<Vec<_>>(), vec!["a"], "{list:?}");
    assert!(!b.exists() && !fs.path("snap").exists());
    assert!(fs.path("link").is_symlink() && fs.path("plain").is_dir());

    // A relative path works too.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&a, &cwd);
    btrfs::delete_subvolume(&rel).unwrap();
    assert!(cli_list(&fs.mnt).is_empty());
}

/// `target` relative to `base` (both absolute).
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut p = PathBuf::new();
    for _ in common..b.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

#[test]
fn subvolume_info_and_is_subvolume_match_cli() {
    let Some(fs) = LoopFs::new("subvolume_info_and_is_subvolume_match_cli") else {
        return;
    };
    let top = btrfs::subvolume_info(&fs.mnt).unwrap();
    assert_eq!((top.id, top.parent_id, top.readonly), (5, 0, false));
    assert_eq!(top.uuid, cli_uuid(&fs.mnt, "UUID"));

    let a = fs.path("a");
    let nested = a.join("nested");
    cli_create(&a);
    cli_create(&nested);
    std::fs::create_dir(a.join("dir")).unwrap();
    std::fs::write(a.join("file"), b"").unwrap();
    std::os::unix::fs::symlink(&a, fs.path("link")).unwrap();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ai = btrfs::subvolume_info(&a).unwrap();
    let ni = btrfs::subvolume_info(&nested).unwrap();
    let (a_show, n_show) = (cli_show(&a), cli_show(&nested));
    assert_eq!(ai.id.to_string(), a_show["Subvolume ID"]);
    assert_eq!(ai.parent_id.to_string(), a_show["Parent ID"]);
    assert_eq!(ai.parent_id, 5);
    assert_eq!(ni.id.to_string(), n_show["Subvolume ID"]);
    assert_eq!(ni.parent_id, ai.id);
    assert_eq!(ni.parent_id.to_string(), n_show["Parent ID"]);
    assert_eq!(ai.uuid, a_show["UUID"]);
    assert_eq!(ai.uuid.len(), 36);
    assert_eq!(ai.parent_uuid, "");
    assert_eq!(a_show["Parent UUID"], "-");
    assert!(
        (ai.otime - now).abs() < 120,
        "otime {} vs now {now}",
        ai.otime
    );
    assert_ne!(ai.uuid, ni.uuid);

    assert!(btrfs::is_subvolume(&fs.mnt).unwrap());
    assert!(btrfs::is_subvolume(&a).unwrap());
    assert!(btrfs::is_subvolume(&fs.path("a/")).unwrap());
    assert!(btrfs::is_subvolume(&nested).unwrap());
    assert!(!btrfs::is_subvolume(&a.join("dir")).unwrap());
    assert!(!btrfs::is_subvolume(&a.join("file")).unwrap());
    assert!(!btrfs::is_subvolume(&a.join("missing")).unwrap());
    assert!(!btrfs::is_subvolume(&fs.path("link")).unwrap());
    assert!(!btrfs::is_subvolume(&fs.path("link/")).unwrap());

    // A snapshot holds an empty placeholder directory where a nested subvolume was.
    btrfs::create_snapshot(&a, &fs.mnt, "snap", false).unwrap();
    assert!(fs.path("snap/nested").is_dir());
    assert!(!btrfs::is_subvolume(&fs.path("snap/nested")).unwrap());

    assert_eq!(btrfs::subvolume_id(&a.join("dir")).unwrap(), ai.id);
    assert_eq!(btrfs::subvolume_id(&fs.path("link")).unwrap(), ai.id);
    let e = btrfs::subvolume_info(&a.join("dir")).unwrap_err();
    assert!(
        format!("{e:#}").contains("not the root directory of a btrfs subvolume"),
        "{e:#}"
    );
    let e = btrfs::subvolume_info(&fs.path("link")).unwrap_err();
    assert!(format!("{e:#}").contains("symbolic link"), "{e:#}");

    // The listing variant, relative to an open directory, says the same;
    // another filesystem mounted on a directory is not a subvolume, and no
    // error.
    let dir = nix::fcntl::open(
        &fs.mnt,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    assert_eq!(btrfs::subvolume_info_at(&dir, "a").unwrap(), Some(ai));
    assert_eq!(
        btrfs::subvolume_info_at(&dir, "a/nested").unwrap(),
        Some(ni)
    );
    for not in ["a/dir", "a/file", "a/missing", "link", "snap/nested"] {
        assert_eq!(btrfs::subvolume_info_at(&dir, not).unwrap(), None, "{not}");
    }
    let other = fs.path("a/dir");
    run("mount", &["-t", "tmpfs", "tmpfs", s(&other)]);
    let on_tmpfs = btrfs::subvolume_info_at(&dir, "a/dir");
    run("umount", &[s(&other)]);
    assert_eq!(on_tmpfs.unwrap(), None);
}

/// Superblock generation on disk, as `btrfs inspect-internal dump-super` reads it.
fn disk_generation(dev: &str) -> u64 {
    let out = run("btrfs", &["inspect-internal", "dump-super", dev]);
    out.lines()
        .find_map(|l| l.strip_prefix("generation"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no generation in dump-super output:\n{out}"))
}

#[test]
fn sync_commits_a_transaction() {
    let Some(fs) = LoopFs::new("sync_commits_a_transaction") else {
        return;
    };
    let dev = fs.loopdev.clone().unwrap();
    btrfs::sync(&fs.mnt).unwrap();
    let before = disk_generation(&dev);
    std::fs::write(fs.path("f"), b"data").unwrap();
    btrfs::sync(&fs.mnt).unwrap();
    let after = disk_generation(&dev);
    assert!(
        after > before,
        "generation {before} -> {after}: sync committed nothing"
    );
    cli_create(&fs.path("a"));
    btrfs::sync(&fs.path("a")).unwrap();
    assert!(disk_generation(&dev) > after);
}

#[test]
fn errors_carry_context() {
    let Some(fs) = LoopFs::new("errors_carry_context") else {
        return;
    };
    let a = fs.path("a");
    cli_create(&a);
    let frozen = fs.path("frozen");
    btrfs::create_snapshot(&a, &fs.mnt, "frozen", true).unwrap();

    // Snapshot into a read-only subvolume.
    let e = btrfs::create_snapshot(&a, &frozen, "x", false).unwrap_err();
    let msg = format!("{e:#}");
    assert_eq!(
        msg,
        format!(
            "creating snapshot of {} as {}/x: Read-only file system (os error 30)",
            a.display(),
            frozen.display()
        )
    );
    assert_eq!(chain_errno(&e), Some(libc::EROFS));
    assert!(!frozen.join("x").exists());

    // Missing destination.
    let e = btrfs::create_snapshot(&a, &fs.path("missing"), "x", true).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with(&format!("creating read-only snapshot of {}", a.display())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("opening {}", fs.path("missing").display())),
        "{msg}"
    );
    assert_eq!(chain_errno(&e), Some(libc::ENOENT));

    // Existing name.
    let e = btrfs::create_snapshot(&a, &fs.mnt, "frozen", true).unwrap_err();
    assert_eq!(chain_errno(&e), Some(libc::EEXIST), "{e:#}");

    // Bad name: refused before anything happens.
    let e = btrfs::create_snapshot(&a, &fs.mnt, "x/y", true).unwrap_err();
    assert!(format!("{e:#}").contains("invalid subvolume name"), "{e:#}");
    assert!(!fs.path("x").exists());

    // Not btrfs.
    let e = btrfs::set_readonly(Path::new("/proc"), true).unwrap_err();
    assert!(
        format!("{e:#}").contains("/proc is not on a btrfs filesystem"),
        "{e:#}"
    );
    let e = btrfs::default_subvolume(Path::new("/proc")).unwrap_err();
    assert!(
        format!("{e:#}").contains("not on a btrfs filesystem"),
        "{e:#}"
    );

    // Missing path.
    let e = btrfs::set_readonly(&fs.path("nope"), true).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&format!(
            "read-only flag of subvolume {}",
            fs.path("nope").display()
        )),
        "{msg}"
    );
    assert_eq!(
        e.chain()
            .find_map(|c| c.downcast_ref::<std::io::Error>())
            .map(|i| i.kind()),
        Some(ErrorKind::NotFound)
    );
}

// ---------------------------------------------------------------------------
// Listing many snapshots: one root-tree search against asking each one

/// `.snapshots` as a subvolume holding `n` numbered snapshots (`N/snapshot`,
/// the even ones read-only) and what a listing must not take for one: a
/// subvolume not called `snapshot`, a plain directory called `snapshot`, a
/// symlink, and a subvolume outside `.snapshots` created halfway, whose id
/// falls between theirs.
fn snapshot_store(fs: &LoopFs, n: u32) -> PathBuf {
    let store = fs.path(".snapshots");
    cli_create(&store);
    for i in 1..=n {
        let d = store.join(i.to_string());
        std::fs::create_dir(&d).unwrap();
        let snap = d.join("snapshot");
        cli_create(&snap);
        if i % 2 == 0 {
            run("btrfs", &["property", "set", "-ts", s(&snap), "ro", "true"]);
        }
        std::fs::write(
            d.join("info.xml"),
            format!("<?xml version=\"1.0\"?>\n<snapshot>\n  <type>single</type>\n  <num>{i}</num>\n  <date>2026-01-01 00:00:00</date>\n  <description>test {i}</description>\n</snapshot>\n"),
        )
        .unwrap();
        if i == n / 2 {
            cli_create(&fs.path("outside"));
        }
    }
    cli_create(&store.join("1/other"));
    std::fs::create_dir_all(store.join(format!("{}/snapshot", n + 1))).unwrap();
    std::os::unix::fs::symlink(store.join("2"), store.join((n + 2).to_string())).unwrap();
    store
}

#[test]
fn child_subvolumes_match_each_subvolume() {
    let Some(fs) = LoopFs::new("child_subvolumes_match_each_subvolume") else {
        return;
    };
    // 40 read-only flags take several 4 KB searches (8 root items each).
    let n = 40;
    let store = snapshot_store(&fs, n);
    let dir = std::fs::File::open(&store).unwrap();
    let children = btrfs::child_subvolumes(&dir.into())
        .unwrap()
        .expect("root may search the tree");
    let mut expected = Vec::new();
    for i in 1..=n {
        let d = store.join(i.to_string());
        let info = btrfs::subvolume_info(&d.join("snapshot")).unwrap();
        use std::os::unix::fs::MetadataExt;
        expected.push(btrfs::ChildSubvolume {
            id: info.id,
            dirid: std::fs::metadata(&d).unwrap().ino(),
            name: b"snapshot".to_vec(),
            readonly: i % 2 == 0,
        });
        assert_eq!(info.readonly, i % 2 == 0, "snapshot {i}");
    }
    let other = btrfs::subvolume_info(&store.join("1/other")).unwrap();
    expected.push(btrfs::ChildSubvolume {
        id: other.id,
        dirid: {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(store.join("1")).unwrap().ino()
        },
        name: b"other".to_vec(),
        readonly: false,
    });
    let mut got = children.clone();
    got.sort_by_key(|c| c.id);
    expected.sort_by_key(|c| c.id);
    assert_eq!(got, expected);
}

/// `Snapshots::list` of the filesystem at `root` as JSON.
fn snapshot_list_json(root: &Path) -> String {
    let snaps = tlp::snapshot::Snapshots::new(root, tlp::config::Backend::Btrfs, "root");
    serde_json::to_string(&snaps.list().unwrap()).unwrap()
}

const LIST_CHILD_ENV: &str = "TLP_TEST_LIST_SNAPSHOTS_OF";

/// The child half of the next test: run by it, without CAP_SYS_ADMIN, to
/// print whether the tree search was refused and the snapshot list.
#[test]
#[ignore = "run by snapshot_list_is_the_same_with_and_without_the_tree_search"]
fn list_snapshots_without_cap_sys_admin() {
    let root = PathBuf::from(std::env::var_os(LIST_CHILD_ENV).expect(LIST_CHILD_ENV));
    let dir = std::fs::File::open(root.join(".snapshots")).unwrap();
    let refused = matches!(btrfs::child_subvolumes(&dir.into()), Ok(None));
    println!("TLP-CHILD refused={refused}");
    println!("TLP-CHILD list={}", snapshot_list_json(&root));
}

/// `Snapshots::list` as root (one tree search) and without CAP_SYS_ADMIN
/// (the search is refused, each snapshot is asked) give the same list, with
/// the same ids and read-only flags.
#[test]
fn snapshot_list_is_the_same_with_and_without_the_tree_search() {
    let Some(fs) = LoopFs::new("snapshot_list_is_the_same_with_and_without_the_tree_search") else {
        return;
    };
    snapshot_store(&fs, 12);
    let as_root = snapshot_list_json(&fs.mnt);
    let listed: serde_json::Value = serde_json::from_str(&as_root).unwrap();
    let numbers: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<u64>>(), "{as_root}");
    let readonly: Vec<bool> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["readonly"].as_bool().unwrap())
        .collect();
    assert_eq!(
        readonly,
        (1..=12).map(|i| i % 2 == 0).collect::<Vec<bool>>(),
        "{as_root}"
    );

    // This test binary again, in a child that is root without CAP_SYS_ADMIN.
    let out = run(
        "setpriv",
        &[
            "--bounding-set",
            "-sys_admin",
            "--inh-caps",
            "-sys_admin",
            "env",
            &format!("{LIST_CHILD_ENV}={}", s(&fs.mnt)),
            s(&std::env::current_exe().unwrap()),
            "--ignored",
            "--exact",
            "list_snapshots_without_cap_sys_admin",
            "--nocapture",
            "--test-threads=1",
        ],
    );
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.split_once(&format!("TLP-CHILD {key}=")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("the child printed no {key}: {out}"))
            .to_string()
    };
    assert_eq!(field("refused"), "true", "the tree search was not refused");
    assert_eq!(field("list"), as_root);
}
