//! zypper, run inside a snapshot, and its `--xmlout` output.
//!
//! Every call is `chroot <snapshot> zypper --non-interactive --xmlout
//! --cache-dir <dir> …`: the snapshot's own zypper, repository definitions
//! (`/etc/zypp/repos.d`), trusted keys (the `gpg-pubkey` packages of its rpm
//! database) and rpm database. The caller gives it a throwaway snapshot, never
//! the running root (see `crate::update`).
//!
//! zypper's exit code alone does not tell success: `zypper download` exits 0
//! after a refused package signature ("ABORT request"), and a failed refresh
//! leaves the old metadata in the cache, which a later `search` happily uses.
//! So every call is judged by its XML stream too: any `error` message is a
//! failure, and a signature or key problem anywhere in it makes the failure a
//! [`FailureKind::BadSignature`]. The parser is tested on captured real output
//! (`tests/fixtures/zypper/`).

use crate::chroot::ChrootEnv;
use crate::error::{FailureKind, failure};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::cmp::Ordering;

/// zypper's exit codes that this module tells apart (zypper(8), EXIT CODES).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERR_SYNTAX: i32 = 2;
    pub const ERR_INVALID_ARGS: i32 = 3;
    pub const ERR_ZYPP: i32 = 4;
    pub const NO_REPOS: i32 = 6;
    pub const ZYPP_LOCKED: i32 = 7;
    /// `list-patches` and friends: updates or patches are needed.
    pub const INF_UPDATE_NEEDED: i32 = 100;
    pub const INF_SEC_UPDATE_NEEDED: i32 = 101;
    /// `search`: nothing matched.
    pub const INF_CAP_NOT_FOUND: i32 = 104;
}

/// The `<stream>` zypper writes with `--xmlout`.
#[derive(Debug, Default, Deserialize)]
pub struct Stream {
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Item {
    Message(Message),
    Prompt(Prompt),
    SearchResult(SearchResult),
    DownloadResult(DownloadResult),
    UpdateStatus(UpdateStatus),
    /// `<progress>` and whatever a newer zypper adds.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// info, warning or error.
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(rename = "$text", default)]
    pub text: String,
}

/// A question zypper answered itself with its default (`--non-interactive`).
#[derive(Debug, Clone, Deserialize)]
pub struct Prompt {
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Default, Deserialize)]
struct SearchResult {
    #[serde(rename = "solvable-list", default)]
    list: SolvableList,
}

#[derive(Debug, Default, Deserialize)]
struct SolvableList {
    #[serde(rename = "solvable", default)]
    solvables: Vec<Solvable>,
}

/// One line of `zypper search --details`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Solvable {
    #[serde(rename = "@name")]
    pub name: String,
    /// package, patch, …
    #[serde(rename = "@kind")]
    pub kind: String,
    /// `installed`, `not-installed`, or `other-version` (another edition of
    /// the same name is installed).
    #[serde(rename = "@status")]
    pub status: String,
    /// `[epoch:]version-release`.
    #[serde(rename = "@edition", default)]
    pub edition: String,
    #[serde(rename = "@arch", default)]
    pub arch: String,
    /// The repository's name ("(System Packages)" when only installed).
    #[serde(rename = "@repository", default)]
    pub repository: String,
}

impl Solvable {
    pub fn installed(&self) -> bool {
        self.status == "installed"
    }
}

#[derive(Debug, Deserialize)]
struct DownloadResult {
    solvable: DownloadSolvable,
    #[serde(default)]
    localfile: Option<LocalFile>,
}

#[derive(Debug, Deserialize)]
struct DownloadSolvable {
    name: String,
    edition: Edition,
    arch: String,
    repository: Repository,
}

#[derive(Debug, Deserialize)]
struct Edition {
    #[serde(rename = "@epoch", default)]
    epoch: String,
    #[serde(rename = "@version")]
    version: String,
    #[serde(rename = "@release", default)]
    release: String,
}

#[derive(Debug, Deserialize)]
struct Repository {
    #[serde(rename = "@name", default)]
    name: String,
    #[serde(rename = "@alias", default)]
    alias: String,
}

#[derive(Debug, Deserialize)]
struct LocalFile {
    #[serde(rename = "@path")]
    path: String,
}

/// A package zypper downloaded (and verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub name: String,
    /// `[epoch:]version-release`, as in search results.
    pub edition: String,
    pub arch: String,
    pub repository: String,
    pub repository_alias: String,
    /// Path inside the root zypper ran in.
    pub path: String,
}

#[derive(Debug, Default, Deserialize)]
struct UpdateStatus {
    #[serde(rename = "update-list", default)]
    list: UpdateList,
}

#[derive(Debug, Default, Deserialize)]
struct UpdateList {
    #[serde(rename = "update", default)]
    updates: Vec<Patch>,
}

/// A patch (an updateinfo entry) of `zypper list-patches`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Patch {
    #[serde(rename = "@name")]
    pub name: String,
    /// needed, applied, not-needed …
    #[serde(rename = "@status", default)]
    pub status: String,
    /// security, recommended …
    #[serde(rename = "@category", default)]
    pub category: String,
    #[serde(rename = "@severity", default)]
    pub severity: String,
    #[serde(default)]
    pub summary: String,
    #[serde(rename = "issue-list", default)]
    issue_list: IssueList,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct IssueList {
    #[serde(rename = "issue", default)]
    issues: Vec<Issue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// cve, bugzilla, jira …
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(rename = "@id")]
    pub id: String,
}

impl Patch {
    pub fn issues(&self) -> &[Issue] {
        &self.issue_list.issues
    }

    /// The CVE ids the patch references.
    pub fn cves(&self) -> Vec<String> {
        self.issues()
            .iter()
            .filter(|i| i.kind.eq_ignore_ascii_case("cve"))
            .map(|i| i.id.clone())
            .collect()
    }
}

/// Parse a `--xmlout` stream.
pub fn parse(xml: &str) -> Result<Stream> {
    // A stream cut short (zypper killed) has no closing tag: say so instead of
    // a parser error about EOF.
    if !xml.contains("</stream>") && !xml.trim_end().ends_with("<stream/>") {
        anyhow::bail!("zypper's XML output is incomplete (no </stream>)");
    }
    quick_xml::de::from_str(xml).context("parsing zypper's XML output")
}

/// One line of text, for error messages: whitespace runs collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Stream {
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.items.iter().filter_map(|i| match i {
            Item::Message(m) => Some(m),
            _ => None,
        })
    }

    pub fn prompts(&self) -> impl Iterator<Item = &Prompt> {
        self.items.iter().filter_map(|i| match i {
            Item::Prompt(p) => Some(p),
            _ => None,
        })
    }

    pub fn errors(&self) -> impl Iterator<Item = &Message> {
        self.messages().filter(|m| m.kind == "error")
    }

    /// Every solvable of every `<search-result>`.
    pub fn solvables(&self) -> Vec<Solvable> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::SearchResult(r) => Some(r.list.solvables.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The packages a `download` fetched (results without a local file are
    /// failures, reported by [`Stream::failure`]).
    pub fn downloads(&self) -> Vec<Downloaded> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::DownloadResult(d) => d.localfile.as_ref().map(|f| {
                    let e = &d.solvable.edition;
                    let mut edition = String::new();
                    if !e.epoch.is_empty() && e.epoch != "0" {
                        edition.push_str(&e.epoch);
                        edition.push(':');
                    }
                    edition.push_str(&e.version);
                    if !e.release.is_empty() {
                        edition.push('-');
                        edition.push_str(&e.release);
                    }
                    Downloaded {
                        name: d.solvable.name.clone(),
                        edition,
                        arch: d.solvable.arch.clone(),
                        repository: d.solvable.repository.name.clone(),
                        repository_alias: d.solvable.repository.alias.clone(),
                        path: f.path.clone(),
                    }
                }),
                _ => None,
            })
            .collect()
    }

    /// Every patch of `list-patches`.
    pub fn patches(&self) -> Vec<Patch> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::UpdateStatus(u) => Some(u.list.updates.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Whether anything in the stream is about a signature or signing key.
    fn mentions_signature(&self) -> bool {
        const SIGNS: &[&str] = &[
            "signature verification failed",
            "signed with an unknown key",
            "signing key",
            "is not signed",
            "file is unsigned",
            "no signature",
            "gpg check failed",
            "untrusted key",
        ];
        let texts = self
            .messages()
            .filter(|m| m.kind != "info")
            .map(|m| m.text.as_str())
            .chain(self.prompts().map(|p| p.text.as_str()));
        texts
            .map(str::to_lowercase)
            .any(|t| SIGNS.iter().any(|s| t.contains(s)))
    }

    /// The failure of a zypper call that exited with `code`, or `None` when it
    /// succeeded. `ok` lists the exit codes that are not errors for this
    /// command (0 is always one).
    pub fn failure(&self, what: &str, code: i32, ok: &[i32]) -> Option<anyhow::Error> {
        let errors: Vec<String> = self.errors().map(|m| one_line(&m.text)).collect();
        let code_ok = code == exit::OK || ok.contains(&code);
        if code_ok && errors.is_empty() {
            return None;
        }
        let signature = self.mentions_signature();
        // The warning that names the unknown key says more than the errors
        // that follow it ("Valid metadata not found …").
        let mut detail: Vec<String> = self
            .messages()
            .filter(|m| m.kind == "warning" && signature && m.text.to_lowercase().contains("key"))
            .map(|m| one_line(&m.text))
            .collect();
        for e in errors {
            if !detail.contains(&e) {
                detail.push(e);
            }
        }
        if detail.is_empty() {
            // e.g. "There are no enabled repositories defined." (exit 6)
            detail = self
                .messages()
                .filter(|m| m.kind == "warning")
                .map(|m| one_line(&m.text))
                .collect();
        }
        let mut text = detail
            .into_iter()
            .take(4)
            .map(|d| {
                if d.chars().count() > 400 {
                    let cut: String = d.chars().take(400).collect();
                    format!("{cut}…")
                } else {
                    d
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        if text.is_empty() {
            text = format!("exit status {code}");
        }
        let kind = if signature {
            FailureKind::BadSignature
        } else {
            match code {
                exit::ZYPP_LOCKED => FailureKind::Busy,
                exit::ERR_SYNTAX | exit::ERR_INVALID_ARGS => FailureKind::Internal,
                _ => FailureKind::RepositoryFailed,
            }
        };
        let text = match (kind, code) {
            (FailureKind::BadSignature, _) => format!(
                "{what}: a repository or package signature could not be verified, nothing was changed: {text}"
            ),
            (_, exit::NO_REPOS) => format!(
                "{what}: no repositories are configured (add one to /etc/zypp/repos.d in the root): {text}"
            ),
            _ => format!("{what} failed: {text}"),
        };
        Some(failure(kind, text))
    }
}

/// Compare two `[epoch:]version-release` strings the way rpm does.
pub fn compare_editions(a: &str, b: &str) -> Ordering {
    rpm_version::Evr::parse(a).cmp(&rpm_version::Evr::parse(b))
}

/// zypper inside a prepared chroot.
pub struct Zypper<'e> {
    env: &'e ChrootEnv,
    /// zypper's cache directory (metadata and packages), inside the chroot.
    cache_dir: String,
}

impl<'e> Zypper<'e> {
    pub fn new(env: &'e ChrootEnv, cache_dir: &str) -> Zypper<'e> {
        Zypper {
            env,
            cache_dir: cache_dir.to_string(),
        }
    }

    pub fn cache_dir(&self) -> &str {
        &self.cache_dir
    }

    /// Run `zypper <global options> <args>`; returns the exit code and the
    /// parsed stream, or the failure judged by [`Stream::failure`].
    fn run(&self, what: &str, args: &[&str], ok: &[i32]) -> Result<Stream> {
        let mut cmd = self.env.command("zypper");
        cmd.args(["--non-interactive", "--xmlout", "--no-color"])
            .args(["--cache-dir", &self.cache_dir])
            .args(args);
        let line = crate::cmd::display(&cmd);
        tracing::debug!(command = %line, "running");
        let out = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .with_context(|| format!("starting `{line}`"))?;
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stream = parse(&stdout).with_context(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            format!(
                "`{line}` exited with {code}; stderr: {}",
                one_line(&err).chars().take(600).collect::<String>()
            )
        });
        let stream = match stream {
            Ok(s) => s,
            // No usable XML: nothing to judge but the exit code and stderr.
            Err(e) => {
                let kind = if code == exit::ZYPP_LOCKED {
                    FailureKind::Busy
                } else {
                    FailureKind::RepositoryFailed
                };
                return Err(e.context(failure(kind, format!("{what} failed"))));
            }
        };
        match stream.failure(what, code, ok) {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    /// `zypper refresh`: metadata of every enabled repository, signatures
    /// checked. Any repository that fails fails the call.
    pub fn refresh(&self) -> Result<()> {
        self.run(
            "refreshing the repositories (zypper refresh)",
            &["refresh"],
            &[],
        )
        .map(|_| ())
    }

    /// Every edition of the packages named exactly `names`, installed or in a
    /// repository (no refresh: call [`Zypper::refresh`] first).
    pub fn search_packages(&self, names: &[String]) -> Result<Vec<Solvable>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![
            "--no-refresh",
            "search",
            "--details",
            "--match-exact",
            "--type",
            "package",
        ];
        args.extend(names.iter().map(String::as_str));
        let s = self.run(
            "searching the repositories (zypper search)",
            &args,
            &[exit::INF_CAP_NOT_FOUND],
        )?;
        Ok(s.solvables()
            .into_iter()
            .filter(|p| p.kind == "package" && names.contains(&p.name))
            .collect())
    }

    /// The names of the patches that update package `name` (they conflict
    /// with its older editions).
    pub fn patches_for(&self, name: &str) -> Result<Vec<String>> {
        let s = self.run(
            "searching patches (zypper search -t patch)",
            &[
                "--no-refresh",
                "search",
                "--conflicts",
                "--match-exact",
                "--type",
                "patch",
                name,
            ],
            &[exit::INF_CAP_NOT_FOUND],
        )?;
        Ok(s.solvables()
            .into_iter()
            .filter(|p| p.kind == "patch")
            .map(|p| p.name)
            .collect())
    }

    /// Every patch relevant to the installed system, with its status.
    pub fn list_patches(&self) -> Result<Vec<Patch>> {
        let s = self.run(
            "listing patches (zypper list-patches)",
            &["--no-refresh", "list-patches", "--all"],
            &[exit::INF_UPDATE_NEEDED, exit::INF_SEC_UPDATE_NEEDED],
        )?;
        Ok(s.patches())
    }

    /// Download the best edition of package `name` into the package cache
    /// (signature checked by zypper), or fail.
    pub fn download(&self, name: &str) -> Result<Downloaded> {
        let what = format!("downloading {name} (zypper download)");
        let s = self.run(&what, &["--no-refresh", "download", name], &[])?;
        let got: Vec<Downloaded> = s
            .downloads()
            .into_iter()
            .filter(|d| d.name == name)
            .collect();
        match got.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(failure(
                FailureKind::RepositoryFailed,
                format!("{what}: zypper reported no downloaded file"),
            )),
            _ => Err(failure(
                FailureKind::RepositoryFailed,
                format!("{what}: zypper downloaded {} editions", got.len()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/zypper")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn refresh_ok_is_success() {
        let s = parse(&fixture("refresh-ok.xml")).unwrap();
        assert!(s.failure("refresh", 0, &[]).is_none());
        assert_eq!(s.errors().count(), 0);
    }

    #[test]
    fn unknown_key_is_a_bad_signature() {
        let s = parse(&fixture("refresh-unknown-key.xml")).unwrap();
        let e = s.failure("refresh", exit::ERR_ZYPP, &[]).unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::BadSignature);
        let msg = format!("{e:#}");
        assert!(msg.contains("signed with an unknown key"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn tampered_metadata_is_a_bad_signature() {
        let s = parse(&fixture("refresh-tampered.xml")).unwrap();
        let e = s.failure("refresh", exit::ERR_ZYPP, &[]).unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::BadSignature);
        assert!(format!("{e:#}").contains("Signature verification failed"));
    }

    #[test]
    fn unreachable_repository_is_a_repository_failure() {
        let s = parse(&fixture("refresh-unreachable.xml")).unwrap();
        let e = s.failure("refresh", exit::ERR_ZYPP, &[]).unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::RepositoryFailed);
        let msg = format!("{e:#}");
        assert!(msg.contains("Connection failed"), "{msg}");
    }

    #[test]
    fn no_repositories_says_so() {
        let s = parse(&fixture("refresh-no-repos.xml")).unwrap();
        let e = s.failure("refresh", exit::NO_REPOS, &[]).unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::RepositoryFailed);
        assert!(format!("{e:#}").contains("no repositories are configured"));
    }

    #[test]
    fn search_lists_editions_and_status() {
        let s = parse(&fixture("search-installed-and-newer.xml")).unwrap();
        assert!(s.failure("search", 0, &[]).is_none());
        let all = s.solvables();
        assert_eq!(all.len(), 3);
        let cumul: Vec<&Solvable> = all
            .iter()
            .filter(|p| p.name == "kernel-livepatch-tlp-cumulative")
            .collect();
        assert_eq!(cumul.len(), 2);
        assert_eq!(cumul[0].edition, "2-1");
        assert_eq!(cumul[0].status, "other-version");
        assert!(cumul[1].installed());
        assert_eq!(cumul[1].edition, "1-1");
        assert_eq!(cumul[1].arch, "x86_64");
        assert_eq!(cumul[1].repository, "tlp test livepatches");
    }

    #[test]
    fn search_without_match_is_not_an_error() {
        let s = parse(&fixture("search-nothing.xml")).unwrap();
        assert!(
            s.failure(
                "search",
                exit::INF_CAP_NOT_FOUND,
                &[exit::INF_CAP_NOT_FOUND]
            )
            .is_none()
        );
        assert!(s.solvables().is_empty());
    }

    #[test]
    fn download_reports_the_local_file() {
        let s = parse(&fixture("download-ok.xml")).unwrap();
        assert!(s.failure("download", 0, &[]).is_none());
        let d = s.downloads();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "kernel-livepatch-tlp-cumulative");
        assert_eq!(d[0].edition, "2-1");
        assert_eq!(d[0].arch, "x86_64");
        assert_eq!(d[0].repository_alias, "tlp-test");
        assert!(
            d[0].path
                .ends_with("/tlp-test/kernel-livepatch-tlp-cumulative-2-1.x86_64.rpm"),
            "{}",
            d[0].path
        );
    }

    #[test]
    fn unsigned_package_fails_although_zypper_exits_0() {
        let s = parse(&fixture("download-unsigned-package.xml")).unwrap();
        assert!(s.downloads().is_empty());
        let e = s.failure("download", 0, &[]).unwrap();
        assert_eq!(crate::error::kind_of(&e), FailureKind::BadSignature);
        assert!(format!("{e:#}").contains("unsigned"), "{e:#}");
    }

    #[test]
    fn patches_carry_their_cves() {
        let s = parse(&fixture("list-patches.xml")).unwrap();
        let p = s.patches();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "TLP-TEST-2026-2");
        assert_eq!(p[0].status, "needed");
        assert_eq!(p[0].category, "security");
        assert_eq!(p[0].severity, "important");
        assert_eq!(p[0].summary, "Security update for the test livepatch");
        assert_eq!(p[0].cves(), ["CVE-2026-0002"]);
        assert_eq!(p[0].issues().len(), 2);
        let s = parse(&fixture("search-patches-conflicting.xml")).unwrap();
        let names: Vec<String> = s
            .solvables()
            .into_iter()
            .filter(|p| p.kind == "patch")
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["TLP-TEST-2026-2"]);
    }

    #[test]
    fn truncated_output_is_an_error() {
        let full = fixture("refresh-ok.xml");
        let cut = &full[..full.len() / 2];
        assert!(parse(cut).is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn editions_compare_like_rpm() {
        assert_eq!(compare_editions("2-1", "1-1"), Ordering::Greater);
        assert_eq!(compare_editions("10-1", "9-1"), Ordering::Greater);
        assert_eq!(compare_editions("1-1.2", "1-1.10"), Ordering::Less);
        assert_eq!(compare_editions("1:1-1", "2-1"), Ordering::Greater);
        assert_eq!(
            compare_editions("1-150500.1.1", "1-150500.1.1"),
            Ordering::Equal
        );
    }
}
