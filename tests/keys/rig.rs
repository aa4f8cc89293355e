//! What the reload tests share: a real Redis behind a `-d` end whose key files the test rewrites and
//! reloads, `-e` ends each with a key file of its own, a raw Redis connection held open through the
//! pipe, and benchmarks held mid-run while a test's step runs.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::benchmark::{Benchmark, CLIENTS};
use crate::support::keys::write_key;
use crate::support::{
    Redis, Spiped, SpipedCmd, eventually, free_port, plain_addr, read_until_closed, redis_cli,
};

/// A PING in Redis's protocol, as a raw client sends it.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// Redis's answer to it.
const PONG: &[u8] = b"+PONG\r\n";

/// How long a reload, an answer through the pipe or a refusal may take, generously.
pub const WITHIN: Duration = Duration::from_secs(30);

/// How long Redis holds a benchmark's requests at most: far longer than a test's reloads take, so the
/// test's `CLIENT UNPAUSE` is what ends the pause.
const PAUSE_MS: &str = "60000";

/// What the `-d` end logs when a reload has put a set in force.
const RELOADED: &str = "reloaded: new connections use these keys";

/// What it logs when a reload failed and the set in force stays.
const RELOAD_FAILED: &str = "reload failed, the keys in force are kept";

/// Redis on loopback and a `-d` end in front of it.
pub struct Rig {
    /// The test's scratch directory: key files, logs.
    pub dir: PathBuf,
    /// The service behind the pipe, whose own counters say what reached it.
    pub redis: Redis,
    /// The decrypting end, reloaded by the test.
    pub d: Spiped,
    /// Where the `-d` end listens, as spiped writes it: the `-e` ends' target.
    pub d_source: String,
}

/// How a reload ended, from the end's log.
#[derive(Debug)]
pub enum Reload {
    /// The new set is in force: the log line, which names the keys' fingerprints.
    Took(String),
    /// It failed and the old set stays: the log line, which says why.
    Failed(String),
}

impl Reload {
    /// The log line of a reload that took.
    ///
    /// # Panics
    /// When it failed: `what` names the reload.
    pub fn took(self, what: &str) -> String {
        match self {
            Reload::Took(line) => line,
            Reload::Failed(line) => panic!("{what} failed: {line}"),
        }
    }

    /// The log line of a reload that failed.
    ///
    /// # Panics
    /// When it took: `what` names the reload.
    pub fn failed(self, what: &str) -> String {
        match self {
            Reload::Failed(line) => line,
            Reload::Took(line) => panic!("{what} took: {line}"),
        }
    }
}

impl Rig {
    /// Starts Redis and a `-d` end in front of it with `-k` each of `keys`, its files in `dir`.
    pub fn start(dir: &Path, keys: &[&Path]) -> Rig {
        let dir = dir.to_path_buf();
        let redis = Redis::start(&dir, false);
        let d_source = format!("[127.0.0.1]:{}", free_port());
        let target = format!("[127.0.0.1]:{}", redis.port);
        let mut args = vec!["-d", "-s", &d_source, "-t", &target];
        for key in keys {
            args.extend(["-k", key.to_str().unwrap()]);
        }
        let d = SpipedCmd::new(&dir, "d").args(&args).start();
        Rig { dir, redis, d, d_source }
    }

    /// Writes `contents` as the private key file `name` in the test's directory.
    pub fn write_key(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        write_key(&path, contents, 0o600);
        path
    }

    /// Starts an `-e` end named `name` in front of the `-d` end with the key file `key`; returns it
    /// and its address for clients.
    pub fn e_end(&self, name: &str, key: &Path) -> (Spiped, String) {
        let source = format!("[127.0.0.1]:{}", free_port());
        let e = SpipedCmd::new(&self.dir, name)
            .args(["-e", "-s", &source, "-t", &self.d_source, "-k", key.to_str().unwrap()])
            .start();
        (e, plain_addr(&source))
    }

    /// Reloads the `-d` end ([`reload`]).
    pub fn reload(&self) -> Reload {
        reload(&self.d)
    }

    /// Runs `step` while benchmarks through the `-e` ends in `runs` (each an address and whether it
    /// keeps its connections, [`Benchmark::start`]) are held mid-run ([`Rig::pause`]), all at once,
    /// then lets them finish and asserts that none of their requests failed.
    pub fn under_held_benchmarks(&self, runs: &[(&str, bool)], requests: u32, step: impl FnOnce()) {
        self.pause();
        let benches: Vec<Benchmark> = runs
            .iter()
            .map(|&(e_addr, keepalive)| Benchmark::start(self, e_addr, keepalive, requests))
            .collect();
        let expected = CLIENTS * benches.len() as u64;
        eventually("each of the benchmarks' connections has an INCR held by Redis", WITHIN, || {
            match self.blocked_clients()? {
                held if held == expected => Ok(()),
                held => Err(format!("{held} of {expected}")),
            }
        });
        step();
        for bench in &benches {
            assert_eq!(bench.ran(self), 0, "the benchmarks were held while the test's step ran");
        }
        self.unpause();
        for bench in benches {
            bench.assert_no_failure(self);
        }
    }

    /// Holds every write from now on: Redis's `CLIENT PAUSE WRITE`. A benchmark's INCRs then wait
    /// with a request in flight through the pipe on each of its connections, whatever the machine's
    /// speed, until [`Rig::unpause`] lets them all go (with `-k 0`, all but the first requests on new
    /// connections, made after the unpause). Reads (PING, GET, INFO) are still answered.
    fn pause(&self) {
        assert_eq!(self.redis_cli(&["client", "pause", PAUSE_MS, "write"]).trim(), "OK");
    }

    /// Ends [`Rig::pause`].
    fn unpause(&self) {
        assert_eq!(self.redis_cli(&["client", "unpause"]).trim(), "OK");
    }

    /// How many clients Redis holds blocked now: under [`Rig::pause`], the connections whose INCR
    /// waits.
    ///
    /// # Errors
    /// When INFO's answer has no count (Redis is gone).
    fn blocked_clients(&self) -> Result<u64, String> {
        let info = self.redis_cli(&["info", "clients"]);
        info.lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no blocked_clients in {info:?}"))
    }

    /// Runs `redis-cli` against Redis directly, not through the pipe.
    pub fn redis_cli(&self, args: &[&str]) -> String {
        redis_cli(&[&["-p", &self.redis.port.to_string()][..], args].concat())
    }

    /// Asserts that a new connection through `e_addr` is refused (it ends without a byte of reply)
    /// and that Redis never sees it: its count of accepted connections grows by exactly one, the
    /// connection of the query that reads it.
    pub fn assert_refused_before_redis(&self, e_addr: &str, what: &str) {
        let before = self.redis.connections_received();
        let mut conn = TcpStream::connect(e_addr).unwrap_or_else(|e| panic!("{what}: cannot connect: {e}"));
        // The end may already have closed it: a failed write is as good as a close.
        let _ = conn.write_all(PING);
        match read_until_closed(&mut conn) {
            Ok(got) => assert!(got.is_empty(), "{what}: {} bytes came back: {got:?}", got.len()),
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{what}: not closed within 60 s"),
        }
        let after = self.redis.connections_received();
        assert_eq!(after, before + 1, "{what}: Redis accepted no connection but the counting query's");
    }
}

/// Sends SIGHUP to `end` and waits for its log to say how that reload ended. One at a time: signals
/// sent before the daemon has taken the last one may be merged into one reload.
pub fn reload(end: &Spiped) -> Reload {
    let before = reload_lines(end).len();
    end.signal(nix::sys::signal::Signal::SIGHUP);
    let line =
        eventually("the end logs the reload's outcome", WITHIN, || match reload_lines(end).get(before) {
            Some(line) => Ok(line.clone()),
            None => Err(format!("{before} reloads logged so far; the log:\n{}", end.log_text())),
        });
    match line.contains(RELOADED) {
        true => Reload::Took(line),
        false => Reload::Failed(line),
    }
}

/// Every reload outcome `end` has logged, in order.
fn reload_lines(end: &Spiped) -> Vec<String> {
    let log = end.log_text();
    log.lines().filter(|l| l.contains(RELOADED) || l.contains(RELOAD_FAILED)).map(str::to_string).collect()
}

/// A raw Redis connection through the pipe, held open across reloads.
pub struct Live(TcpStream);

impl Live {
    /// Connects through `e_addr` and checks that Redis answers a PING.
    pub fn open(e_addr: &str) -> Live {
        let conn = TcpStream::connect(e_addr).unwrap_or_else(|e| panic!("cannot connect to {e_addr}: {e}"));
        conn.set_read_timeout(Some(WITHIN)).unwrap();
        let mut live = Live(conn);
        live.assert_answers("the new connection");
        live
    }

    /// Asserts that Redis answers a PING on this connection.
    pub fn assert_answers(&mut self, when: &str) {
        let mut reply = [0u8; PONG.len()];
        let answered = self.0.write_all(PING).and_then(|()| self.0.read_exact(&mut reply));
        assert!(answered.is_ok(), "{when}: the live connection failed: {answered:?}");
        assert_eq!(&reply, PONG, "{when}: {:?}", String::from_utf8_lossy(&reply));
    }
}
