//! `spiped`: parse the command line, set up logging, build the configuration, run, map to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use spiped::cli::{Action, Args, USAGE};
use spiped::config::Config;
use spiped::tunnel::Stopped;

fn main() -> ExitCode {
    let args = match Args::try_parse_from_args(std::env::args_os()) {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&spiped::cli::clap_reason(&e)),
    };
    match args.action() {
        Action::Run => {}
        Action::Fingerprint => return fingerprints(&args.key_files),
        Action::Keygen => return keygen(args.keygen.as_deref().expect("clap: --keygen takes a path")),
    }
    if let Err(e) = spiped::logging::init(&args.log_level, args.syslog, args.log_format.into()) {
        let _ = writeln!(io::stderr(), "spiped: {e}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(e) => return usage_error(&e.to_string()),
    };
    match spiped::app::run(config) {
        Ok(Stopped::Drained) => ExitCode::SUCCESS,
        // A second signal stopped it with connections still live: not a clean stop.
        Ok(Stopped::Aborted(_)) => ExitCode::FAILURE,
        Err(e) => {
            // Not eprintln!, which panics if standard error is gone.
            let _ = writeln!(io::stderr(), "spiped: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--fingerprint`: one line per key file, `<fingerprint>  <path>`, as sha256sum prints; the warnings a
/// daemon would log go to standard error.
fn fingerprints(paths: &[std::path::PathBuf]) -> ExitCode {
    for path in paths {
        match spiped::keys::load(path) {
            Ok(loaded) => {
                for warning in loaded.warnings(path) {
                    let _ = writeln!(io::stderr(), "spiped: warning: {warning}");
                }
                let _ = writeln!(io::stdout(), "{}  {}", loaded.psk.fingerprint(), path.display());
            }
            Err(e) => {
                let _ = writeln!(io::stderr(), "spiped: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// `--keygen`: a new key file, and its fingerprint in the same form as `--fingerprint`.
fn keygen(path: &std::path::Path) -> ExitCode {
    match spiped::keys::keygen(path) {
        Ok(fingerprint) => {
            let _ = writeln!(io::stdout(), "{fingerprint}  {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "spiped: {e}");
            ExitCode::FAILURE
        }
    }
}

/// spiped's behaviour for bad arguments: a one-line reason, the usage, exit 1.
fn usage_error(reason: &str) -> ExitCode {
    let line = reason.lines().next().unwrap_or_default().trim_start_matches("error: ");
    // Not eprintln!, which panics if standard error is closed.
    let _ = writeln!(io::stderr(), "spiped: {line}\nusage: {USAGE}");
    ExitCode::FAILURE
}

/// A start-up failure as one line: each error in the chain, outermost first, joined by ": ", leaving
/// out one whose text the line already holds. Many error types (std's, and ours that name their cause
/// in their own message) already include their source, so walking the chain as anyhow's `{:#}` does
/// would say the operating system's error twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
