//! transactional-livepatch: thin entry point. Parse, run, print the error
//! chain on one line, exit with the code of its typed root cause.

use clap::Parser;

fn main() {
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TLP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // No colour codes in the journal or in the daemon's captured stderr.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    let cli = tlp::cli::Cli::parse();
    if let Err(e) = tlp::cli::run(cli) {
        let kind = tlp::error::kind_of(&e);
        let line = format!("{e:#}").replace('\n', " / ");
        eprintln!("error: {line}");
        std::process::exit(kind.exit_code());
    }
}
