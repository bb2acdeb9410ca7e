//! The command line, and what each command prints.

use crate::error::FailureKind;
use crate::system::{Progress, System};
use crate::{recover, status, transaction};
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "transactional-livepatch",
    version,
    about = "Apply kernel livepatches as one transaction on a btrfs snapshot root: what runs equals what boots",
    long_about = None
)]
pub struct Cli {
    /// The managed system's root, with /.snapshots and /var mounted below it as fstab does.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Where the running kernel's /sys and /proc are (for tests).
    #[arg(
        long,
        global = true,
        default_value = "/",
        value_name = "DIR",
        hide = true
    )]
    pub kernel_root: PathBuf,
    /// An extra configuration file, applied after the layered ones.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print progress as JSON lines on stderr (for the D-Bus daemon and scripts).
    #[arg(long, global = true)]
    pub progress_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install a livepatch package in a new snapshot, rebuild its initrd, load the
    /// patch into the running kernel and make the snapshot the default.
    Apply {
        /// The livepatch RPM.
        package: PathBuf,
        /// Only stage the patch for the next boot; leave the running kernel alone.
        #[arg(long)]
        boot_only: bool,
        /// Accept a package older than the same package in the default
        /// snapshot (downgrade a cumulative livepatch on purpose).
        #[arg(long)]
        allow_downgrade: bool,
        /// Print the result as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The package's name for the history when PACKAGE is a handle: the
        /// D-Bus daemon passes the file it opened as /dev/stdin and the path
        /// its caller gave here. A label only, never opened.
        #[arg(long, hide = true, value_name = "NAME")]
        package_name: Option<String>,
    },
    /// Return boot and the running kernel to the snapshot that was the default
    /// before the last apply (or to the named one).
    Rollback {
        /// Snapshot number to return to.
        snapshot: Option<u32>,
        /// Only change what boots next; leave the running kernel alone.
        #[arg(long)]
        boot_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the running kernel's livepatches, the default snapshot's, and any drift.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// List the transaction history.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Ask the package repositories (zypper's, in a temporary snapshot) for a
    /// newer livepatch for the running kernel. Exit status: 0 up to date, 100
    /// update available, anything else an error.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// `apply` the newer livepatch that `check` finds (downloaded and
    /// signature-checked by zypper). Up to date is success.
    Update {
        /// Only stage the patch for the next boot; leave the running kernel alone.
        #[arg(long)]
        boot_only: bool,
        /// A run of the timer: honour the `[update]` configuration (`enabled`,
        /// `policy`) and record the result in the transaction history.
        #[arg(long)]
        automatic: bool,
        #[arg(long)]
        json: bool,
    },
    /// Finish or undo an interrupted transaction.
    Recover {
        #[arg(long)]
        json: bool,
    },
    /// At boot: recover, then load any livepatch of the booted snapshot the initrd did not.
    BootCheck {
        #[arg(long)]
        json: bool,
    },
    /// Serve the D-Bus interface org.opensuse.TransactionalLivepatch1 on the
    /// system bus (started by bus activation).
    Daemon {
        /// Exit after this many seconds without a call or a running transaction (0: never).
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        idle_exit: u64,
    },
    /// Check a livepatch package as `apply` does before changing anything, and
    /// print what was learned (name, kernel release, modules, sha256, CVEs).
    Inspect {
        /// The livepatch RPM.
        package: PathBuf,
        /// Also judge it against the default snapshot as `apply` would (its
        /// trusted keys, installed kernels and packages) and say what it would
        /// replace or why it would be refused. Changes nothing.
        #[arg(long)]
        against_default: bool,
        #[arg(long)]
        json: bool,
    },
}

struct CliProgress {
    quiet: bool,
    json: bool,
    /// Start of the command: JSON events carry `elapsed_ms` since then.
    start: std::time::Instant,
}

impl CliProgress {
    fn elapsed_ms(&self) -> f64 {
        (self.start.elapsed().as_micros() as f64) / 1000.0
    }
}

impl Progress for CliProgress {
    fn step(&self, index: usize, total: usize, title: &str) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "step", "index": index, "total": total, "title": title, "elapsed_ms": self.elapsed_ms()})
            );
        } else if !self.quiet {
            eprintln!("[{index}/{total}] {title}");
        }
    }
    fn message(&self, text: &str) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"event": "message", "text": text, "elapsed_ms": self.elapsed_ms()})
            );
        } else if !self.quiet {
            eprintln!("      {text}");
        }
    }
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// `inspect --json`: the package facts, and with `--against-default` the
/// judgement against the default snapshot in `against_default`.
#[derive(serde::Serialize)]
struct InspectReport<'a> {
    #[serde(flatten)]
    package: &'a crate::package::PackageFacts,
    #[serde(skip_serializing_if = "Option::is_none")]
    against_default: Option<transaction::Preview>,
}

fn inspect(package: &std::path::Path, system: Option<&System>, json: bool) -> Result<()> {
    let file = std::fs::File::open(package).map_err(|e| {
        crate::error::failure(
            FailureKind::InvalidPackage,
            format!("cannot open {}: {e}", package.display()),
        )
    })?;
    let f = crate::package::inspect(&file)?;
    let preview = match system {
        Some(sys) => Some(transaction::preview(sys, &file, &f)?),
        None => None,
    };
    if json {
        return print_json(&InspectReport {
            package: &f,
            against_default: preview,
        });
    }
    let mut text = format!(
        "{}: livepatch package for kernel {}, {} bytes, sha256 {}{}\n",
        f.nevra,
        f.kernel_release,
        f.size,
        f.sha256,
        if f.signed { ", signed" } else { "" }
    );
    for m in &f.modules {
        text.push_str(&format!(
            "  module {} at {} ({} bytes)\n",
            m.name, m.path, m.size
        ));
    }
    if !f.cves.is_empty() {
        text.push_str(&format!("  fixes {}\n", f.cves.join(", ")));
    }
    if let Some(p) = preview {
        text.push_str(&format!(
            "against the default snapshot {}: signature {}",
            p.default_snapshot, p.signature
        ));
        if let Some(old) = &p.replaces_package {
            text.push_str(&format!("; replaces {} {old}", f.name));
        }
        if !p.replaces_livepatches.is_empty() {
            text.push_str(&format!(
                " (livepatches {})",
                p.replaces_livepatches.join(", ")
            ));
        }
        text.push_str(&match (&p.refusal, p.for_running_kernel) {
            (Some(r), _) => format!("; apply would refuse it: {}\n", r.message),
            (None, true) => "; can be applied live and at boot\n".to_string(),
            (None, false) => format!(
                "; for kernel {}, not the running {}: boot only\n",
                f.kernel_release, p.running_kernel
            ),
        });
    }
    emit(&text)
}

pub fn run(cli: Cli) -> Result<()> {
    let progress = CliProgress {
        quiet: cli.quiet,
        json: cli.progress_json,
        start: std::time::Instant::now(),
    };
    // Needs no managed system (no configuration is read) unless judged against it.
    if let Command::Inspect {
        package,
        json,
        against_default: false,
    } = &cli.command
    {
        return inspect(package, None, *json);
    }
    let sys = System::new(&cli.root, &cli.kernel_root, cli.config.as_deref())
        .map_err(|e| crate::error::failure(FailureKind::Usage, format!("{e:#}")))?;
    if let Command::Inspect { package, json, .. } = &cli.command {
        return inspect(package, Some(&sys), *json);
    }
    let kernel = System::real_kernel();
    match cli.command {
        Command::Apply {
            package,
            boot_only,
            allow_downgrade,
            json,
            package_name,
        } => {
            transaction::require_root()?;
            // Everything the transaction mounts stays in this process's own
            // namespace and disappears with it, even on SIGKILL.
            crate::mount::enter_private_namespace()?;
            let opts = transaction::ApplyOptions {
                boot_only,
                allow_downgrade,
                package_name,
            };
            let r = transaction::apply(&sys, &package, &opts, kernel, &progress)?;
            if json {
                print_json(&r)?;
            } else if r.live {
                println!(
                    "Applied {}: live now, and snapshot {} (the new default) boots with it.",
                    r.package, r.new_snapshot
                );
            } else {
                println!(
                    "Staged {} for the next boot: snapshot {} is the new default; the running kernel was not changed.",
                    r.package, r.new_snapshot
                );
            }
        }
        Command::Rollback {
            snapshot,
            boot_only,
            json,
        } => {
            let opts = transaction::RollbackOptions {
                target: snapshot,
                boot_only,
            };
            let r = transaction::rollback(&sys, &opts, kernel, &progress)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "Rolled back from snapshot {} to snapshot {}{}.",
                    r.from_snapshot,
                    r.to_snapshot,
                    if r.live {
                        " (boot and running kernel)"
                    } else {
                        " (boot only; the running kernel was not changed)"
                    }
                );
            }
        }
        Command::Status { json } => {
            let s = status::status(&sys)?;
            if json {
                print_json(&s)?;
            } else {
                emit(&status::render(&s))?;
            }
        }
        Command::List { json } => {
            let entries = crate::journal::Journal::open_readonly(&sys.root).entries()?;
            if json {
                print_json(&entries)?;
            } else if entries.is_empty() {
                println!("No transactions yet.");
            } else {
                let text: String = entries.iter().map(|e| status::describe(e) + "\n").collect();
                emit(&text)?;
            }
        }
        Command::Check { json } => {
            crate::mount::enter_private_namespace()?;
            let r = crate::update::check(&sys, &progress)?;
            if json {
                print_json(&r)?;
            } else {
                emit(&crate::update::render_check(&r))?;
            }
            if r.update_available {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                std::process::exit(crate::update::EXIT_UPDATE_AVAILABLE);
            }
        }
        Command::Update {
            boot_only,
            automatic,
            json,
        } => {
            crate::mount::enter_private_namespace()?;
            let opts = crate::update::UpdateOptions {
                boot_only,
                automatic,
            };
            let r = crate::update::update(&sys, &opts, kernel, &progress)?;
            if json {
                print_json(&r)?;
            } else {
                emit(&crate::update::render_update(&r))?;
            }
        }
        Command::Recover { json } => {
            let r = recover::recover(&sys, kernel, &progress)?;
            if json {
                print_json(&r)?;
            } else if r.actions.is_empty() && r.stray_snapshots_deleted.is_empty() {
                println!("Nothing to recover.");
            } else {
                for a in &r.actions {
                    println!(
                        "Transaction {}: {} ({}).",
                        a.transaction, a.action, a.detail
                    );
                }
                for n in &r.stray_snapshots_deleted {
                    println!("Deleted incomplete snapshot {n}.");
                }
            }
        }
        Command::Inspect { .. } => unreachable!("handled above"),
        Command::Daemon { idle_exit } => crate::dbus::serve(crate::dbus::DaemonOptions {
            root: cli.root.clone(),
            kernel_root: cli.kernel_root.clone(),
            config: cli.config.clone(),
            idle_exit: (idle_exit > 0).then(|| std::time::Duration::from_secs(idle_exit)),
        })?,
        Command::BootCheck { json } => {
            let r = recover::boot_check(&sys, kernel, &progress)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "Boot check: {} recovered, {} loaded as fallback, {} failed; {}.",
                    r.recover.actions.len(),
                    r.loaded.len(),
                    r.failed.len(),
                    if r.in_sync {
                        "the running livepatches equal the booted snapshot's"
                    } else {
                        "DRIFT between running and booted livepatches"
                    }
                );
            }
        }
    }
    Ok(())
}
