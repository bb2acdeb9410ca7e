//! Build-time generator of the reference material that must follow the code:
//! man pages (section 8) and shell completions from the clap definitions in
//! `tlp::cli`, and the exit-code table from `tlp::error::FailureKind`.
//! Run by `make man`, `make completions`, `make install` and the RPM build;
//! never installed.
//!
//!   tlp-gen-docs man DIR            transactional-livepatch.8 and one page per subcommand
//!   tlp-gen-docs completions DIR    bash (transactional-livepatch) and zsh (_transactional-livepatch)
//!   tlp-gen-docs exit-codes         the Markdown table of docs/contracts.md
//!   tlp-gen-docs dbus-man XML DIR   BUS_NAME.5 from the interface XML (dbus/*.xml)

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;
use tlp::error::FailureKind;

const NAME: &str = "transactional-livepatch";

/// One line per kind for the tables. An exhaustive match: a new kind does not
/// compile until it is described here, and docs/contracts.md is checked
/// against this output by tests/packaging.rs.
fn describe(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Internal => "Any error without a more specific kind.",
        FailureKind::Usage => {
            "The command line or the configuration is invalid (also clap's own usage errors)."
        }
        FailureKind::InvalidPackage => "The file is not an RPM, or it is truncated or corrupt.",
        FailureKind::NoLivepatch => "The RPM carries no livepatch kernel module.",
        FailureKind::UnsafePath => {
            "The package installs a file outside the livepatch directories, or uses `..` or links out of the root."
        }
        FailureKind::WrongKernel => {
            "The target kernel is not installed, or is not the running kernel on a live apply."
        }
        FailureKind::KernelUnsupported => "The running kernel cannot load livepatches.",
        FailureKind::Busy => "Another transaction holds the lock.",
        FailureKind::InstallFailed => {
            "Installing the package in the snapshot failed (rpm, a scriptlet, a dependency)."
        }
        FailureKind::InitrdFailed => {
            "dracut failed, or the new initrd does not hold the livepatch."
        }
        FailureKind::LoadFailed => "The kernel refused the module.",
        FailureKind::TransitionStalled => {
            "The livepatch transition did not finish in time; the patch was reversed."
        }
        FailureKind::NoSpace => "No space left on the filesystem holding the snapshots.",
        FailureKind::InvalidTarget => {
            "The rollback target does not exist or is not a complete read-only snapshot."
        }
        FailureKind::NotAuthorized => {
            "The caller is not allowed to do this (not root, or polkit said no)."
        }
        FailureKind::AlreadyApplied => {
            "The same package (name, version, release) is already in the default snapshot."
        }
        FailureKind::BadSignature => {
            "The package signature is missing or bad and the configuration requires one."
        }
        FailureKind::UnloadFailed => "A livepatch could not be removed from the running kernel.",
        FailureKind::RepositoryFailed => {
            "The package repositories could not be used: unreachable, invalid metadata, none configured, or the package is not in them."
        }
    }
}

/// The kind as the journal (`error_kind`) and JSON output spell it.
fn journal_name(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The exit-code table in Markdown, as docs/contracts.md holds it.
fn exit_code_table() -> String {
    let mut s = String::from(
        "| exit code | kind (D-Bus error) | `error_kind` (journal) | meaning |\n|---:|---|---|---|\n",
    );
    s.push_str("| 0 | — | — | Success. |\n");
    for k in FailureKind::ALL {
        s.push_str(&format!(
            "| {} | {} | `{}` | {} |\n",
            k.exit_code(),
            k.name(),
            journal_name(*k),
            describe(*k)
        ));
    }
    s
}

/// Escape text for roff: backslashes, leading dots and quotes, and hyphens
/// (which otherwise render as typographic dashes).
fn roff_text(t: &str) -> String {
    let t = t.replace('\\', "\\e").replace('-', "\\-");
    match t.chars().next() {
        Some('.') | Some('\'') => format!("\\&{t}"),
        _ => t,
    }
}

/// `\fBbold\fR` for `code` spans in the descriptions.
fn roff_inline(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in t.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{}\\fR", roff_text(part)));
        } else {
            out.push_str(&roff_text(part));
        }
    }
    out
}

fn main_page_extra(subcommands: &[String]) -> String {
    let mut s = String::new();
    s.push_str(".SH \"EXIT STATUS\"\n");
    s.push_str(
        "The exit code names the root cause of a failure; the numbers are a stable interface. \
         The journal records the kind of a failed transaction in \\fBerror_kind\\fR \
         (e.g. \\fBinvalid\\-package\\fR); D\\-Bus errors carry the name shown here.\n",
    );
    s.push_str(".TP\n.B 0\nSuccess.\n");
    for k in FailureKind::ALL {
        s.push_str(&format!(
            ".TP\n.B {}\n{} (\\fB{}\\fR) \\(em {}\n",
            k.exit_code(),
            k.name(),
            roff_text(&journal_name(*k)),
            roff_inline(describe(*k))
        ));
    }
    s.push_str(
        r#".SH FILES
.TP
.I /usr/lib/transactional\-livepatch/config.toml
Vendor defaults.
.TP
.I /etc/transactional\-livepatch/config.toml\fR, \fI/etc/transactional\-livepatch/config.d/*.toml
Administrator settings; see
.BR transactional\-livepatch.conf (5).
.TP
.I /etc/transactional\-livepatch/stack/<kernel release>
The boot stack of a snapshot: the livepatch modules its initrd loads, in order.
Written by the tool inside each snapshot; rolls back with it.
.TP
.I /var/lib/transactional\-livepatch/transactions/*.json
The transaction journal (directory 0700, files 0600), on the shared /var: it
survives rollbacks.
.TP
.I /var/lib/transactional\-livepatch/lock
The lock held by a running transaction (0600).
.TP
.I /usr/lib/dracut/modules.d/90transactional\-livepatch/
The dracut module that loads the boot stack early in the initrd.
.TP
.I /usr/lib/systemd/system/transactional\-livepatch\-boot.service
Finishes interrupted transactions and loads missing livepatches at boot.
"#,
    );
    s.push_str(".SH \"SEE ALSO\"\n");
    for sub in subcommands {
        s.push_str(&format!(".BR {} (8),\n", roff_text(sub)));
    }
    s.push_str(
        r#".BR transactional\-livepatch.conf (5),
.BR dracut (8),
.BR snapper (8)
.PP
The contracts (exit codes, the \fBstatus \-\-json\fR schema, files and
permissions, the D\-Bus interface) are described in
.I /usr/share/doc/packages/transactional\-livepatch/contracts.md
(or /usr/share/doc/transactional\-livepatch/ on other distributions).
"#,
    );
    s
}

fn render(man: &clap_mangen::Man, extra: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    buf.extend_from_slice(extra.as_bytes());
    Ok(buf)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The date of the pages: SOURCE_DATE_EPOCH when set (reproducible builds),
/// else today. Never empty: clap_mangen writes an empty date as nothing, and
/// .TH would then take the source for the date.
fn page_date() -> String {
    let d = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn man(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = tlp::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("{NAME} {}", env!("CARGO_PKG_VERSION"));
    let date = page_date();
    let page = |c: clap::Command| {
        clap_mangen::Man::new(c)
            .section("8")
            .source(source.clone())
            .date(date.clone())
            .manual("System Administration")
    };
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let sub_pages: Vec<String> = subs
        .iter()
        .map(|s| s.get_display_name().unwrap_or(s.get_name()).to_string())
        .collect();
    let mut written = Vec::new();
    let main = page(cmd.clone());
    write_file(
        &dir.join(main.get_filename()),
        &render(&main, &main_page_extra(&sub_pages))?,
    )?;
    written.push(main.get_filename());
    for sub in subs {
        let m = page(sub.clone());
        let extra = format!(
            ".SH \"EXIT STATUS\"\n0 on success; otherwise the code of the failure's kind, listed in\n.BR {} (8).\n.SH \"SEE ALSO\"\n.BR {} (8)\n",
            roff_text(NAME),
            roff_text(NAME)
        );
        write_file(&dir.join(m.get_filename()), &render(&m, &extra)?)?;
        written.push(m.get_filename());
    }
    Ok(written)
}

/// clap_complete's bash script spells the state of a subcommand in two ways
/// when the binary name has a hyphen: the loop arrives at
/// `transactional__livepatch__subcmd__apply`, the case arms say
/// `transactional__subcmd__livepatch__subcmd__apply`, so no subcommand option
/// ever completes (clap-rs/clap#6421, open). Spell the arms as the loop does;
/// once clap is fixed this replaces nothing. tests/packaging.rs completes
/// subcommand options in bash to catch either breaking.
fn fix_bash_hyphenated_bin_name(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let wrong = NAME.replace('-', "__subcmd__");
    let right = NAME.replace('-', "__");
    text.replace(&wrong, &right).into_bytes()
}

fn completions(dir: &Path) -> Result<Vec<String>> {
    use clap_complete::Shell;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    // Named as bash-completion and zsh look them up.
    for (shell, file) in [
        (Shell::Bash, NAME.to_string()),
        (Shell::Zsh, format!("_{NAME}")),
    ] {
        let mut cmd = tlp::cli::Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, NAME, &mut buf);
        if shell == Shell::Bash {
            buf = fix_bash_hyphenated_bin_name(&buf);
        }
        write_file(&dir.join(&file), &buf)?;
        written.push(file);
    }
    Ok(written)
}

/// A member of a D-Bus interface, with the XML comment before it.
#[derive(Default)]
struct Member {
    kind: String,
    name: String,
    doc: String,
    /// (direction or "", type, name) per argument; for a property its type
    /// and access.
    args: Vec<(String, String, String)>,
}

#[derive(Default)]
struct Interface {
    name: String,
    doc: String,
    members: Vec<Member>,
}

/// The interfaces of an introspection XML, and the comment before `<node>`.
fn parse_interfaces(xml: &str) -> Result<(String, Vec<Interface>)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut header = String::new();
    let mut comment = String::new();
    let mut out: Vec<Interface> = Vec::new();
    let attr = |e: &quick_xml::events::BytesStart, key: &str| -> Result<String> {
        for a in e.attributes() {
            let a = a?;
            if a.key.as_ref() == key {
                return Ok(a.value.into_owned());
            }
        }
        Ok(String::new())
    };
    loop {
        match reader.read_event()? {
            Event::Eof => break,
            Event::Comment(c) => comment = c.into_inner().into_owned(),
            Event::Start(e) | Event::Empty(e) => {
                let doc = std::mem::take(&mut comment);
                match e.name().as_ref() {
                    "node" if header.is_empty() => header = doc,
                    "interface" => out.push(Interface {
                        name: attr(&e, "name")?,
                        doc,
                        members: Vec::new(),
                    }),
                    tag @ ("method" | "signal" | "property") => {
                        let Some(iface) = out.last_mut() else {
                            bail!("a member outside an interface")
                        };
                        let mut m = Member {
                            kind: tag.to_string(),
                            name: attr(&e, "name")?,
                            doc,
                            args: Vec::new(),
                        };
                        if tag == "property" {
                            m.args
                                .push((attr(&e, "access")?, attr(&e, "type")?, String::new()));
                        }
                        iface.members.push(m);
                    }
                    "arg" => {
                        let Some(m) = out.last_mut().and_then(|i| i.members.last_mut()) else {
                            bail!("an arg outside a member")
                        };
                        m.args
                            .push((attr(&e, "direction")?, attr(&e, "type")?, attr(&e, "name")?));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok((header, out))
}

/// An XML comment as roff: paragraphs at blank lines; a paragraph with
/// lines indented deeper than the comment's base indentation is kept as is.
fn roff_comment(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for para in lines.split(|l| l.trim().is_empty()) {
        if para.is_empty() {
            continue;
        }
        out.push_str(".PP\n");
        if para.iter().skip(1).any(|l| indent(l) > base) {
            out.push_str(".nf\n");
            for l in para {
                out.push_str(&roff_inline(&l[base.min(l.len())..]));
                out.push('\n');
            }
            out.push_str(".fi\n");
        } else {
            let joined: Vec<&str> = para.iter().map(|l| l.trim()).collect();
            out.push_str(&roff_inline(&joined.join(" ")));
            out.push('\n');
        }
    }
    out
}

/// The man page of a D-Bus API, named after its bus name (the XML's file
/// name), in section 5 as systemd's org.freedesktop.*(5) pages are.
fn dbus_man(xml_path: &Path, dir: &Path) -> Result<Vec<String>> {
    let xml = std::fs::read_to_string(xml_path)
        .with_context(|| format!("reading {}", xml_path.display()))?;
    let (header, interfaces) =
        parse_interfaces(&xml).with_context(|| format!("parsing {}", xml_path.display()))?;
    if interfaces.is_empty() {
        bail!("{} declares no interface", xml_path.display());
    }
    let bus = xml_path
        .file_stem()
        .context("XML file without a name")?
        .to_string_lossy()
        .into_owned();
    let mut s = format!(
        ".TH {} 5 \"{}\" \"{NAME} {}\" \"D-Bus Interfaces\"\n",
        roff_text(&bus),
        page_date(),
        env!("CARGO_PKG_VERSION")
    );
    s.push_str(&format!(
        ".SH NAME\n{} \\- the D\\-Bus interface of {}\n",
        roff_text(&bus),
        roff_text(NAME)
    ));
    s.push_str(".SH SYNOPSIS\n.nf\n");
    for i in &interfaces {
        s.push_str(&format!("interface \\fB{}\\fR\n", roff_text(&i.name)));
    }
    s.push_str(".fi\n.SH DESCRIPTION\n");
    s.push_str(&roff_comment(&header));
    for i in &interfaces {
        s.push_str(&format!(".SH \"INTERFACE {}\"\n", roff_text(&i.name)));
        s.push_str(&roff_comment(&i.doc));
        for (kind, title) in [
            ("method", "Methods"),
            ("property", "Properties"),
            ("signal", "Signals"),
        ] {
            let members: Vec<&Member> = i.members.iter().filter(|m| m.kind == kind).collect();
            if members.is_empty() {
                continue;
            }
            s.push_str(&format!(".SS {title}\n"));
            for m in members {
                let sig = if kind == "property" {
                    let (access, ty, _) = &m.args[0];
                    format!("{} {} ({access})", ty, m.name)
                } else {
                    let args: Vec<String> = m
                        .args
                        .iter()
                        .map(|(dir, ty, name)| {
                            let dir = if dir.is_empty() {
                                String::new()
                            } else {
                                format!("{dir} ")
                            };
                            let name = if name.is_empty() {
                                String::new()
                            } else {
                                format!(" {name}")
                            };
                            format!("{dir}{ty}{name}")
                        })
                        .collect();
                    format!("{}({})", m.name, args.join(", "))
                };
                s.push_str(&format!(".TP\n.B {}\n", roff_text(&sig)));
                let doc: Vec<&str> = m
                    .doc
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                s.push_str(&roff_inline(&doc.join(" ")));
                s.push('\n');
            }
        }
    }
    s.push_str(&format!(
        ".SH FILES\n.TP\n.I /usr/share/dbus\\-1/interfaces/{}.xml\nThe introspection XML this page is made from.\n",
        roff_text(&bus)
    ));
    s.push_str(
        ".SH \"SEE ALSO\"\n.BR transactional\\-livepatch (8),\n.BR transactional\\-livepatch\\-daemon (8),\n.BR busctl (1),\n.BR polkit (8)\n",
    );
    let file = format!("{bus}.5");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_file(&dir.join(&file), s.as_bytes())?;
    Ok(vec![file])
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let written = match args.as_slice() {
        ["man", dir] => man(Path::new(dir))?,
        ["completions", dir] => completions(Path::new(dir))?,
        ["dbus-man", xml, dir] => dbus_man(Path::new(xml), Path::new(dir))?,
        ["exit-codes"] => {
            std::io::stdout().write_all(exit_code_table().as_bytes())?;
            return Ok(());
        }
        _ => bail!("usage: tlp-gen-docs man DIR | completions DIR | exit-codes | dbus-man XML DIR"),
    };
    for f in written {
        println!("{f}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes() {
        assert_eq!(roff_text("a-b"), "a\\-b");
        assert_eq!(roff_text(".x"), "\\&.x");
        // A leading dot inside the bold run is protected too (harmless mid-line).
        assert_eq!(roff_inline("use `..` here"), "use \\fB\\&..\\fR here");
    }

    #[test]
    fn table_has_every_kind_once() {
        let t = exit_code_table();
        for k in FailureKind::ALL {
            let row = format!("| {} | {} |", k.exit_code(), k.name());
            assert_eq!(t.matches(&row).count(), 1, "{row}");
        }
    }
}
