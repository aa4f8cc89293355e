//! Helpers for the end-to-end tests: the real `spiped` binary, a real redis-server, and small real
//! TCP servers, all on loopback. Nothing here is a mock: every byte crosses real sockets.
//!
//! Layout:
//! - `cmd`: [`SpipedCmd`] starts the built binary (or an older release's) in any mode (foreground,
//!   daemon mode with its pid file, a key on standard input, under a wrapper such as prlimit, extra
//!   environment) and returns a [`Spiped`]; [`run_spiped`] runs it to completion.
//! - `running`: [`Spiped`], a running daemon: its log, signals, exit, notifications; killed on drop.
//! - `notify`: the `NOTIFY_SOCKET` a started daemon reports `READY=1` and its status to.
//! - `wait`: [`eventually`], the one "poll until a deadline" loop, and the waits built on it.
//! - `ports`: [`free_port`], loopback ports no other caller in this process is handed.
//! - `servers`: echo and collecting TCP servers, and client-side transfer helpers.
//! - `redis`: a real redis-server and redis-cli.
//! - `keys`: key files with chosen contents and modes, and their fingerprints derived independently.
//! - `pipe`: an `-e`/`-d` pair in front of a target.
//! - `spipe`: the built `spipe` run to completion or in flight, its two checks (a clean end; exit 1 with
//!   one line), our `-d` in front of a service, and the services: slow echo, digest sink, speaker, silent.
//! - `http`: a plain HTTP GET over TCP or a unix socket.
//! - `prometheus`: `promtool check metrics`, and a real Prometheus server that scrapes and answers queries.
//! - `previous`: spiped of the previous protocol version (before parked connections), built once by
//!   scripts/build-previous, for the compatibility tests.
//! - `sshd`: a throwaway sshd on a loopback port with its own host and user keys, and a bounded runner.

// Each test binary compiles this module and uses a different subset of it, so an item one binary
// leaves unused is dead code in that binary only. Every item has a caller in some test, except three
// kept for tests written against them: connect_when_up, wait_unix and Spiped::start_with_stdin.
#![allow(dead_code)]

pub mod classic;
mod cmd;
pub mod http;
pub mod keys;
mod notify;
mod pipe;
mod ports;
pub mod previous;
pub mod prometheus;
mod redis;
mod running;
mod servers;
pub mod spipe;
pub mod sshd;
mod wait;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

// The same goes for the re-exports: each binary imports them all and uses a subset.
#[allow(unused_imports)]
pub use self::{
    cmd::{SpipedCmd, run_spiped},
    pipe::{Pipe, plain_addr},
    ports::free_port,
    redis::{Redis, redis_cli},
    running::Spiped,
    servers::{CollectServer, echo_server, echo_server_saying, echo_through, read_until_closed},
    wait::{connect_when_up, eventually, wait_for_log, wait_unix},
};

/// The binary under test, by its built path (Debian's classic spiped may be on PATH too).
pub fn spiped_bin() -> &'static str {
    env!("CARGO_BIN_EXE_spiped")
}

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spiped-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a 32-byte random key file, mode 0600.
pub fn key_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Deterministic pseudo-random bytes (xorshift), so large transfers need no stored data.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SHA-256 of some bytes, hex, for readable assertion failures on large transfers.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
