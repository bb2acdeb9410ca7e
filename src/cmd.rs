//! The one way this project runs a subprocess.
//!
//! Every external tool (rpm, dracut, lsinitrd, snapper, chroot …) goes through
//! [`CommandRunExt`], so a failure always names the command line and carries the
//! tail of its stderr. Commands are built from argument vectors, never from a
//! shell string, and run with a cleared environment plus a fixed allow-list, so
//! nothing from the caller's environment leaks into a chroot.

use anyhow::{Context, Result, anyhow};
use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// How many bytes of stderr an error message keeps.
const STDERR_TAIL: usize = 2048;

/// The environment every subprocess gets; nothing else is passed through.
pub const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LC_ALL", "C"),
    ("LANG", "C"),
];

/// A new command with the base environment and nothing else.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    for (k, v) in BASE_ENV {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// The same, for the D-Bus daemon's asynchronous children. Besides the base
/// environment only the tool's own diagnostics switches pass through.
pub fn async_command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut c = command(program);
    for key in ["TLP_LOG", "FAILPOINTS"] {
        if let Some(v) = std::env::var_os(key) {
            c.env(key, v);
        }
    }
    tokio::process::Command::from(c)
}

/// Render a command line for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(&a);
        }
    }
    s
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    if text.len() <= STDERR_TAIL {
        return text.to_string();
    }
    let mut start = text.len() - STDERR_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

pub trait CommandRunExt {
    /// Run to completion, capturing stdout and stderr; fail unless it exits 0.
    fn run_capture(&mut self) -> Result<Output>;
    /// Run and return stdout as UTF-8 text.
    fn run_stdout(&mut self) -> Result<String> {
        let out = self.run_capture()?;
        String::from_utf8(out.stdout).map_err(|e| anyhow!("output is not UTF-8: {e}"))
    }
    /// Run for the side effect.
    fn run_ok(&mut self) -> Result<()> {
        self.run_capture().map(|_| ())
    }
}

impl CommandRunExt for Command {
    fn run_capture(&mut self) -> Result<Output> {
        let line = display(self);
        tracing::debug!(command = %line, "running");
        let start = std::time::Instant::now();
        let out = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("starting `{line}`"))?;
        // bench/run.sh splits an apply's steps by these.
        tracing::debug!(
            command = %line,
            elapsed_ms = start.elapsed().as_secs_f64() * 1000.0,
            "finished"
        );
        if out.status.success() {
            return Ok(out);
        }
        let status = match out.status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("killed by a signal ({:?})", out.status),
        };
        let err = tail(&out.stderr);
        let err = if err.is_empty() {
            tail(&out.stdout)
        } else {
            err
        };
        Err(anyhow!("`{line}` failed with {status}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_command_and_stderr() {
        let e = command("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run_ok()
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn environment_is_cleared() {
        // SAFETY-free: set in this process only for the child's benefit.
        let out = command("env").env("EXTRA", "1").run_stdout().unwrap();
        assert!(out.contains("PATH="));
        assert!(out.contains("EXTRA=1"));
        assert!(!out.contains("HOME="), "{out}");
    }

    #[test]
    fn long_stderr_is_cut_to_its_tail() {
        let long = "x".repeat(10_000);
        assert!(tail(long.as_bytes()).len() <= STDERR_TAIL + 4);
    }
}
