//! `spipe`: parse the command line, run one connection, map to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use spiped::spipe::cli::{Args, USAGE};
use spiped::spipe::{self, SpipeError};

fn main() -> ExitCode {
    let args = match Args::try_parse_from_args(std::env::args_os()) {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&spiped::cli::clap_reason(&e)),
    };
    match spipe::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(SpipeError::Usage(reason)) => usage_error(&reason),
        Err(e) => {
            // Not eprintln!, which panics if standard error is closed.
            let _ = writeln!(io::stderr(), "spipe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// spipe's behaviour for bad arguments, as spiped 1.6's: a one-line reason, the usage, exit 1.
fn usage_error(reason: &str) -> ExitCode {
    let _ = writeln!(io::stderr(), "spipe: {reason}\nusage: {USAGE}");
    ExitCode::FAILURE
}
