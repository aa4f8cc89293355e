//! Keys end to end, with the built `spiped`: `--fingerprint` and `--keygen`, the start-up warning for
//! a key file others can read, and reload on SIGHUP while real redis-benchmark load crosses the pipe
//! to a real redis-server, as the log, Redis's own counters and the systemd notifications show it.
//!
//! Layout:
//! - `fingerprint`: each fingerprint is the one its definition gives (derived here independently),
//!   printed in order; a missing file is exit 1 with one line.
//! - `keygen`: 32 bytes, mode 0600 under any umask, never over a file or link, the same fingerprint
//!   as `--fingerprint`; two keys differ.
//! - `permissions`: the warning naming the file, its mode and `chmod 600`, at start-up and from
//!   `--fingerprint`; none for a private file.
//! - `rig`: Redis behind a `-d` end whose key files the test rewrites and reloads, `-e` ends on
//!   chosen keys, a connection held open, Redis's writes held while a test's step runs.
//! - `benchmark`: redis-benchmark through the pipe, each run on a counter of its own: its failures
//!   and Redis's count of what arrived.
//! - `reload`: the same key and a failed reload under load (no failed request, no dropped
//!   connection), then a switch to a new key: live connections keep theirs, new ones need the new one.
//! - `rotation`: a `-d` end on two keys serving an `-e` end on each at once, refusing a third before
//!   Redis; the three-step rotation under load (two key files, and a key directory).
//! - `directory`: an `-e` end holds one key, from files or a key directory, at start and at reload;
//!   a directory's hidden files are not keys; an emptied one fails the reload.
//! - `notify`: `RELOADING=1` with `MONOTONIC_USEC=`, then `READY=1` with the keys in `STATUS=`.
//! - `stop`: a second SIGTERM in daemon mode removes the pid file and the unix socket.

mod support;

#[path = "keys/benchmark.rs"]
mod benchmark;
#[path = "keys/directory.rs"]
mod directory;
#[path = "keys/fingerprint.rs"]
mod fingerprint;
#[path = "keys/keygen.rs"]
mod keygen;
#[path = "keys/notify.rs"]
mod notify;
#[path = "keys/permissions.rs"]
mod permissions;
#[path = "keys/reload.rs"]
mod reload;
#[path = "keys/rig.rs"]
mod rig;
#[path = "keys/rotation.rs"]
mod rotation;
#[path = "keys/stop.rs"]
mod stop;

use std::process::Output;

/// A finished command's standard output.
fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's standard error, line by line.
fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}
