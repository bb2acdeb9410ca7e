//! One changing operation: its D-Bus object, and the child process that does it.
//!
//! The work runs in a child process of this same binary (`--progress-json
//! apply|rollback|recover|update --json`): apply enters a private mount namespace,
//! which needs a single-threaded process, and a child that dies takes its
//! mounts with it. The child takes the transaction lock itself, exactly as the
//! CLI does. Its JSON progress lines on stderr become signals here; its exit
//! code, mapped back to a [`FailureKind`], becomes the typed error of
//! `Finished`. No signal waits for any client: a client that goes away stalls
//! nothing.

use super::Shared;
use super::error::error_name;
use crate::error::FailureKind;
use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use zbus::object_server::{InterfaceRef, SignalEmitter};
use zbus::{Connection, interface};

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Apply {
        /// The path the caller named (the child reads the handle opened from it).
        package: PathBuf,
        boot_only: bool,
    },
    Rollback {
        snapshot: Option<u32>,
        boot_only: bool,
    },
    Recover,
    /// `update`: the newest livepatch for the running kernel from the
    /// configured repositories, through the same apply transaction.
    Update {
        boot_only: bool,
    },
}

impl Operation {
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Apply { .. } => "apply",
            Operation::Rollback { .. } => "rollback",
            Operation::Recover => "recover",
            Operation::Update { .. } => "update",
        }
    }

    pub fn describe(&self) -> String {
        let boot = |b: bool| if b { " (boot only)" } else { "" };
        match self {
            Operation::Apply { package, boot_only } => {
                format!("apply {}{}", package.display(), boot(*boot_only))
            }
            Operation::Rollback {
                snapshot: Some(n),
                boot_only,
            } => format!("rollback to snapshot {n}{}", boot(*boot_only)),
            Operation::Rollback {
                snapshot: None,
                boot_only,
            } => format!("rollback{}", boot(*boot_only)),
            Operation::Recover => "recover".to_string(),
            Operation::Update { boot_only } => format!("update{}", boot(*boot_only)),
        }
    }

    /// The child's arguments after the global options.
    fn args(&self) -> Vec<String> {
        let mut a = vec![self.kind().to_string()];
        match self {
            // The package is the child's stdin: the handle this daemon opened
            // and checked. Reopening /dev/stdin reaches that same inode,
            // whatever happens to the path meanwhile. The caller's path goes
            // along as a label for the history only.
            Operation::Apply { package, boot_only } => {
                a.push("/dev/stdin".into());
                a.push(format!("--package-name={}", package.display()));
                if *boot_only {
                    a.push("--boot-only".into());
                }
            }
            Operation::Rollback {
                snapshot,
                boot_only,
            } => {
                if let Some(n) = snapshot {
                    a.push(n.to_string());
                }
                if *boot_only {
                    a.push("--boot-only".into());
                }
            }
            Operation::Update { boot_only } => {
                if *boot_only {
                    a.push("--boot-only".into());
                }
            }
            Operation::Recover => {}
        }
        a.push("--json".into());
        a
    }
}

/// One line the child printed on stderr.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildLine {
    Step {
        index: u32,
        total: u32,
        title: String,
    },
    Message(String),
    /// The final `error: …` line of a failed command.
    Error(String),
}

pub fn parse_child_line(line: &str) -> Option<ChildLine> {
    let line = line.trim_end();
    if line.is_empty() {
        return None;
    }
    if let Some(e) = line.strip_prefix("error: ") {
        return Some(ChildLine::Error(e.to_string()));
    }
    if line.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
    {
        let num = |k: &str| v[k].as_u64().and_then(|n| u32::try_from(n).ok());
        match v["event"].as_str() {
            Some("step") => {
                if let (Some(index), Some(total), Some(title)) =
                    (num("index"), num("total"), v["title"].as_str())
                {
                    return Some(ChildLine::Step {
                        index,
                        total,
                        title: title.to_string(),
                    });
                }
            }
            Some("message") => {
                if let Some(t) = v["text"].as_str() {
                    return Some(ChildLine::Message(t.to_string()));
                }
            }
            _ => {}
        }
    }
    // Anything else (a warning of the log) is passed on as it is.
    Some(ChildLine::Message(line.to_string()))
}

/// Percent done when step `index` of `total` begins.
pub fn percent_at(index: u32, total: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    (index.saturating_sub(1).min(total) * 100) / total
}

/// The object of one transaction, `/org/opensuse/TransactionalLivepatch1/Transaction/N`.
///
/// Subscribe to its signals (e.g. a match rule on the interface, or on the
/// path namespace `/org/opensuse/TransactionalLivepatch1/Transaction`) before
/// calling the method that starts it; a late client reads the properties,
/// which always hold the state so far and the result.
pub struct Transaction {
    pub(super) kind: String,
    pub(super) description: String,
    pub(super) caller: String,
    pub(super) running: bool,
    pub(super) success: bool,
    pub(super) error_name: String,
    pub(super) error_message: String,
    pub(super) report: String,
    pub(super) current_task: String,
    pub(super) percent: u32,
}

impl Transaction {
    pub fn new(op: &Operation, caller: &str) -> Transaction {
        Transaction {
            kind: op.kind().to_string(),
            description: op.describe(),
            caller: caller.to_string(),
            running: true,
            success: false,
            error_name: String::new(),
            error_message: String::new(),
            report: String::new(),
            current_task: String::new(),
            percent: 0,
        }
    }
}

/// A transaction of the transactional-livepatch service: an apply, a
/// rollback, a recover or an update, running or finished.
#[interface(name = "org.opensuse.TransactionalLivepatch1.Transaction")]
impl Transaction {
    /// "apply", "rollback", "recover" or "update".
    #[zbus(property(emits_changed_signal = "const"))]
    fn kind(&self) -> String {
        self.kind.clone()
    }

    /// What it does, in words (e.g. "apply /tmp/x.rpm (boot only)").
    #[zbus(property(emits_changed_signal = "const"))]
    fn description(&self) -> String {
        self.description.clone()
    }

    /// The unique bus name of the client that started it.
    #[zbus(property(emits_changed_signal = "const"))]
    fn caller(&self) -> String {
        self.caller.clone()
    }

    /// True until it has finished.
    #[zbus(property)]
    fn running(&self) -> bool {
        self.running
    }

    /// Whether it finished successfully (false while running).
    #[zbus(property)]
    fn success(&self) -> bool {
        self.success
    }

    /// The typed D-Bus error name of a failure, e.g.
    /// org.opensuse.TransactionalLivepatch1.Error.KernelUnsupported; empty on success.
    #[zbus(property)]
    fn error_name(&self) -> String {
        self.error_name.clone()
    }

    /// The one-line error message of a failure; empty on success.
    #[zbus(property)]
    fn error_message(&self) -> String {
        self.error_message.clone()
    }

    /// On success, the JSON report of the command (as `apply --json`,
    /// `rollback --json`, `recover --json` or `update --json` print it);
    /// empty otherwise.
    #[zbus(property)]
    fn report(&self) -> String {
        self.report.clone()
    }

    /// The title of the step that runs now (or ran last).
    #[zbus(property)]
    fn current_task(&self) -> String {
        self.current_task.clone()
    }

    /// Percent done.
    #[zbus(property)]
    fn percent(&self) -> u32 {
        self.percent
    }

    /// A step begins.
    #[zbus(signal)]
    async fn task_begin(emitter: &SignalEmitter<'_>, text: &str) -> zbus::Result<()>;

    /// The step that began last has ended successfully.
    #[zbus(signal)]
    async fn task_end(emitter: &SignalEmitter<'_>, text: &str) -> zbus::Result<()>;

    /// A message within the current step.
    #[zbus(signal)]
    async fn message(emitter: &SignalEmitter<'_>, text: &str) -> zbus::Result<()>;

    /// Overall progress: the current step's title and percent done.
    #[zbus(signal)]
    async fn percent_progress(
        emitter: &SignalEmitter<'_>,
        text: &str,
        percentage: u32,
    ) -> zbus::Result<()>;

    /// The end: success, and on failure the typed error name and message.
    #[zbus(signal)]
    async fn finished(
        emitter: &SignalEmitter<'_>,
        success: bool,
        error_name: &str,
        error_message: &str,
    ) -> zbus::Result<()>;
}

/// How the child ended.
struct Outcome {
    success: bool,
    kind: Option<FailureKind>,
    message: String,
    report: String,
}

/// Run `op` in a child process, turning its progress into signals of `iface`,
/// then finish the transaction. Never fails: every failure ends as
/// `Finished(false, …)`.
pub(super) async fn run(
    shared: Arc<Shared>,
    conn: Connection,
    iface: InterfaceRef<Transaction>,
    op: Operation,
    package: Option<File>,
) {
    let outcome = match drive(&shared, &iface, &op, package).await {
        Ok(o) => o,
        Err(e) => Outcome {
            success: false,
            kind: Some(FailureKind::Internal),
            message: format!("{e:#}"),
            report: String::new(),
        },
    };
    let path = iface.signal_emitter().path().to_owned();
    let name = outcome.kind.map(error_name).unwrap_or_default();
    if outcome.success {
        tracing::info!("{path}: {} succeeded", op.describe());
    } else {
        tracing::warn!(
            "{path}: {} failed: {name}: {}",
            op.describe(),
            outcome.message
        );
    }
    let emitter = iface.signal_emitter();
    {
        let mut t = iface.get_mut().await;
        t.running = false;
        t.success = outcome.success;
        t.error_name = name.clone();
        t.error_message = outcome.message.clone();
        t.report = outcome.report;
        if outcome.success {
            t.percent = 100;
        }
        let _ = t.running_changed(emitter).await;
        let _ = t.success_changed(emitter).await;
        let _ = t.error_name_changed(emitter).await;
        let _ = t.error_message_changed(emitter).await;
        let _ = t.report_changed(emitter).await;
        let _ = t.percent_changed(emitter).await;
    }
    // A package uploaded to the spool served this one transaction.
    if let Operation::Apply { package, .. } = &op
        && super::in_spool(&shared.opts.root, package)
    {
        match std::fs::remove_file(package) {
            Ok(()) => tracing::info!("{path}: removed {} from the spool", package.display()),
            Err(e) => tracing::warn!("{path}: removing {}: {e}", package.display()),
        }
    }
    // Free the slot first: a client that reacts to Finished by starting the
    // next transaction must not be told Busy.
    shared.finish(&conn, &path).await;
    let _ = Transaction::finished(emitter, outcome.success, &name, &outcome.message).await;
}

/// This tool as a child, pointed at the daemon's system. /proc/self/exe: the
/// very binary (and library) this daemon runs, even if an update replaced the
/// file meanwhile.
pub(super) fn tool_command(opts: &super::DaemonOptions) -> tokio::process::Command {
    let mut cmd = crate::cmd::async_command("/proc/self/exe");
    cmd.arg0("transactional-livepatch")
        .arg("--root")
        .arg(&opts.root)
        .arg("--kernel-root")
        .arg(&opts.kernel_root);
    if let Some(c) = &opts.config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

/// `inspect --against-default --json` of the package behind `package` (the
/// handle the daemon opened), in a child: a package is parsed outside the
/// daemon, as for an apply. Returns the JSON document, or the child's typed
/// error.
pub(super) async fn inspect(
    opts: &super::DaemonOptions,
    package: File,
) -> Result<String, super::error::DaemonError> {
    json_child(
        opts,
        &["inspect", "/dev/stdin", "--against-default", "--json"],
        Stdio::from(package),
        &[0],
    )
    .await
}

/// `check --json` in a child, which takes the transaction lock itself for
/// as long as the check runs, exactly as from the command line (and gets
/// Busy while a transaction holds it). Exit 0 (up to date) and
/// [`crate::update::EXIT_UPDATE_AVAILABLE`] are both a report.
pub(super) async fn check(
    opts: &super::DaemonOptions,
) -> Result<String, super::error::DaemonError> {
    json_child(
        opts,
        &["check", "--json"],
        Stdio::null(),
        &[0, crate::update::EXIT_UPDATE_AVAILABLE],
    )
    .await
}

/// Run this tool with `args` and return its JSON stdout when it exits with
/// one of `ok_codes`; otherwise the typed error of its exit code, with its
/// `error:` line as the message.
async fn json_child(
    opts: &super::DaemonOptions,
    args: &[&str],
    stdin: Stdio,
    ok_codes: &[i32],
) -> Result<String, super::error::DaemonError> {
    use super::error::DaemonError;
    let what = args.first().copied().unwrap_or("the tool");
    let mut cmd = tool_command(opts);
    cmd.args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|e| DaemonError::new(FailureKind::Internal, format!("starting {what}: {e}")))?;
    if out.status.code().is_some_and(|c| ok_codes.contains(&c)) {
        return Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string());
    }
    let kind = out
        .status
        .code()
        .and_then(FailureKind::from_exit_code)
        .unwrap_or(FailureKind::Internal);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{what} failed ({})", out.status));
    Err(DaemonError::new(kind, message))
}

async fn drive(
    shared: &Shared,
    iface: &InterfaceRef<Transaction>,
    op: &Operation,
    package: Option<File>,
) -> anyhow::Result<Outcome> {
    use anyhow::Context;
    let emitter = iface.signal_emitter();
    let mut cmd = tool_command(&shared.opts);
    cmd.arg("--progress-json")
        .args(op.args())
        .stdin(match package {
            Some(f) => Stdio::from(f),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The transaction outlives this daemon if it must: the journal and
        // `recover` make an interruption safe, but an interruption is not
        // wanted because a client or the daemon went away.
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", op.describe()))?;
    let mut stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;
    let report = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });

    let mut lines = BufReader::new(stderr).lines();
    let mut current: Option<String> = None;
    let mut error_line: Option<String> = None;
    while let Some(line) = lines
        .next_line()
        .await
        .context("reading the child's progress")?
    {
        match parse_child_line(&line) {
            None => {}
            Some(ChildLine::Step {
                index,
                total,
                title,
            }) => {
                if let Some(prev) = current.take() {
                    let _ = Transaction::task_end(emitter, &prev).await;
                }
                let pct = percent_at(index, total);
                {
                    let mut t = iface.get_mut().await;
                    t.current_task = title.clone();
                    t.percent = pct;
                    let _ = t.current_task_changed(emitter).await;
                    let _ = t.percent_changed(emitter).await;
                }
                let _ = Transaction::task_begin(emitter, &title).await;
                let _ = Transaction::percent_progress(emitter, &title, pct).await;
                current = Some(title);
            }
            Some(ChildLine::Message(text)) => {
                let _ = Transaction::message(emitter, &text).await;
            }
            Some(ChildLine::Error(text)) => error_line = Some(text),
        }
    }
    let status = child.wait().await.context("waiting for the child")?;
    let report = report.await.unwrap_or_default();
    if status.success() {
        if let Some(prev) = current.take() {
            let _ = Transaction::task_end(emitter, &prev).await;
        }
        let _ = Transaction::percent_progress(emitter, "Done", 100).await;
        return Ok(Outcome {
            success: true,
            kind: None,
            message: String::new(),
            report: report.trim_end().to_string(),
        });
    }
    let kind = status
        .code()
        .and_then(FailureKind::from_exit_code)
        .unwrap_or(FailureKind::Internal);
    let message = error_line.unwrap_or_else(|| match status.code() {
        Some(c) => format!("{} failed with exit code {c}", op.describe()),
        None => format!("{} was killed ({status})", op.describe()),
    });
    Ok(Outcome {
        success: false,
        kind: Some(kind),
        message,
        report: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_lines_parse() {
        assert_eq!(
            parse_child_line(
                r#"{"event":"step","index":2,"total":6,"title":"Creating a snapshot"}"#
            ),
            Some(ChildLine::Step {
                index: 2,
                total: 6,
                title: "Creating a snapshot".into()
            })
        );
        assert_eq!(
            parse_child_line(r#"{"event":"message","text":"snapshot 2 created"}"#),
            Some(ChildLine::Message("snapshot 2 created".into()))
        );
        assert_eq!(
            parse_child_line("error: applying: the kernel does not support livepatching"),
            Some(ChildLine::Error(
                "applying: the kernel does not support livepatching".into()
            ))
        );
        assert_eq!(
            parse_child_line(" WARN tlp::snapshot: something"),
            Some(ChildLine::Message(" WARN tlp::snapshot: something".into()))
        );
        assert_eq!(
            parse_child_line(r#"{"event":"step","index":"x"}"#),
            Some(ChildLine::Message(r#"{"event":"step","index":"x"}"#.into()))
        );
        assert_eq!(parse_child_line("  "), None);
    }

    #[test]
    fn percent_counts_finished_steps() {
        assert_eq!(percent_at(1, 6), 0);
        assert_eq!(percent_at(4, 8), 37);
        assert_eq!(percent_at(6, 6), 83);
        assert_eq!(percent_at(9, 6), 100);
        assert_eq!(percent_at(1, 0), 0);
    }

    #[test]
    fn child_arguments() {
        let a = Operation::Apply {
            package: "/tmp/x.rpm".into(),
            boot_only: true,
        };
        assert_eq!(
            a.args(),
            [
                "apply",
                "/dev/stdin",
                "--package-name=/tmp/x.rpm",
                "--boot-only",
                "--json"
            ]
        );
        assert_eq!(a.describe(), "apply /tmp/x.rpm (boot only)");
        let r = Operation::Rollback {
            snapshot: Some(3),
            boot_only: false,
        };
        assert_eq!(r.args(), ["rollback", "3", "--json"]);
        assert_eq!(Operation::Recover.args(), ["recover", "--json"]);
        let u = Operation::Update { boot_only: true };
        assert_eq!(u.args(), ["update", "--boot-only", "--json"]);
        assert_eq!(u.describe(), "update (boot only)");
        assert_eq!(u.kind(), "update");
        assert_eq!(
            Operation::Update { boot_only: false }.args(),
            ["update", "--json"]
        );
    }
}
