//! Package preflight against real RPMs built with `rpmbuild` at test time.
//!
//! Needs `rpmbuild` and a C compiler (`cc`). Without them the tests print
//! "skipped: …" and pass, unless `CI=true`, where they fail naming what is missing.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tlp::cmd::{self, CommandRunExt};
use tlp::error::{FailureKind, kind_of};
use tlp::package::{PackageFacts, inspect_for_arch};

const KVER: &str = "6.1.0-56-amd64";
const KVER2: &str = "6.1.0-57-amd64";

struct Fixtures {
    rpms: HashMap<&'static str, PathBuf>,
    /// Packages that need extra tools (gpg, rpmsign); absent when those are missing.
    optional: HashMap<&'static str, PathBuf>,
    dir: PathBuf,
}

fn modinfo(livepatch: bool, vermagic_kver: &str, name: &str) -> String {
    let lp = if livepatch { r"livepatch=Y\0" } else { "" };
    format!(
        r"license=GPL\0{lp}vermagic={vermagic_kver} SMP preempt mod_unload modversions \0name={name}"
    )
}

fn compile(dir: &Path, file: &str, modinfo: &str) -> PathBuf {
    let src = dir.join(format!("{file}.c"));
    let obj = dir.join(format!("{file}.o"));
    std::fs::write(
        &src,
        format!(
            "static const char m[] __attribute__((used, section(\".modinfo\"))) = \"{modinfo}\";\n\
             int {file}_init(void) {{ return 0; }}\n"
        ),
    )
    .unwrap();
    cmd::command("cc")
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .run_ok()
        .unwrap();
    obj
}

/// Build one binary package; returns the path of the .rpm.
fn rpmbuild(
    dir: &Path,
    name: &str,
    target: &str,
    extra: &str,
    install: &str,
    files: &str,
) -> PathBuf {
    let top = dir.join(format!("top-{name}"));
    std::fs::create_dir_all(&top).unwrap();
    let spec = top.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "%define debug_package %{{nil}}\n\
             %define __strip /bin/true\n\
             %define __os_install_post %{{nil}}\n\
             %define _build_id_links none\n\
             Name: {name}\n\
             Version: 1.0\n\
             Release: 3\n\
             Summary: Test livepatch {name}\n\
             License: GPL-2.0-only\n\
             AutoReqProv: no\n\
             {extra}\n\
             %description\n\
             Test package for preflight. Fixes CVE-2024-26581 and cve-2023-1234.\n\
             %install\n\
             {install}\n\
             %files\n\
             {files}\n\
             %changelog\n\
             * Mon Jan 01 2024 Tester <t@example.com> - 1.0-3\n\
             - fix CVE-2024-1086\n"
        ),
    )
    .unwrap();
    cmd::command("rpmbuild")
        .arg("-bb")
        .args(["--define", &format!("_topdir {}", top.display())])
        .args(["--target", target])
        .arg(&spec)
        .run_ok()
        .unwrap_or_else(|e| panic!("building {name}: {e:#}"));
    find_rpm(&top.join("RPMS"))
}

fn find_rpm(dir: &Path) -> PathBuf {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            return find_rpm(&p);
        }
        if p.extension().is_some_and(|x| x == "rpm") {
            return p;
        }
    }
    panic!("no rpm under {}", dir.display());
}

fn install_module(obj: &Path, dest: &str) -> String {
    format!(
        "install -D -m 0644 {} %{{buildroot}}{dest}\n",
        obj.display()
    )
}

fn lp(kver: &str, file: &str) -> String {
    format!("/lib/modules/{kver}/livepatch/{file}")
}

fn tool_missing(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required for tests/package_preflight.rs (CI=true)");
    }
    eprintln!("skipped: {what} is not available");
    true
}

fn fixtures() -> Option<&'static Fixtures> {
    static F: OnceLock<Option<Fixtures>> = OnceLock::new();
    F.get_or_init(build_fixtures).as_ref()
}

fn build_fixtures() -> Option<Fixtures> {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: these fixtures are x86_64 kernel modules");
        return None;
    }
    if cmd::command("rpmbuild").arg("--version").run_ok().is_err()
        && tool_missing("rpmbuild (rpm-build)")
    {
        return None;
    }
    if cmd::command("cc").arg("--version").run_ok().is_err() && tool_missing("cc (a C compiler)") {
        return None;
    }
    remove_stale_fixtures();
    let dir = tempfile::Builder::new()
        .prefix("package_preflight-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    let d = dir.as_path();
    let good = compile(d, "tlp_x", &modinfo(true, KVER, "tlp_x"));
    let good2 = compile(d, "tlp_y", &modinfo(true, KVER2, "tlp_y"));
    let nolp = compile(d, "tlp_nolp", &modinfo(false, KVER, "tlp_nolp"));
    let info = d.join("info.txt");
    std::fs::write(&info, "Livepatch for bsc#1 (CVE-2022-0185)\n").unwrap();
    let garbage = d.join("garbage.ko");
    std::fs::write(&garbage, "this is not ELF").unwrap();

    let good_install = install_module(&good, &lp(KVER, "tlp_x.ko"))
        + &format!(
            "install -D -m 0644 {} %{{buildroot}}/usr/share/livepatch/info/tlp_x.txt\n\
             mkdir -p %{{buildroot}}/usr/share/doc/tlp\n\
             echo hello > %{{buildroot}}/usr/share/doc/tlp/README\n\
             ln -s README %{{buildroot}}/usr/share/doc/tlp/LINK\n",
            info.display()
        );
    let good_files = format!(
        "%dir /lib/modules/{KVER}/livepatch\n{}\n/usr/share/livepatch/info/tlp_x.txt\n/usr/share/doc/tlp\n",
        lp(KVER, "tlp_x.ko")
    );
    let x86 = "x86_64";
    let ba = "BuildArch: x86_64";
    let mut rpms = HashMap::new();
    let mut add = |key: &'static str, target: &str, extra: &str, install: String, files: String| {
        rpms.insert(key, rpmbuild(d, key, target, extra, &install, &files));
    };
    add("good", x86, ba, good_install.clone(), good_files.clone());
    add(
        "good-xz",
        x86,
        "BuildArch: x86_64\n%define _binary_payload w6.xzdio",
        good_install.clone(),
        good_files.clone(),
    );
    add(
        "good-zst",
        x86,
        "BuildArch: x86_64\n%define _binary_payload w19.zstdio",
        good_install.clone(),
        good_files.clone(),
    );
    add(
        "good-gz",
        x86,
        "BuildArch: x86_64\n%define _binary_payload w9.gzdio",
        good_install.clone(),
        good_files.clone(),
    );
    add(
        "usrlib",
        x86,
        ba,
        install_module(
            &good,
            &format!("/usr/lib/modules/{KVER}/livepatch/tlp_x.ko"),
        ),
        format!("/usr/lib/modules/{KVER}/livepatch/tlp_x.ko"),
    );
    add(
        "nomodule",
        x86,
        ba,
        "mkdir -p %{buildroot}/usr/share/doc/tlp && echo hi > %{buildroot}/usr/share/doc/tlp/README".into(),
        "/usr/share/doc/tlp/README".into(),
    );
    add(
        "outside",
        x86,
        ba,
        install_module(&good, &lp(KVER, "tlp_x.ko"))
            + &install_module(&good, &format!("/lib/modules/{KVER}/extra/foo.ko")),
        format!("{}\n/lib/modules/{KVER}/extra/foo.ko", lp(KVER, "tlp_x.ko")),
    );
    add(
        "nolivepatch",
        x86,
        ba,
        install_module(&nolp, &lp(KVER, "tlp_nolp.ko")),
        lp(KVER, "tlp_nolp.ko"),
    );
    add(
        "vermagic",
        x86,
        ba,
        install_module(&good2, &lp(KVER, "tlp_y.ko")),
        lp(KVER, "tlp_y.ko"),
    );
    add(
        "twokvers",
        x86,
        ba,
        install_module(&good, &lp(KVER, "tlp_x.ko"))
            + &install_module(&good2, &lp(KVER2, "tlp_y.ko")),
        format!("{}\n{}", lp(KVER, "tlp_x.ko"), lp(KVER2, "tlp_y.ko")),
    );
    for (key, target) in [
        ("symlink-up", "../../../../etc/shadow"),
        ("symlink-abs", "/etc/shadow"),
    ] {
        add(
            key,
            x86,
            ba,
            install_module(&good, &lp(KVER, "tlp_x.ko"))
                + &format!(
                    "mkdir -p %{{buildroot}}/usr/share/doc/tlp\nln -s {target} %{{buildroot}}/usr/share/doc/tlp/evil\n"
                ),
            format!("{}\n/usr/share/doc/tlp/evil", lp(KVER, "tlp_x.ko")),
        );
    }
    add(
        "garbage-ko",
        x86,
        ba,
        install_module(&garbage, &lp(KVER, "tlp_g.ko")),
        lp(KVER, "tlp_g.ko"),
    );
    add(
        "compressed",
        x86,
        ba,
        install_module(&good, &lp(KVER, "tlp_x.ko.xz")),
        lp(KVER, "tlp_x.ko.xz"),
    );
    add(
        "docs-noarch",
        "noarch",
        "BuildArch: noarch",
        "mkdir -p %{buildroot}/usr/share/doc/tlp && echo hi > %{buildroot}/usr/share/doc/tlp/README".into(),
        "/usr/share/doc/tlp/README".into(),
    );
    add(
        "arm",
        "aarch64",
        "",
        install_module(&good, &lp(KVER, "tlp_x.ko")),
        lp(KVER, "tlp_x.ko"),
    );

    // A source package, from the "good" spec.
    let top = d.join("top-good");
    cmd::command("rpmbuild")
        .arg("-bs")
        .args(["--define", &format!("_topdir {}", top.display())])
        .arg(top.join("good.spec"))
        .run_ok()
        .unwrap();
    rpms.insert("source", find_rpm(&top.join("SRPMS")));

    let optional = signed_copy(d, &rpms["good"])
        .into_iter()
        .map(|p| ("signed", p))
        .collect();
    Some(Fixtures {
        rpms,
        optional,
        dir,
    })
}

/// Fixture dirs are kept for the test binary's lifetime (statics are never
/// dropped); remove those of earlier runs, leaving recent ones to parallel runs.
fn remove_stale_fixtures() {
    let Ok(dir) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for e in dir.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if stale
            && e.file_name()
                .to_string_lossy()
                .starts_with("package_preflight-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A copy of `rpm` signed with a throwaway key, if gpg and rpmsign work here.
fn signed_copy(dir: &Path, rpm: &Path) -> Option<PathBuf> {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).ok()?;
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).ok()?;
    let gpg = |args: &[&str]| {
        cmd::command("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .run_ok()
    };
    if let Err(e) = gpg(&[
        "--quick-gen-key",
        "tlp test <tlp@example.com>",
        "rsa2048",
        "sign",
        "never",
    ]) {
        eprintln!("skipped: signed package (gpg: {e:#})");
        return None;
    }
    let out = dir.join("signed.rpm");
    std::fs::copy(rpm, &out).ok()?;
    let gpg_bin = ["/usr/bin/gpg", "/usr/bin/gpg2"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let r = cmd::command("rpmsign")
        .env("GNUPGHOME", &home)
        .args(["--define", &format!("__gpg {gpg_bin}")])
        .args([
            "--define",
            "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback",
        ])
        .args(["--define", "_gpg_name tlp test <tlp@example.com>"])
        .args(["--define", &format!("_gpg_path {}", home.display())])
        .arg("--addsign")
        .arg(&out)
        .run_ok();
    if let Err(e) = r {
        eprintln!("skipped: signed package (rpmsign: {e:#})");
        return None;
    }
    Some(out)
}

fn inspect_path(path: &Path) -> anyhow::Result<PackageFacts> {
    inspect_for_arch(&File::open(path).unwrap(), "x86_64")
}

fn inspect_bytes(bytes: &[u8]) -> anyhow::Result<PackageFacts> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    inspect_for_arch(&f, "x86_64")
}

/// The refusal's kind and message; the message must be a single line.
fn refusal(r: anyhow::Result<PackageFacts>) -> (FailureKind, String) {
    let e = match r {
        Ok(f) => panic!("accepted: {f:?}"),
        Err(e) => e,
    };
    let msg = format!("{e:#}");
    assert!(!msg.contains('\n'), "message is not one line: {msg:?}");
    assert!(!msg.is_empty());
    (kind_of(&e), msg)
}

fn assert_refused(key: &str, kind: FailureKind, needles: &[&str]) {
    let Some(fx) = fixtures() else { return };
    let (k, msg) = refusal(inspect_path(&fx.rpms[key]));
    eprintln!("{key}: {} {msg}", k.name());
    assert_eq!(k, kind, "{key}: {msg}");
    for n in needles {
        assert!(msg.contains(n), "{key}: {msg:?} does not mention {n:?}");
    }
}

fn good_bytes() -> Option<Vec<u8>> {
    Some(std::fs::read(&fixtures()?.rpms["good"]).unwrap())
}

/// (header_start, payload_start) computed from the raw bytes.
fn offsets(b: &[u8]) -> (usize, usize) {
    let be = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let sig_len = 16 + 16 * be(96 + 8) + be(96 + 12);
    let header_start = 96 + sig_len + (8 - sig_len % 8) % 8;
    let payload_start = header_start + 16 + 16 * be(header_start + 8) + be(header_start + 12);
    (header_start, payload_start)
}

#[test]
fn good_package_facts() {
    let Some(fx) = fixtures() else { return };
    let path = &fx.rpms["good"];
    let bytes = std::fs::read(path).unwrap();
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(5)).unwrap();
    let facts = inspect_for_arch(&f, "x86_64").unwrap();
    assert_eq!(f.stream_position().unwrap(), 5, "the handle's offset moved");

    assert_eq!(facts.name, "good");
    assert_eq!(facts.version, "1.0");
    assert_eq!(facts.release, "3");
    assert_eq!(facts.arch, "x86_64");
    assert_eq!(facts.nevra, "good-1.0-3.x86_64");
    assert_eq!(facts.size, bytes.len() as u64);
    assert_eq!(facts.sha256, hex::encode(Sha256::digest(&bytes)));
    assert!(!facts.signed);
    assert_eq!(facts.kernel_release, KVER);
    assert_eq!(facts.modules.len(), 1);
    let m = &facts.modules[0];
    let obj = std::fs::read(fx.dir.join("tlp_x.o")).unwrap();
    assert_eq!(m.path, lp(KVER, "tlp_x.ko"));
    assert_eq!(m.name, "tlp_x");
    assert_eq!(m.kver, KVER);
    assert!(
        m.vermagic.starts_with("6.1.0-56-amd64 SMP preempt"),
        "{}",
        m.vermagic
    );
    assert!(m.livepatch);
    assert_eq!(m.sha256, hex::encode(Sha256::digest(&obj)));
    assert_eq!(m.size, obj.len() as u64);
    for p in [
        lp(KVER, "tlp_x.ko"),
        format!("/lib/modules/{KVER}/livepatch"),
        "/usr/share/livepatch/info/tlp_x.txt".into(),
        "/usr/share/doc/tlp/LINK".into(),
    ] {
        assert!(
            facts.files.contains(&p),
            "{p} missing from {:?}",
            facts.files
        );
    }
    assert_eq!(
        facts.cves,
        [
            "CVE-2022-0185",
            "CVE-2023-1234",
            "CVE-2024-1086",
            "CVE-2024-26581"
        ]
    );
    // Serialisable for JSON output.
    let json = serde_json::to_string(&facts).unwrap();
    assert!(
        json.contains("\"kernel_release\":\"6.1.0-56-amd64\""),
        "{json}"
    );
}

#[test]
fn all_payload_compressions_and_usr_lib_are_accepted() {
    let Some(fx) = fixtures() else { return };
    for key in ["good-xz", "good-zst", "good-gz", "usrlib"] {
        let facts = inspect_path(&fx.rpms[key]).unwrap_or_else(|e| panic!("{key}: {e:#}"));
        assert_eq!(facts.kernel_release, KVER, "{key}");
        assert_eq!(facts.modules[0].name, "tlp_x", "{key}");
    }
}

#[test]
fn signed_package_is_reported_signed() {
    let Some(fx) = fixtures() else { return };
    let Some(path) = fx.optional.get("signed") else {
        return;
    };
    let facts = inspect_path(path).unwrap();
    assert!(facts.signed);
}

#[test]
fn package_without_module_is_no_livepatch() {
    assert_refused("nomodule", FailureKind::NoLivepatch, &["no kernel module"]);
}

#[test]
fn noarch_doc_only_package_is_no_livepatch() {
    assert_refused(
        "docs-noarch",
        FailureKind::NoLivepatch,
        &["no kernel module"],
    );
}

#[test]
fn module_outside_livepatch_dir_is_unsafe() {
    assert_refused(
        "outside",
        FailureKind::UnsafePath,
        &["module /lib/modules/6.1.0-56-amd64/extra/foo.ko is outside the livepatch directory"],
    );
}

#[test]
fn module_without_livepatch_flag_is_no_livepatch() {
    assert_refused(
        "nolivepatch",
        FailureKind::NoLivepatch,
        &["tlp_nolp.ko", "livepatch=Y"],
    );
}

#[test]
fn vermagic_mismatch_is_wrong_kernel() {
    assert_refused(
        "vermagic",
        FailureKind::WrongKernel,
        &["tlp_y.ko", "vermagic", KVER2, KVER],
    );
}

#[test]
fn two_kernels_is_wrong_kernel() {
    assert_refused(
        "twokvers",
        FailureKind::WrongKernel,
        &["more than one kernel", KVER, KVER2],
    );
}

#[test]
fn escaping_symlinks_are_unsafe() {
    assert_refused(
        "symlink-up",
        FailureKind::UnsafePath,
        &["/usr/share/doc/tlp/evil", "'..'"],
    );
    assert_refused(
        "symlink-abs",
        FailureKind::UnsafePath,
        &["/usr/share/doc/tlp/evil", "absolute"],
    );
}

#[test]
fn non_elf_module_is_no_livepatch() {
    assert_refused(
        "garbage-ko",
        FailureKind::NoLivepatch,
        &["tlp_g.ko", "not an ELF object"],
    );
}

#[test]
fn compressed_module_is_refused_clearly() {
    assert_refused(
        "compressed",
        FailureKind::NoLivepatch,
        &["tlp_x.ko.xz", "compressed"],
    );
}

#[test]
fn foreign_arch_is_invalid() {
    assert_refused(
        "arm",
        FailureKind::InvalidPackage,
        &["built for aarch64", "x86_64"],
    );
}

#[test]
fn source_rpm_is_invalid() {
    assert_refused(
        "source",
        FailureKind::InvalidPackage,
        &["good-1.0-3.src is a source RPM"],
    );
}

#[test]
fn truncation_at_every_offset_is_invalid() {
    let Some(bytes) = good_bytes() else { return };
    let (header_start, payload_start) = offsets(&bytes);
    for len in 0..bytes.len() {
        let (k, msg) = refusal(inspect_bytes(&bytes[..len]));
        assert_eq!(k, FailureKind::InvalidPackage, "truncated at {len}: {msg}");
    }
    // And each region says what happened.
    for (len, needle) in [
        (0, "empty"),
        (50, "ends inside the lead"),
        (100, "ends inside the signature header"),
        (header_start + 30, "ends inside the header"),
        (payload_start, "truncated"),
        (payload_start + 10, "truncated"),
        (bytes.len() - 1, "truncated"),
    ] {
        let (_, msg) = refusal(inspect_bytes(&bytes[..len]));
        assert!(
            msg.contains(needle),
            "truncated at {len}: {msg:?} lacks {needle:?}"
        );
    }
}

#[test]
fn corrupt_header_index_is_invalid() {
    let Some(bytes) = good_bytes() else { return };
    let (header_start, payload_start) = offsets(&bytes);
    // Every byte of the main header's index entries, and a sample of its store.
    let index_end = header_start
        + 16
        + 16 * u32::from_be_bytes(
            bytes[header_start + 8..header_start + 12]
                .try_into()
                .unwrap(),
        ) as usize;
    for i in (header_start..index_end).chain((index_end..payload_start).step_by(13)) {
        let mut b = bytes.clone();
        b[i] ^= 0x41;
        let (k, msg) = refusal(inspect_bytes(&b));
        assert_eq!(k, FailureKind::InvalidPackage, "byte {i} flipped: {msg}");
    }
    let mut b = bytes.clone();
    b[header_start + 16 + 8] = 0xff; // offset of the first entry: negative
    let (_, msg) = refusal(inspect_bytes(&b));
    assert!(msg.contains("corrupt RPM"), "{msg}");
}

#[test]
fn corrupt_lead_and_signature_header_never_pass_silently() {
    let Some(bytes) = good_bytes() else { return };
    let (header_start, _) = offsets(&bytes);
    // Some lead and signature bytes are unchecked padding or legacy digests:
    // flipping them may be accepted, but must never panic or yield another kind.
    for i in 0..header_start {
        let mut b = bytes.clone();
        b[i] ^= 0x41;
        if let Err(e) = inspect_bytes(&b) {
            assert_eq!(kind_of(&e), FailureKind::InvalidPackage, "byte {i}: {e:#}");
            assert!(!format!("{e:#}").contains('\n'));
        }
    }
}

#[test]
fn corrupt_payload_is_invalid() {
    let Some(bytes) = good_bytes() else { return };
    let (_, payload_start) = offsets(&bytes);
    for i in (payload_start..bytes.len()).step_by(5) {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        let (k, msg) = refusal(inspect_bytes(&b));
        assert_eq!(
            k,
            FailureKind::InvalidPackage,
            "payload byte {i} flipped: {msg}"
        );
    }
    let mut b = bytes.clone();
    b.extend_from_slice(b"appended");
    let (k, msg) = refusal(inspect_bytes(&b));
    assert_eq!(k, FailureKind::InvalidPackage);
    assert!(msg.contains("after the payload"), "{msg}");
}

#[test]
fn non_rpm_and_empty_files_are_invalid() {
    let (k, msg) = refusal(inspect_bytes(b""));
    assert_eq!(k, FailureKind::InvalidPackage);
    assert!(msg.contains("empty"), "{msg}");
    let (k, msg) = refusal(inspect_bytes(b"#!/bin/sh\necho this is not an rpm\n"));
    assert_eq!(k, FailureKind::InvalidPackage);
    assert!(msg.contains("not an RPM"), "{msg}");
    let (k, msg) = refusal(inspect_bytes(&[0u8; 10_000]));
    assert_eq!(k, FailureKind::InvalidPackage);
    assert!(msg.contains("not an RPM"), "{msg}");
}
