//! The client side of the scenarios: redis-cli through a pipe, Redis's own counters, a raw client
//! that expects to be refused, and external programs run with a bound.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ends::Pair;
use crate::support::{Redis, read_until_closed, redis_cli};

/// A PING in Redis's protocol, as a raw client sends it.
pub const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// redis-cli through the pair's `-e` end.
pub fn cli(pair: &Pair, args: &[&str]) -> String {
    redis_cli(&[&["-h", "127.0.0.1", "-p", &pair.e_port()][..], args].concat())
}

/// The pair's target as spiped writes it: the Redis on loopback.
pub fn redis_target(redis: &Redis) -> String {
    format!("[127.0.0.1]:{}", redis.port)
}

/// How many times Redis has run `command` (lower case), from its own `INFO commandstats`.
pub fn calls(redis: &Redis, command: &str) -> u64 {
    let info = redis_cli(&["-p", &redis.port.to_string(), "info", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().and_then(|n| n.parse().ok()).expect("calls=N,"))
}

/// Connects to `addr`, sends a PING and reads until the connection ends: it must end without a
/// byte of reply (cleanly or with a reset), since the pipe behind `addr` must fail.
///
/// # Panics
/// When anything comes back.
pub fn expect_refused(addr: &str, what: &str) {
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{what}: cannot connect: {e}"));
    // The end may already have closed it: a failed write is as good as a close.
    let _ = conn.write_all(PING);
    match read_until_closed(&mut conn) {
        Ok(got) => assert!(got.is_empty(), "{what}: {} bytes came back: {got:?}", got.len()),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "{what}: not closed within 60 s"),
    }
}

/// Sends `request` on `conn` and reads one reply line (up to and including `\r\n`).
///
/// # Errors
/// The socket's error, or `UnexpectedEof` when the connection ends before the line does.
pub fn request_line(conn: &mut TcpStream, request: &[u8]) -> io::Result<String> {
    conn.write_all(request)?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if conn.read(&mut byte)? == 0 {
            let cut = format!("the reply was cut after {:?}", String::from_utf8_lossy(&line));
            return Err(io::Error::new(ErrorKind::UnexpectedEof, cut));
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Sends `data` to `addr` and half-closes, while reading what comes back on another thread until the
/// peer's end of stream; returns what came back.
///
/// # Panics
/// When any step fails: the message shows `logs()`, the ends' logs.
pub fn echo_round_trip(addr: &str, data: &[u8], logs: &dyn Fn() -> String) -> Vec<u8> {
    let explain = |step: &str, e: io::Error| -> ! { panic!("{step}: {e}\n{}", logs()) };
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| explain("connect", e));
    let mut reader = conn.try_clone().unwrap_or_else(|e| explain("clone the socket", e));
    let back = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    let sent = conn.write_all(data).and_then(|()| conn.shutdown(Shutdown::Write));
    // A failed send leaves the reader to report how the connection ended, which says more.
    let back = back.join().expect("the reading thread does not panic");
    match (sent, back) {
        (Ok(()), Ok(got)) => got,
        (_, Err(e)) => explain("read the echo", e),
        (Err(e), Ok(got)) => explain(&format!("send (after {} bytes came back)", got.len()), e),
    }
}

/// Runs `cmd` to its end with its output captured, failing the test if it runs longer than `within`
/// (it is killed then).
pub fn output_within(cmd: &mut Command, within: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    // A thread owns the child and its pipes; the test waits for its answer with a bound.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{cmd:?}: {e}")),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("{cmd:?} still running after {within:?}")
        }
    }
}
