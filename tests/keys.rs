//! Keys end to end, with the built `spiped`: `--fingerprint` and `--keygen`, and the start-up warning
//! for a key file others can read.
//!
//! Layout:
//! - `fingerprint`: each fingerprint is the one its definition gives (derived here independently),
//!   printed in order; a missing file is exit 1 with one line.
//! - `keygen`: 32 bytes, mode 0600 under any umask, never over a file or link, the same fingerprint
//!   as `--fingerprint`; two keys differ.
//! - `permissions`: the warning naming the file, its mode and `chmod 600`, at start-up and from
//!   `--fingerprint`; none for a private file.

mod support;

#[path = "keys/fingerprint.rs"]
mod fingerprint;
#[path = "keys/keygen.rs"]
mod keygen;
#[path = "keys/permissions.rs"]
mod permissions;

use std::process::Output;

/// A finished command's standard output.
fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's standard error, line by line.
fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}
