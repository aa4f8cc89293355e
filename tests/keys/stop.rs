//! The forced stop (a second SIGTERM while a connection keeps the daemon draining) in daemon mode
//! with a unix-socket source: the daemon leaves through its normal path, so its pid file and the
//! socket file it created are gone. (`tests/robustness.rs` checks the same stop with a TCP source:
//! the pid file, and the resets both sides see.)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{SpipedCmd, echo_server, free_port, key_file, scratch};

/// How long the stop may take, generously.
const WITHIN: Duration = Duration::from_secs(20);

#[test]
fn a_second_sigterm_removes_the_pid_file_and_the_unix_socket() {
    let dir = scratch("second-sigterm-unix");
    let key = key_file(&dir, "k");
    let key = key.to_str().unwrap();
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", echo_server());
    let _d = SpipedCmd::new(&dir, "d").args(["-d", "-s", &d_source, "-t", &target, "-k", key]).start();
    let socket = dir.join("e.sock");
    let mut e = SpipedCmd::new(&dir, "e")
        .args(["-e", "-s", socket.to_str().unwrap(), "-t", &d_source, "-k", key])
        .daemon()
        .start();
    let pid_file = e.pid_file().expect("daemon mode");
    assert!(pid_file.exists() && socket.exists(), "the pid file and the socket are there while it runs");

    let mut live = UnixStream::connect(&socket).unwrap();
    live.set_read_timeout(Some(WITHIN)).unwrap();
    let mut back = [0u8; 9];
    live.write_all(b"held open").and_then(|()| live.read_exact(&mut back)).unwrap();
    assert_eq!(&back, b"held open", "the echo answers through the pipe");

    e.signal(Signal::SIGTERM);
    e.wait_notified("STOPPING=1");
    assert!(e.is_running(), "the live connection keeps it draining:\n{}", e.log_text());
    e.signal(Signal::SIGTERM);
    e.wait_gone(WITHIN);
    assert!(!pid_file.exists(), "the pid file is removed after a forced stop:\n{}", e.log_text());
    assert!(!socket.exists(), "so is the unix socket it created:\n{}", e.log_text());
}
