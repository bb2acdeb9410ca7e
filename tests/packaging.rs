//! Packaging tier: the RPM of the tool built by `rpmbuild -ba` from the
//! project's own tarball with no network; its file list, permissions and
//! scriptlets (the initrd rule, on a real snapshot image); man pages and
//! completions; the documented contracts (docs/contracts.md,
//! docs/status-schema.json) checked against the code and real output.
//!
//! The RPM is built once per run with the cargo profile of `TLP_RPM_PROFILE`
//! (default `dev`: the optimised build takes minutes more and tests nothing
//! else; `TLP_RPM_PROFILE=release` builds exactly what ships).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const GEN: &str = env!("CARGO_BIN_EXE_tlp-gen-docs");
const NAME: &str = "transactional-livepatch";

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", cmd])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `what` can run here: missing tools (and root, if asked) fail the
/// test under `CI=true` and print a skip line otherwise.
fn need(what: &str, tools: &[&str], root: bool) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if root && !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    missing.extend(tools.iter().filter(|t| !have(t)).map(|t| t.to_string()));
    if missing.is_empty() {
        return true;
    }
    skip_unless_ci(&format!(
        "{what}: prerequisites missing: {} (run tests/support/deps.sh as root)",
        missing.join(", ")
    ))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn out_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------
// Contracts: exit codes, configuration keys, status schema.

/// The block of docs/contracts.md between the exit-code markers.
fn contracts_exit_table() -> String {
    let doc = read("docs/contracts.md");
    let start = doc
        .find("<!-- exit-codes:begin")
        .expect("exit-codes:begin marker");
    let body = &doc[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("<!-- exit-codes:end -->").expect("end marker")].to_string()
}

#[test]
fn exit_code_table_matches_the_code() {
    let generated = run_ok(Command::new(GEN).arg("exit-codes"));
    assert_eq!(
        contracts_exit_table(),
        generated,
        "docs/contracts.md's exit-code table is stale: replace it with the output of `tlp-gen-docs exit-codes`"
    );
    // And independently of the generator: the rows are FailureKind::ALL.
    let rows: Vec<(i32, String)> = contracts_exit_table()
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<i32>().ok()?;
            Some((code, cells.get(2)?.to_string()))
        })
        .filter(|(c, _)| *c != 0)
        .collect();
    let expected: Vec<(i32, String)> = tlp::error::FailureKind::ALL
        .iter()
        .map(|k| (k.exit_code(), k.name().to_string()))
        .collect();
    assert_eq!(rows, expected);
}

/// Every `section.key` of the default configuration, with its default as
/// JSON (which spells these simple values as TOML does).
fn config_defaults() -> BTreeMap<String, String> {
    let table: toml::Table =
        toml::from_str(&toml::to_string(&tlp::config::Config::default()).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for (section, v) in table {
        let toml::Value::Table(keys) = v else {
            panic!("top-level key {section} is not a table")
        };
        for (k, v) in keys {
            let json = serde_json::to_string(&serde_json::to_value(&v).unwrap()).unwrap();
            out.insert(format!("{section}.{k}"), json);
        }
    }
    out
}

fn uncomment_config(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn config_keys_are_documented() {
    let defaults = config_defaults();
    assert!(defaults.len() >= 8, "{defaults:?}");
    let contracts = read("docs/contracts.md");
    // roff: \(dq is ", \- is -.
    let page = read("docs/man/transactional-livepatch.conf.5")
        .replace("\\(dq", "\"")
        .replace("\\-", "-");
    let etc = read("packaging/etc-config.toml");
    for (key, default) in &defaults {
        let row = format!("| `{key}` | `{default}` |");
        assert!(
            contracts.contains(&row),
            "docs/contracts.md lacks the row {row}"
        );
        let (section, name) = key.split_once('.').unwrap();
        let entry = format!(".BR {name} \" = \" {default}");
        assert!(
            page.contains(&format!(".SS \"[{section}]\"")) && page.contains(&entry),
            "transactional-livepatch.conf(5) lacks [{section}] {entry}"
        );
        assert!(
            etc.contains(&format!("#{name} = {default}")),
            "packaging/etc-config.toml lacks #{name} = {default}"
        );
    }
    // The shipped /etc file, uncommented, is exactly the defaults; the vendor
    // file is too (the documented defaults are what a system gets).
    let parse =
        |text: &str| tlp::config::Config::from_table(toml::from_str(text).unwrap()).unwrap();
    assert_eq!(
        parse(&uncomment_config(&etc)),
        tlp::config::Config::default()
    );
    assert_eq!(
        parse(""),
        tlp::config::Config::default(),
        "an empty file is the defaults"
    );
    assert_eq!(
        parse(&read("config/config.toml")),
        tlp::config::Config::default(),
        "config/config.toml differs from the documented defaults"
    );
}

fn schema() -> serde_json::Value {
    serde_json::from_str(&read("docs/status-schema.json")).expect("status-schema.json is JSON")
}

/// Validate `instance` against `schema`, or against one of its `$defs`.
fn schema_errors(instance: &serde_json::Value, def: Option<&str>) -> Vec<String> {
    let mut s = schema();
    if let Some(def) = def {
        s = serde_json::json!({
            "$schema": s["$schema"],
            "$defs": s["$defs"],
            "$ref": format!("#/$defs/{def}"),
        });
    }
    let v = jsonschema::validator_for(&s).expect("the schema compiles");
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

/// A status with every optional field set and every list non-empty.
/// A struct literal on purpose: a new field in the code does not compile here
/// until the schema (and this test) know it.
fn full_status() -> tlp::status::Status {
    use tlp::journal::{
        Entry, Kind, Outcome, PackageRecord, Step, UpdatePackage, UpdateRecord, UpdateResult,
    };
    use tlp::status::*;
    let entry = |outcome, kind| Entry {
        id: "20261123T110000-1".into(),
        kind,
        started: "2026-11-23T11:00:00Z".into(),
        finished: Some("2026-11-23T11:00:09Z".into()),
        base: 1,
        target: Some(2),
        package: Some(PackageRecord {
            file: "/tmp/kernel-livepatch-x.rpm".into(),
            nevra: "kernel-livepatch-x-1-1.x86_64".into(),
            sha256: sha('a'),
            kernel_release: "6.1.0-1-amd64".into(),
            modules: vec!["livepatch_x".into()],
        }),
        live: true,
        step: Step::DefaultSet,
        outcome,
        recovered: true,
        error: Some("dracut failed".into()),
        error_kind: Some(tlp::error::FailureKind::InitrdFailed),
        update: Some(UpdateRecord {
            automatic: true,
            policy: "apply".into(),
            result: UpdateResult::Applied,
            packages: vec![UpdatePackage {
                name: "kernel-livepatch-6_1_0-1-amd64".into(),
                installed: Some("1-1".into()),
                available: Some("2-1".into()),
                cves: vec!["CVE-2026-0001".into()],
            }],
            transactions: vec!["20261123T110000-0".into()],
        }),
    };
    Status {
        schema_version: tlp::status::SCHEMA_VERSION,
        running_kernel: "6.1.0-1-amd64".into(),
        livepatch_supported: true,
        booted_snapshot: Some(1),
        default_snapshot: 2,
        reboot_pending: true,
        snapshots: vec![SnapshotStatus {
            snapshot: tlp::snapshot::Snapshot {
                number: 2,
                path: "/.snapshots/2/snapshot".into(),
                id: 260,
                readonly: true,
                description: "livepatch".into(),
                date: "2026-11-23 11:00:00".into(),
                in_progress: false,
            },
            default: true,
            booted: false,
        }],
        default_livepatches: vec![KernelPatches {
            kernel_release: "6.1.0-1-amd64".into(),
            livepatches: vec![BootPatch {
                name: "livepatch_x".into(),
                path: "/lib/modules/6.1.0-1-amd64/livepatch/livepatch_x.ko".into(),
                package: Some("kernel-livepatch-x-1-1.x86_64".into()),
                sha256: Some(sha('b')),
                cves: vec!["CVE-2026-0002".into()],
            }],
        }],
        live_livepatches: vec![LiveStatus {
            name: "livepatch_x".into(),
            enabled: true,
            transition: false,
            replace: Some(true),
            module_sha256: Some(sha('c')),
        }],
        drift: Drift {
            in_sync: false,
            only_live: vec!["livepatch_y".into()],
            only_boot: vec!["livepatch_x".into()],
        },
        incomplete_transactions: vec![entry(Outcome::Open, Kind::Apply)],
        last_transactions: vec![
            entry(Outcome::Aborted, Kind::Rollback),
            entry(Outcome::Committed, Kind::Update),
        ],
    }
}

#[test]
fn status_schema_covers_every_field() {
    let s = schema();
    jsonschema::meta::validate(&s).expect("status-schema.json is a valid JSON Schema");
    assert_eq!(
        s["properties"]["schema_version"]["const"],
        tlp::status::SCHEMA_VERSION
    );
    let full = serde_json::to_value(full_status()).unwrap();
    let errors = schema_errors(&full, None);
    assert!(errors.is_empty(), "{errors:#?}");
    // Every field of the output is in the schema and vice versa (top level).
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&full), keys(&s["properties"]));
    // The error kinds of the schema are the code's.
    let kinds: Vec<String> =
        s["$defs"]["transaction"]["properties"]["error_kind"]["oneOf"][1]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    let code: Vec<String> = tlp::error::FailureKind::ALL
        .iter()
        .map(|k| {
            serde_json::to_value(k)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, code);
    // And it is strict: an unknown field or a wrong type is an error.
    let mut bad = full.clone();
    bad["surprise"] = serde_json::json!(1);
    assert!(!schema_errors(&bad, None).is_empty());
    let mut bad = full;
    bad["live_livepatches"][0]["enabled"] = serde_json::json!("yes");
    assert!(!schema_errors(&bad, None).is_empty());
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn status_json_of_a_real_system_matches_the_schema() {
    if !prerequisites() {
        return;
    }
    let sys = TestSystem::new();
    let check = |what: &str| {
        let st = sys.status_json();
        let errors = schema_errors(&st, None);
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{st:#}");
        st
    };
    check("fresh system");
    let pkg = rpm("tlp-livepatch-simple");
    sys.tlp_ok(&["apply", "--boot-only", pkg.to_str().unwrap()]);
    let st = check("after apply");
    assert_eq!(st["last_transactions"].as_array().unwrap().len(), 1);
    assert!(!st["default_livepatches"].as_array().unwrap().is_empty());

    #[cfg(feature = "failpoints")]
    {
        // An interrupted transaction: killed after its snapshot was made.
        let pkg2 = rpm("tlp-livepatch-stack-b");
        let out = run(sys
            .tlp_cmd(&["apply", "--boot-only", pkg2.to_str().unwrap()])
            .env("FAILPOINTS", "apply::after-snapshot=return(kill)"));
        assert!(!out.status.success());
        let st = check("with an interrupted transaction");
        assert_eq!(st["incomplete_transactions"].as_array().unwrap().len(), 1);
        assert!(
            st["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["in_progress"] == true)
        );
        sys.tlp_ok(&["recover"]);
        check("after recover");
    }
    // A failed transaction records its kind.
    let again = sys.tlp(&["apply", "--boot-only", pkg.to_str().unwrap()]);
    assert_eq!(code(&again), Some(23), "{}", stderr(&again));

    // The journal files have the schema's transaction shape, and the
    // permissions docs/contracts.md promises.
    let state = sys.mnt.join("var/lib/transactional-livepatch");
    let journal = state.join("transactions");
    assert_eq!(mode_of(&state), 0o700);
    assert_eq!(mode_of(&journal), 0o700);
    assert_eq!(mode_of(&state.join("lock")), 0o600);
    let mut n = 0;
    for e in std::fs::read_dir(&journal).unwrap().flatten() {
        n += 1;
        assert_eq!(mode_of(&e.path()), 0o600, "{}", e.path().display());
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        let errors = schema_errors(&v, Some("transaction"));
        assert!(errors.is_empty(), "{}: {errors:#?}", e.path().display());
    }
    assert!(n >= 1);
    let kver = &fixtures().kver;
    let stack = sys
        .snapshot_path(2)
        .join(format!("etc/transactional-livepatch/stack/{kver}"));
    assert_eq!(mode_of(&stack), 0o644);
    assert_eq!(mode_of(stack.parent().unwrap()), 0o755);
    assert_eq!(mode_of(&sys.mnt.join(".snapshots/2/info.xml")), 0o644);
}

// ---------------------------------------------------------------------------
// Man pages and completions, generated from the clap definitions.

/// The page names every visible (sub)command should have.
fn expected_pages() -> Vec<String> {
    use clap::CommandFactory;
    let cmd = tlp::cli::Cli::command();
    let mut pages = vec![format!("{NAME}.8")];
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(format!("{NAME}-{}.8", s.get_name()));
    }
    pages.push(format!("{NAME}.conf.5"));
    for x in dbus_xml() {
        pages.push(format!("{}.5", x.file_stem().unwrap().to_string_lossy()));
    }
    pages.sort();
    pages
}

/// The D-Bus interface XML files (dbus/*.xml).
fn dbus_xml() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("dbus"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Render a page with man-db; no groff warning allowed.
fn render_man(page: &Path) -> String {
    let out = run(Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env("PAGER", "cat"));
    let err = stderr(&out);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "man -l {}: {err}",
        page.display()
    );
    let text = out_text(&out);
    assert!(text.contains("NAME"), "{}: {text}", page.display());
    text
}

#[test]
fn man_pages_render() {
    if !need("man pages", &["man", "groff"], false) {
        return;
    }
    let dir = tmp_dir("man-pages");
    run_ok(Command::new(GEN).arg("man").arg(&dir));
    for x in dbus_xml() {
        run_ok(Command::new(GEN).arg("dbus-man").arg(&x).arg(&dir));
    }
    for f in std::fs::read_dir(repo().join("docs/man"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    for p in expected_pages() {
        assert!(found.contains(&p), "no page {p} in {found:?}");
    }
    for p in &found {
        render_man(&dir.join(p));
    }
    let main = render_man(&dir.join(format!("{NAME}.8")));
    for k in tlp::error::FailureKind::ALL {
        let code = format!("{} ", k.exit_code());
        assert!(
            main.lines()
                .map(str::trim_start)
                .any(|l| l.starts_with(&code) && l.contains(k.name())),
            "EXIT STATUS lacks {k:?}:\n{main}"
        );
    }
    // The D-Bus page documents every member of the XML.
    for x in dbus_xml() {
        let page = render_man(&dir.join(format!("{}.5", x.file_stem().unwrap().to_string_lossy())));
        let xml = read_path(&x);
        for tag in ["<method name=\"", "<property name=\"", "<signal name=\""] {
            for part in xml.split(tag).skip(1) {
                let name = &part[..part.find('"').unwrap()];
                assert!(page.contains(name), "{}: {name} missing", x.display());
            }
        }
    }
    let apply = render_man(&dir.join(format!("{NAME}-apply.8")));
    assert!(apply.contains("--boot-only"), "{apply}");
    assert!(!apply.contains("kernel-root"), "hidden option documented");
}

#[test]
fn completions_load_in_bash() {
    if !need("completions", &["bash"], false) {
        return;
    }
    let dir = tmp_dir("completions");
    run_ok(Command::new(GEN).arg("completions").arg(&dir));
    let bash = dir.join(NAME);
    // Load it as bash-completion would, then complete as bash would: the
    // function `complete -p` names, with COMP_* set and the usual arguments
    // (command, word being completed, previous word).
    let script = r#"
        set -e
        source "$1"
        spec=$(complete -p transactional-livepatch)
        echo "$spec"
        fn=${spec##*-F }
        fn=${fn%% *}
        try() {
            COMP_WORDS=("$@")
            COMP_CWORD=$(($# - 1))
            COMP_LINE="$*"
            COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            "$fn" transactional-livepatch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
            echo "${COMP_WORDS[*]}: ${COMPREPLY[*]}"
        }
        try transactional-livepatch ap
        try transactional-livepatch apply --bo
        try transactional-livepatch rollback --
    "#;
    let out = run_ok(Command::new("bash").args(["-c", script, "bash"]).arg(&bash));
    assert!(out.contains("complete -") && out.contains(" -F "), "{out}");
    assert!(out.contains("transactional-livepatch ap: apply\n"), "{out}");
    assert!(
        out.contains("transactional-livepatch apply --bo: --boot-only\n"),
        "{out}"
    );
    let rollback = out
        .lines()
        .find(|l| l.starts_with("transactional-livepatch rollback --:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        rollback.contains("--boot-only")
            && rollback.contains("--json")
            && rollback.contains("--root"),
        "{out}"
    );
    let zsh = dir.join(format!("_{NAME}"));
    assert!(read_path(&zsh).starts_with("#compdef transactional-livepatch"));
    if have("zsh") {
        run_ok(Command::new("zsh").arg("-n").arg(&zsh));
    } else {
        eprintln!("note: zsh is not installed; the zsh completion was only generated");
    }
}

fn read_path(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// The RPM.

struct Built {
    topdir: PathBuf,
    tarball: PathBuf,
    rpm: PathBuf,
    cockpit: PathBuf,
    srpm: PathBuf,
    /// Shared by every rpmbuild of this run: later builds only relink.
    cargo_target: PathBuf,
}

fn rpm_prerequisites() -> bool {
    need(
        "RPM packaging",
        &["rpmbuild", "rpm", "git", "zstd", "unshare", "make", "tar"],
        true,
    )
}

fn cargo_profile() -> String {
    std::env::var("TLP_RPM_PROFILE").unwrap_or_else(|_| "dev".into())
}

/// PATH with the directory of the cargo running these tests first.
fn path_with_cargo() -> String {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut path = cargo
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    path.push(':');
    path.push_str(&std::env::var("PATH").unwrap_or_default());
    path
}

/// `rpmbuild` with no network at all (a new, empty network namespace).
/// `defines`: more `--define`s (a variant's own SOURCES and RPMS).
fn rpmbuild(
    topdir: &Path,
    cargo_target: &Path,
    args: &[&str],
    spec: &Path,
    defines: &[String],
) -> Output {
    let start = std::time::Instant::now();
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--", "rpmbuild"]).args(args);
    for d in defines {
        cmd.arg("--define").arg(d);
    }
    let out = run(cmd
        // BuildRequires name Debian packages that rpm's database does not know.
        .arg("--nodeps")
        .arg("--define")
        .arg(format!("_topdir {}", topdir.display()))
        .arg("--define")
        .arg(format!("tlp_cargo_profile {}", cargo_profile()))
        .arg(spec)
        .env("PATH", path_with_cargo())
        .env("CARGO_TARGET_DIR", cargo_target)
        .env_remove("CARGO_HOME")
        .env_remove("RUSTFLAGS")
        .env("SOURCE_DATE_EPOCH", "1763900000"));
    eprintln!(
        "rpmbuild {} ({} profile): {:.0} s",
        args.join(" "),
        cargo_profile(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "rpmbuild {args:?} failed:\n{}\n{}",
        tail(&stderr(&out), 60),
        tail(&out_text(&out), 30)
    );
    out
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn find_rpm(dir: &Path, prefix: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(prefix)
                && n[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
                && n.ends_with(".rpm")
        })
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found.pop().unwrap()
}

/// `make dist`, then `rpmbuild -ba` of the spec from that tarball, offline.
fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("packaging-rpm");
        let topdir = base.join("rpmbuild");
        let _ = std::fs::remove_dir_all(&topdir);
        for d in ["SOURCES", "SPECS", "BUILD", "RPMS", "SRPMS"] {
            std::fs::create_dir_all(topdir.join(d)).unwrap();
        }
        let cargo_target = base.join("cargo-target");
        let start = std::time::Instant::now();
        let made = run_ok(
            Command::new("make")
                .args(["-s", "-C"])
                .arg(repo())
                .arg("dist"),
        );
        eprintln!("make dist: {:.0} s", start.elapsed().as_secs_f64());
        let made = repo().join(made.lines().last().unwrap().trim());
        let tarball = topdir.join("SOURCES").join(made.file_name().unwrap());
        std::fs::copy(&made, &tarball).unwrap();
        let spec = topdir.join(format!("SPECS/{NAME}.spec"));
        std::fs::copy(repo().join(format!("{NAME}.spec")), &spec).unwrap();
        rpmbuild(&topdir, &cargo_target, &["-ba"], &spec, &[]);
        let arch = run_ok(Command::new("rpm").args(["--eval", "%{_arch}"]));
        Built {
            rpm: find_rpm(&topdir.join("RPMS").join(arch.trim()), &format!("{NAME}-")),
            cockpit: find_rpm(&topdir.join("RPMS/noarch"), &format!("{NAME}-cockpit-")),
            srpm: find_rpm(&topdir.join("SRPMS"), &format!("{NAME}-")),
            topdir,
            tarball,
            cargo_target,
        }
    })
}

fn rpm_q(args: &[&str], pkg: &Path) -> String {
    run_ok(Command::new("rpm").args(args).arg(pkg))
}

#[test]
fn rpm_builds_offline_from_the_tarball_and_ships_the_contracted_files() {
    if !rpm_prerequisites() {
        return;
    }
    let b = built();
    // The source package is the tarball plus the spec; the tarball carries
    // the vendored crates and the source replacement.
    let srpm_files = rpm_q(&["-qlp"], &b.srpm);
    assert!(
        srpm_files.contains(&format!("{NAME}-0.1.0.tar.zst")) && srpm_files.contains(".spec"),
        "{srpm_files}"
    );
    let listing = run_ok(Command::new("tar").arg("--zstd").arg("-tf").arg(&b.tarball));
    assert!(
        listing.contains("/.cargo/config.toml\n"),
        "no source replacement"
    );
    assert!(listing.contains("/vendor/serde-"), "crates not vendored");
    assert!(listing.contains(&format!("/{NAME}.spec\n")));

    let version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap();
    let spec_version = read(&format!("{NAME}.spec"))
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .unwrap();
    assert_eq!(
        spec_version, version,
        "spec Version differs from Cargo.toml"
    );

    let files = rpm_q(&["-qlp"], &b.rpm);
    eprintln!("rpm -qlp {}:\n{files}", b.rpm.display());
    // path -> (mode, is config, is ghost)
    let dump = rpm_q(&["-qp", "--dump"], &b.rpm);
    let mut modes: BTreeMap<String, u32> = BTreeMap::new();
    for l in dump.lines() {
        // path size mtime digest mode owner group isconfig isdoc rdev symlink
        let w: Vec<&str> = l.split_whitespace().collect();
        assert!(w.len() >= 10, "{l}");
        assert_eq!((w[5], w[6]), ("root", "root"), "{l}");
        modes.insert(w[0].to_string(), u32::from_str_radix(w[4], 8).unwrap());
    }
    let expect = |path: &str, mode: u32| {
        let m = modes
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{files}"));
        assert_eq!(*m, mode, "{path}: mode {m:o}, expected {mode:o}");
    };
    const REG: u32 = 0o100000;
    const DIR: u32 = 0o040000;
    expect("/usr/sbin/transactional-livepatch", REG | 0o755);
    expect("/usr/lib/transactional-livepatch/config.toml", REG | 0o644);
    expect(
        "/usr/lib/transactional-livepatch/dracut-module-posttrans",
        REG | 0o755,
    );
    expect("/etc/transactional-livepatch/config.toml", REG | 0o644);
    expect("/etc/transactional-livepatch/config.d", DIR | 0o755);
    expect("/etc/transactional-livepatch/stack", DIR | 0o755);
    let dracut = "/usr/lib/dracut/modules.d/90transactional-livepatch";
    expect(dracut, DIR | 0o755);
    for f in std::fs::read_dir(repo().join("dracut-module/90transactional-livepatch"))
        .unwrap()
        .flatten()
    {
        expect(
            &format!("{dracut}/{}", f.file_name().to_string_lossy()),
            REG | 0o755,
        );
    }
    for f in std::fs::read_dir(repo().join("systemd")).unwrap().flatten() {
        expect(
            &format!(
                "/usr/lib/systemd/system/{}",
                f.file_name().to_string_lossy()
            ),
            REG | 0o644,
        );
    }
    expect(
        "/usr/lib/systemd/system-preset/90-transactional-livepatch.preset",
        REG | 0o644,
    );
    expect(
        "/usr/lib/tmpfiles.d/transactional-livepatch.conf",
        REG | 0o644,
    );
    expect("/var/lib/transactional-livepatch", DIR | 0o700);
    for page in expected_pages() {
        let section = page.rsplit('.').next().unwrap();
        let prefix = format!("/usr/share/man/man{section}/{page}");
        let m = modes
            .iter()
            .find(|(p, _)| p.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no man page {prefix}* in:\n{files}"));
        assert_eq!(*m.1, REG | 0o644, "{}", m.0);
    }
    expect(
        "/usr/share/bash-completion/completions/transactional-livepatch",
        REG | 0o644,
    );
    expect(
        "/usr/share/zsh/site-functions/_transactional-livepatch",
        REG | 0o644,
    );
    assert!(
        files.lines().any(|l| l.ends_with("/COPYING")),
        "no license file"
    );
    for doc in ["contracts.md", "status-schema.json", "packaging.md"] {
        assert!(
            files.lines().any(|l| l.ends_with(&format!("/{doc}"))),
            "{doc} not shipped"
        );
    }
    if repo().join("dbus").is_dir() {
        for f in std::fs::read_dir(repo().join("dbus")).unwrap().flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            let dir = match n.rsplit('.').next().unwrap() {
                "conf" => "/usr/share/dbus-1/system.d",
                "service" => "/usr/share/dbus-1/system-services",
                "policy" => "/usr/share/polkit-1/actions",
                "xml" => "/usr/share/dbus-1/interfaces",
                _ => continue,
            };
            expect(&format!("{dir}/{n}"), REG | 0o644);
        }
    }
    // Nothing outside the expected trees.
    for path in files.lines() {
        assert!(
            [
                "/usr/sbin/",
                "/usr/lib/",
                "/usr/share/",
                "/etc/transactional-livepatch",
                "/var/lib/transactional-livepatch"
            ]
            .iter()
            .any(|p| path.starts_with(p)),
            "unexpected path {path}"
        );
    }

    // Only the /etc file is configuration, and it is noreplace.
    let config = rpm_q(&["-qcp"], &b.rpm);
    assert_eq!(
        config.trim(),
        "/etc/transactional-livepatch/config.toml",
        "{config}"
    );
    let flags = rpm_q(
        &["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]"],
        &b.rpm,
    );
    assert!(
        flags.lines().any(
            |l| l.starts_with("cn ") && l.ends_with("/etc/transactional-livepatch/config.toml")
        ),
        "{flags}"
    );
    assert!(
        flags
            .lines()
            .any(|l| l.starts_with('g') && l.ends_with("/var/lib/transactional-livepatch")),
        "/var/lib/transactional-livepatch is not %ghost: {flags}"
    );

    // Scriptlets: the initrd rule in %posttrans, units handled, the stamp
    // removed on erase; the fallbacks of the SUSE macros expanded.
    let scripts = rpm_q(&["-qp", "--scripts"], &b.rpm);
    assert!(
        scripts.contains("posttrans scriptlet")
            && scripts.contains("/usr/lib/transactional-livepatch/dracut-module-posttrans"),
        "{scripts}"
    );
    assert!(
        scripts.contains("transactional-livepatch-boot.service")
            && scripts.contains(".transactional-livepatch-dracut-module.sha256"),
        "{scripts}"
    );
    assert!(
        !scripts.contains("%service_") && !scripts.contains("%{"),
        "{scripts}"
    );
    // Each scriptlet is valid sh.
    let mut bodies: Vec<(String, String)> = Vec::new();
    for l in scripts.lines() {
        if let Some(head) = l.strip_suffix(" scriptlet (using /bin/sh):") {
            bodies.push((head.to_string(), String::new()));
        } else if let Some((_, body)) = bodies.last_mut() {
            body.push_str(l);
            body.push('\n');
        }
    }
    let heads: Vec<&str> = bodies.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(
        heads,
        [
            "preinstall",
            "postinstall",
            "preuninstall",
            "postuninstall",
            "posttrans"
        ],
        "{scripts}"
    );
    for (head, body) in &bodies {
        let out = run(Command::new("sh").args(["-n", "-c", body]));
        assert!(out.status.success(), "{head}: {}\n{body}", stderr(&out));
    }

    // The binary in the package runs.
    let x = tmp_dir("packaging-rpm-extract");
    run_ok(Command::new("sh").current_dir(&x).args([
        "-c",
        "rpm2cpio \"$1\" | cpio -idm --quiet",
        "sh",
        b.rpm.to_str().unwrap(),
    ]));
    let v = run_ok(Command::new(x.join("usr/sbin/transactional-livepatch")).arg("--version"));
    assert!(v.contains(&version), "{v}");
    // The packaged man pages render, the packaged completion loads.
    if have("man") {
        let main = x.join("usr/share/man/man8");
        for e in std::fs::read_dir(&main).unwrap().flatten() {
            render_man(&e.path());
        }
    }
    run_ok(
        Command::new("bash").args([
            "-c",
            "source \"$1\" && complete -p transactional-livepatch",
            "bash",
            x.join("usr/share/bash-completion/completions/transactional-livepatch")
                .to_str()
                .unwrap(),
        ]),
    );

    // The Cockpit page is its own noarch package.
    let cockpit = rpm_q(&["-qlp"], &b.cockpit);
    assert!(
        cockpit.contains("/usr/share/cockpit/transactional-livepatch/manifest.json"),
        "{cockpit}"
    );
    let req = rpm_q(&["-qp", "--requires"], &b.cockpit);
    assert!(req.contains(&format!("{NAME} = 0.1.0")), "{req}");
    assert!(
        !files.contains("/usr/share/cockpit/"),
        "Cockpit files in the main package"
    );
    let _ = &b.topdir;
}

// ---------------------------------------------------------------------------
// The initrd rule: installing or upgrading the package inside a snapshot
// regenerates the initrds only when the dracut module changed.

/// A copy of the spec with another Release, and optionally a tarball whose
/// dracut module differs; built with -bb (reusing the compiled crates).
fn variant(release: u32, change_module: bool) -> PathBuf {
    let b = built();
    let top = b
        .topdir
        .parent()
        .unwrap()
        .join(format!("variant-{release}"));
    let _ = std::fs::remove_dir_all(&top);
    for d in ["SOURCES", "SPECS"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    let tarball = top.join("SOURCES").join(b.tarball.file_name().unwrap());
    if change_module {
        let x = top.join("x");
        std::fs::create_dir_all(&x).unwrap();
        run_ok(
            Command::new("tar")
                .arg("--zstd")
                .arg("-xf")
                .arg(&b.tarball)
                .arg("-C")
                .arg(&x),
        );
        let src = std::fs::read_dir(&x)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        let hook = src.join("dracut-module/90transactional-livepatch/tlp-load-livepatches.sh");
        let mut text = read_path(&hook);
        text.push_str(&format!("# changed in release {release}\n"));
        std::fs::write(&hook, text).unwrap();
        run_ok(
            Command::new("tar")
                .arg("--zstd")
                .arg("-cf")
                .arg(&tarball)
                .arg("-C")
                .arg(&x)
                .arg(src.file_name().unwrap()),
        );
        std::fs::remove_dir_all(&x).unwrap();
    } else {
        std::fs::copy(&b.tarball, &tarball).unwrap();
    }
    let spec = top.join(format!("SPECS/{NAME}.spec"));
    let text: String = read(&format!("{NAME}.spec"))
        .lines()
        .map(|l| {
            if l.starts_with("Release:") {
                format!("Release:        {release}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&spec, text).unwrap();
    // The main build's topdir, so BUILD/ (the paths of the vendored crates,
    // part of cargo's fingerprints) is the same and cargo only relinks.
    let defines = [
        format!("_sourcedir {}", top.join("SOURCES").display()),
        format!("_rpmdir {}", top.join("RPMS").display()),
    ];
    rpmbuild(&b.topdir, &b.cargo_target, &["-bb"], &spec, &defines);
    let arch = run_ok(Command::new("rpm").args(["--eval", "%{_arch}"]));
    find_rpm(&top.join("RPMS").join(arch.trim()), &format!("{NAME}-"))
}

/// Run a command inside the image's root with /dev, /proc, /sys and a fresh
/// /run, in a private mount namespace that vanishes with it.
fn in_root(root: &Path, args: &[&str]) -> Output {
    run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(
            "r=$1; shift; mount --rbind /dev \"$r/dev\"; mount -t proc proc \"$r/proc\"; \
             mount --rbind /sys \"$r/sys\"; mount -t tmpfs tmpfs \"$r/run\"; exec chroot \"$r\" \"$@\"",
        )
        .arg("sh")
        .arg(root)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
}

fn in_root_ok(root: &Path, args: &[&str]) -> String {
    let out = in_root(root, args);
    assert!(
        out.status.success(),
        "{args:?} in {}: {}\n{}",
        root.display(),
        stderr(&out),
        out_text(&out)
    );
    format!("{}{}", out_text(&out), stderr(&out))
}

/// sha256 over `sha256sum` of the module's files, as the helper computes it.
fn module_sum(moddir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut names: Vec<String> = std::fs::read_dir(moddir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut listing = String::new();
    for n in names {
        let bytes = std::fs::read(moddir.join(&n)).unwrap();
        listing.push_str(&format!("{}  ./{n}\n", hex::encode(Sha256::digest(&bytes))));
    }
    hex::encode(Sha256::digest(listing.as_bytes()))
}

#[test]
fn initrd_is_regenerated_only_when_the_dracut_module_changed() {
    if !rpm_prerequisites() || !prerequisites() {
        return;
    }
    let r1 = built().rpm.clone();
    let r2 = variant(2, false);
    let r3 = variant(3, true);

    let sys = TestSystem::new();
    let root = sys.mnt.clone();
    // Like transactional-update's new snapshot: writable while it is filled.
    run_ok(
        Command::new("btrfs")
            .args(["property", "set", "-ts"])
            .arg(&root)
            .args(["ro", "false"]),
    );
    let kver = &fixtures().kver;
    let initrd = ["boot/initrd-", "boot/initrd.img-"]
        .iter()
        .map(|p| root.join(format!("{p}{kver}")))
        .find(|p| p.exists())
        .expect("an initrd in the image");
    let stamp = root.join("boot/.transactional-livepatch-dracut-module.sha256");
    let moddir = root.join("usr/lib/dracut/modules.d/90transactional-livepatch");
    let stamp_of = || {
        std::fs::read_to_string(&stamp)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mtime = || std::fs::metadata(&initrd).unwrap().modified().unwrap();
    let pkgdir = root.join("var/tmp/tlp-packages");
    std::fs::create_dir_all(&pkgdir).unwrap();
    let inside = |p: &Path| -> String {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(p, pkgdir.join(&name)).unwrap();
        format!("/var/tmp/tlp-packages/{name}")
    };
    // The image's rpm knows Debian's packages only through a "provides" stub:
    // no dependency checks; the package's scriptlets run for real.
    let install = |p: &Path, extra: &[&str]| -> String {
        let target = inside(p);
        let mut args = vec!["rpm", "-U", "--nodeps", "--nosignature"];
        args.extend_from_slice(extra);
        args.push(&target);
        let said = in_root_ok(&root, &args);
        eprintln!("{}: {said}", p.file_name().unwrap().to_string_lossy());
        said
    };

    // First install: the initrds were built without this module.
    assert!(stamp_of().is_none());
    let t0 = mtime();
    let said = install(&r1, &[]);
    assert!(
        said.contains("dracut module changed: regenerating"),
        "{said}"
    );
    assert!(mtime() > t0, "first install did not rebuild the initrd");
    assert_eq!(stamp_of(), Some(module_sum(&moddir)));
    assert_eq!(mode_of(&stamp), 0o644);

    // Upgrade with the same module: the initrd stays.
    let t1 = mtime();
    let said = install(&r2, &[]);
    assert!(said.contains("dracut module unchanged"), "{said}");
    assert_eq!(
        mtime(),
        t1,
        "an upgrade without module change rebuilt the initrd"
    );
    let sum1 = stamp_of().unwrap();

    // Upgrade that changes the module: rebuilt, stamp follows.
    let said = install(&r3, &[]);
    assert!(
        said.contains("dracut module changed: regenerating"),
        "{said}"
    );
    assert!(mtime() > t1, "a module change did not rebuild the initrd");
    let sum3 = stamp_of().unwrap();
    assert_ne!(sum3, sum1);
    assert_eq!(sum3, module_sum(&moddir));

    // On SUSE the flag of regenerate-initrd-posttrans is used instead.
    let suse = root.join("usr/lib/module-init-tools/regenerate-initrd-posttrans");
    std::fs::create_dir_all(suse.parent().unwrap()).unwrap();
    std::fs::write(
        &suse,
        "#!/bin/sh\nls /run/regenerate-initrd > /var/tmp/tlp-suse-flags\nrm -f /run/regenerate-initrd/all\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&suse, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::remove_file(&stamp).unwrap();
    let t3 = mtime();
    install(&r3, &["--replacepkgs"]);
    assert_eq!(
        read_path(&root.join("var/tmp/tlp-suse-flags")).trim(),
        "all",
        "SUSE's regenerate-initrd-posttrans was not asked to rebuild all"
    );
    assert_eq!(mtime(), t3, "dracut ran although SUSE's mechanism exists");
    assert_eq!(stamp_of(), Some(sum3.clone()));
    std::fs::remove_file(&suse).unwrap();

    // Erasing forgets the stamp, so a reinstall rebuilds.
    in_root_ok(&root, &["rpm", "-e", "--nodeps", NAME]);
    assert!(stamp_of().is_none());
    assert!(!root.join("usr/sbin/transactional-livepatch").exists());
}
