//! Helpers for the end-to-end tests: the real `spiped` binary, a real redis-server, and small real
//! TCP servers, all on loopback. Nothing here is a mock: every byte crosses real sockets.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects, retrying until `deadline` passes: for servers that are starting.
pub fn connect_when_up(addr: &str, within: Duration) -> TcpStream {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{addr} never came up: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits until something accepts connections on a unix socket path.
pub fn wait_unix(path: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(Instant::now() < deadline, "{} never came up", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running spiped, killed when dropped. Its standard error goes to a file for assertions.
pub struct Spiped {
    pub child: Child,
    pub log: PathBuf,
}

impl Spiped {
    /// Starts `spiped -F <args>` and waits until `wait_for` (a TCP `host:port` or a unix path)
    /// accepts connections.
    pub fn start(dir: &Path, name: &str, args: &[&str], wait_for: &str) -> Spiped {
        Self::start_with_stdin(dir, name, args, wait_for, None)
    }

    /// As [`Spiped::start`], writing `stdin` to its standard input first.
    pub fn start_with_stdin(
        dir: &Path,
        name: &str,
        args: &[&str],
        wait_for: &str,
        stdin: Option<&[u8]>,
    ) -> Spiped {
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(spiped_bin())
            .arg("-F")
            .args(args)
            .args(["--log-level", "debug"])
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let mut daemon = Spiped { child, log };
        daemon.wait_listening(wait_for);
        daemon
    }

    fn wait_listening(&mut self, wait_for: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = if wait_for.starts_with('/') {
                std::os::unix::net::UnixStream::connect(wait_for).is_ok()
            } else {
                // A line in the log, not a probe connection: a probe would count as a connection.
                self.log_text().contains("listening")
            };
            if up {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("spiped exited with {status} before listening:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "spiped never listened:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal by number.
    pub fn signal(&self, signal: i32) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "spiped did not exit:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Spiped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` and optional standard input.
pub fn run_spiped(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(spiped_bin())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A real redis-server on loopback, stopped when dropped.
pub struct Redis {
    child: Child,
    pub port: u16,
    pub unix: Option<PathBuf>,
}

impl Redis {
    /// Starts redis-server on a free port (and a unix socket in `dir` if asked).
    pub fn start(dir: &Path, unix: bool) -> Redis {
        Self::start_on(dir, unix, free_port())
    }

    /// Starts redis-server on `port`.
    pub fn start_on(dir: &Path, unix: bool, port: u16) -> Redis {
        let sock = dir.join("redis.sock");
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1 ::1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        cmd.args(["--dir", dir.to_str().unwrap()]);
        if unix {
            cmd.args(["--unixsocket", sock.to_str().unwrap(), "--unixsocketperm", "700"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run scripts/test-all, which installs it");
        let redis = Redis { child, port, unix: unix.then_some(sock) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(&["-p", &port.to_string(), "ping"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// Redis's own count of connections it has accepted (each query adds its own connection).
    pub fn connections_received(&self) -> u64 {
        let info = redis_cli(&["-p", &self.port.to_string(), "info", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .expect("INFO stats has total_connections_received")
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs redis-cli and returns its standard output.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().expect("redis-cli must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real TCP server that reads each connection to its end, then writes back what it read (optionally
/// transformed) and closes: the shape of a request after a half-close. Records how each read ended.
pub struct CollectServer {
    pub port: u16,
    pub outcomes: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
}

impl CollectServer {
    pub fn start() -> CollectServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, outcomes) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let result = conn.read_to_end(&mut got).map(|_| got);
                    if let Ok(data) = &result {
                        let _ = conn.write_all(data);
                    }
                    let _ = tx.send(result);
                });
            }
        });
        CollectServer { port, outcomes }
    }
}

/// A real TCP echo server: writes back every byte as it arrives, half-closes when the client does.
pub fn echo_server() -> u16 {
    echo_server_saying(b"")
}

/// [`echo_server`] that first sends `greeting` on each connection, as a service that speaks first
/// does.
pub fn echo_server_saying(greeting: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = conn.try_clone().unwrap();
                let mut writer = conn;
                if writer.write_all(greeting).is_ok() && io::copy(&mut reader, &mut writer).is_ok() {
                    let _ = writer.shutdown(Shutdown::Write);
                }
            });
        }
    });
    port
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

/// Sends `data` through `stream` while reading the echo on another thread; returns what came back.
pub fn echo_through(mut stream: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut reader = stream.try_clone().unwrap();
    let back = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).map(|_| got)
    });
    stream.write_all(data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    back.join().unwrap().expect("the echo ends cleanly")
}

/// SHA-256 of some bytes, hex, for readable assertion failures on large transfers.
pub fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// An `-e`/`-d` pair on loopback in front of `target`: clients connect to `e_source`.
pub struct Pipe {
    pub d: Spiped,
    pub e: Spiped,
    /// The -e end's plaintext source, as spiped writes it.
    pub e_source: String,
    /// The -d end's encrypted source.
    pub d_source: String,
}

impl Pipe {
    /// Starts both ends with TCP sources on free loopback ports.
    pub fn start(dir: &Path, key: &Path, target: &str, d_extra: &[&str], e_extra: &[&str]) -> Pipe {
        let d_source = format!("[127.0.0.1]:{}", free_port());
        let e_source = format!("[127.0.0.1]:{}", free_port());
        Self::start_at(dir, key, target, &d_source, &e_source, d_extra, e_extra)
    }

    /// Starts both ends on the given sources.
    pub fn start_at(
        dir: &Path,
        key: &Path,
        target: &str,
        d_source: &str,
        e_source: &str,
        d_extra: &[&str],
        e_extra: &[&str],
    ) -> Pipe {
        let key = key.to_str().unwrap();
        let d_args = [&["-d", "-s", d_source, "-t", target, "-k", key][..], d_extra].concat();
        let d = Spiped::start(dir, "d", &d_args, d_source);
        let e_args = [&["-e", "-s", e_source, "-t", d_source, "-k", key][..], e_extra].concat();
        let e = Spiped::start(dir, "e", &e_args, e_source);
        Pipe { d, e, e_source: e_source.into(), d_source: d_source.into() }
    }

    /// The -e end's source as `host:port` for std's connect.
    pub fn e_addr(&self) -> String {
        plain_addr(&self.e_source)
    }

    pub fn d_addr(&self) -> String {
        plain_addr(&self.d_source)
    }
}

/// `[127.0.0.1]:80` -> `127.0.0.1:80`; `[::1]:80` stays as it is.
pub fn plain_addr(spiped_addr: &str) -> String {
    match spiped_addr.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, port)) if !ip.contains(':') => format!("{ip}:{port}"),
        _ => spiped_addr.to_string(),
    }
}

/// Waits until the log holds `needle`.
pub fn wait_for_log(daemon: &Spiped, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon.log_text().contains(needle) {
        assert!(Instant::now() < deadline, "log never said {needle:?}:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads until the peer closes; `Ok` with what arrived, or the error that ended it. A read timeout
/// guards against a test hanging forever if the daemon never closes.
pub fn read_until_closed(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut got = Vec::new();
    stream.read_to_end(&mut got).map(|_| got)
}
