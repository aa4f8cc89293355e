//! `spiped`: the daemon's command line arrives with the daemon milestone (issue 3). Until then this
//! binary reports its version and says so, rather than pretending to forward anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    let version = env!("CARGO_PKG_VERSION");
    match std::env::args().nth(1).as_deref() {
        Some("-v" | "--version") => {
            println!("spiped-rs {version}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("spiped-rs {version}: the protocol core is built; the daemon is not yet.");
            eprintln!("Try `cargo run --release --example demo` for an in-memory demonstration.");
            ExitCode::from(1)
        }
    }
}
