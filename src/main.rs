//! `spiped`: parse the command line, set up logging, build the configuration, run, map to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use spiped::cli::{Args, USAGE};
use spiped::config::Config;

fn main() -> ExitCode {
    let args = match Args::try_parse_from_args(std::env::args_os()) {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = spiped::logging::init(&args.log_level, args.syslog) {
        let _ = writeln!(io::stderr(), "spiped: {e}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(e) => return usage_error(&e.to_string()),
    };
    match spiped::app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics if standard error is gone.
            let _ = writeln!(io::stderr(), "spiped: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// spiped's behaviour for bad arguments: a one-line reason, the usage, exit 1.
fn usage_error(reason: &str) -> ExitCode {
    let line = reason.lines().next().unwrap_or_default().trim_start_matches("error: ");
    eprintln!("spiped: {line}");
    eprintln!("usage: {USAGE}");
    ExitCode::FAILURE
}
