//! Waiting for something to become true: one polling loop with a deadline, [`eventually`], and the
//! waits the tests share, built on it.

use std::fmt::Display;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Spiped;

/// How long [`eventually`] sleeps between two attempts.
const POLL: Duration = Duration::from_millis(20);

/// Calls `attempt` until it returns `Ok`, sleeping briefly between calls, and returns the value.
///
/// # Panics
/// When `within` has passed and the last attempt still failed: the message names `what` and shows
/// the last observation (the `Err` value), so a timeout says what was seen, not only that it was late.
pub fn eventually<T, E: Display>(
    what: &str,
    within: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last observation: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Connects, retrying until `within` passes: for servers that are starting.
pub fn connect_when_up(addr: &str, within: Duration) -> TcpStream {
    eventually(&format!("{addr} comes up"), within, || TcpStream::connect(addr))
}

/// Waits until something accepts connections on a unix socket path.
pub fn wait_unix(path: &Path, within: Duration) {
    eventually(&format!("{} comes up", path.display()), within, || {
        std::os::unix::net::UnixStream::connect(path).map(drop)
    });
}

/// Waits until the daemon's log holds `needle`.
pub fn wait_for_log(daemon: &Spiped, needle: &str) {
    eventually(&format!("the log says {needle:?}"), Duration::from_secs(20), || {
        let log = daemon.log_text();
        if log.contains(needle) { Ok(()) } else { Err(format!("the log so far:\n{log}")) }
    });
}
