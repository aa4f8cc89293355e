//! Floods at the `-d` end of the built `spiped`, run at its defaults (`-n 100`, `-o 5`), while a
//! legitimate client keeps working through an `-e` end in front of it: bursts and streams of silent
//! connections, connections that send the preamble and stall, and garbage. Every legitimate
//! connection must succeed (the `-e` end's own `-o` turns a lockout into a failure; nothing here
//! asserts how long anything takes), and Redis behind the `-d` end must see no flood peer at all.
//!
//! A storm of legitimate connections larger than the cap on unproven ones all gets through.
//!
//! And the memory a stalled reader can pin: connections whose far end has stopped reading, in each
//! direction, may cost each end of the pipe at most 256 KiB apiece.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use spiped::proto::native::PREAMBLE;
use support::*;

/// Legitimate connections made, one after another, during each flood.
const LEGIT: usize = 10;
/// A guard against a hang, far beyond the `-e` end's `-o 5`: a read still waiting after this fails.
const GUARD: Duration = Duration::from_secs(30);
/// Silent connections opened at once in the burst: the size of issue 11's goal.
const BURST: usize = 4_000;
/// New connections a second in the sustained floods that hold a slot: five times the 40 a second
/// that once locked every client out.
const RATE: usize = 200;
/// New connections a second in the garbage flood: each costs the daemon only a read and a close.
const GARBAGE_RATE: usize = 1_000;
/// How long each sustained flood lasts.
const FLOOD_FOR: Duration = Duration::from_secs(10);

/// Tests here run one at a time: each is about what a daemon can take, and two at once on a small
/// machine would measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> MutexGuard<'static, ()> {
    // A test that failed while holding the turn has been reported already; the next may go on.
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_burst_of_silent_connections_locks_no_client_out() {
    let _turn = turn();
    let mut scene = Scene::start("silent-burst");
    let flood = Flood::burst(&scene.pipe.d_addr(), BURST, Payload::Silent);
    scene.legit_clients_all_succeed(&flood, Duration::ZERO);
}

#[test]
fn a_sustained_flood_of_silent_connections_locks_no_client_out() {
    let _turn = turn();
    let mut scene = Scene::start("silent-stream");
    let flood = Flood::sustained(&scene.pipe.d_addr(), Payload::Silent, RATE);
    scene.legit_clients_all_succeed(&flood, FLOOD_FOR / LEGIT as u32);
}

#[test]
fn a_flood_of_stalled_preambles_locks_no_client_out() {
    let _turn = turn();
    let mut scene = Scene::start("preamble-stream");
    let flood = Flood::sustained(&scene.pipe.d_addr(), Payload::Preamble, RATE);
    scene.legit_clients_all_succeed(&flood, FLOOD_FOR / LEGIT as u32);
}

#[test]
fn a_garbage_flood_locks_no_client_out() {
    let _turn = turn();
    let mut scene = Scene::start("garbage-stream");
    let flood = Flood::sustained(&scene.pipe.d_addr(), Payload::Garbage, GARBAGE_RATE);
    scene.legit_clients_all_succeed(&flood, FLOOD_FOR / LEGIT as u32);
}

/// Redis behind an `-e`/`-d` pair at the daemon's defaults.
struct Scene {
    /// Which flood, for the figures printed.
    name: &'static str,
    /// The protected service; stopped on drop.
    redis: Redis,
    /// The pair in front of it; killed on drop.
    pipe: Pipe,
    /// Redis's connection count before any flood peer or client came.
    connections_before: u64,
}

impl Scene {
    fn start(name: &'static str) -> Scene {
        raise_fd_limit();
        let dir = scratch(name);
        let redis = Redis::start(&dir, false);
        let key = key_file(&dir, "k");
        let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &[], &[]);
        let connections_before = redis.connections_received();
        Scene { name, redis, pipe, connections_before }
    }

    /// Makes [`LEGIT`] PINGs through the pair, one after another with `pause` between them, while
    /// `flood` goes on; asserts every one was answered and Redis saw no other connection.
    fn legit_clients_all_succeed(&mut self, flood: &Flood, pause: Duration) {
        let mut times = Vec::new();
        let mut failures = Vec::new();
        for i in 0..LEGIT {
            if i > 0 {
                thread::sleep(pause);
            }
            match ping(&self.pipe.e_addr()) {
                Ok(took) => times.push(took),
                Err(e) => failures.push(format!("PING {i}: {e}")),
            }
        }
        let (opened, failed) =
            (flood.counts.opened.load(Ordering::Relaxed), flood.counts.failed.load(Ordering::Relaxed));
        times.sort_unstable();
        let median = times.get(times.len() / 2).map_or(String::from("-"), |t| format!("{t:.1?}"));
        let slowest = times.last().map_or(String::from("-"), |t| format!("{t:.1?}"));
        let answered = times.len();
        println!("{}: {opened} flood connections open ({failed} could not connect)", self.name);
        println!("  {answered} of {LEGIT} PINGs answered, median {median}, slowest {slowest}");
        for failure in &failures {
            println!("  {failure}");
        }
        assert!(failures.is_empty(), "{}: legitimate clients failed:\n{}", self.name, failures.join("\n"));
        // Our own INFO query is one more connection; flood peers must be none.
        let reached = self.redis.connections_received() - self.connections_before - 1;
        assert_eq!(reached, LEGIT as u64, "{}: Redis saw connections besides the PINGs", self.name);
        assert!(self.pipe.d.is_running(), "{}: the -d end died:\n{}", self.name, self.pipe.d.log_text());
    }
}

/// One PING through the `-e` end at `addr` on a fresh connection; how long it took to connect and
/// hear `+PONG`, or how it failed.
fn ping(addr: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let failed = |what: &str, e: io::Error| format!("{what} failed after {:.1?}: {e}", started.elapsed());
    let mut conn = TcpStream::connect(addr).map_err(|e| failed("connect", e))?;
    conn.set_read_timeout(Some(GUARD)).map_err(|e| failed("set_read_timeout", e))?;
    conn.write_all(b"*1\r\n$4\r\nPING\r\n").map_err(|e| failed("write", e))?;
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        match conn.read(&mut byte) {
            Ok(0) => return Err(format!("closed after {:.1?} with {reply:?}", started.elapsed())),
            Ok(_) => reply.push(byte[0]),
            Err(e) => return Err(failed("read", e)),
        }
    }
    if reply != b"+PONG\r\n" {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&reply)));
    }
    Ok(started.elapsed())
}

/// What each flood connection sends before it goes quiet, its socket held open.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// Nothing.
    Silent,
    /// The native preamble, so the `-d` end waits for message 1.
    Preamble,
    /// A kilobyte of random bytes.
    Garbage,
}

impl Payload {
    fn bytes(self) -> Vec<u8> {
        match self {
            Payload::Silent => Vec::new(),
            Payload::Preamble => PREAMBLE.to_vec(),
            Payload::Garbage => {
                let mut garbage = vec![0u8; 1024];
                rand::fill(&mut garbage[..]);
                garbage
            }
        }
    }
}

/// Connections opened against a `-d` end, each held open until the flood is dropped. Each is a
/// task on the flood's own runtime, so a connection the daemon is slow to complete never holds up
/// the next: the flood keeps its pace whatever the daemon's listen backlog.
struct Flood {
    /// Runs the connections; dropping it closes them all.
    runtime: Option<tokio::runtime::Runtime>,
    /// Connections launched, opened (connected and payload sent) and failed so far.
    counts: Arc<Counts>,
}

/// How a flood is going.
#[derive(Debug, Default)]
struct Counts {
    /// Connection attempts started.
    launched: AtomicUsize,
    /// Connected and sent their payload.
    opened: AtomicUsize,
    /// Refused, reset, or not connected within [`GUARD`].
    failed: AtomicUsize,
}

impl Flood {
    fn new() -> Flood {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        Flood { runtime: Some(runtime), counts: Arc::default() }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until the flood is dropped")
    }

    /// Opens `n` connections at once; returns when every one has connected or failed.
    fn burst(addr: &str, n: usize, payload: Payload) -> Flood {
        let flood = Flood::new();
        let addr: SocketAddr = addr.parse().unwrap();
        for _ in 0..n {
            flood.runtime().spawn(hold(addr, payload, flood.counts.clone()));
        }
        let counts = &flood.counts;
        while counts.opened.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < n {
            thread::sleep(Duration::from_millis(10));
        }
        flood
    }

    /// Opens `rate` connections a second for [`FLOOD_FOR`]; returns once the first second's worth
    /// has been launched.
    fn sustained(addr: &str, payload: Payload, rate: usize) -> Flood {
        let flood = Flood::new();
        let addr: SocketAddr = addr.parse().unwrap();
        let counts = flood.counts.clone();
        flood.runtime().spawn(async move {
            let started = tokio::time::Instant::now();
            for i in 0..rate * FLOOD_FOR.as_secs() as usize {
                tokio::time::sleep_until(started + Duration::from_secs(1) * i as u32 / rate as u32).await;
                tokio::spawn(hold(addr, payload, counts.clone()));
            }
        });
        while flood.counts.launched.load(Ordering::Relaxed) < rate {
            thread::sleep(Duration::from_millis(10));
        }
        flood
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background(); // every held connection closes
        }
    }
}

/// One flood connection: connects, sends `payload`, and holds the socket open for ever.
async fn hold(addr: SocketAddr, payload: Payload, counts: Arc<Counts>) {
    use tokio::io::AsyncWriteExt;
    counts.launched.fetch_add(1, Ordering::Relaxed);
    let connected = tokio::time::timeout(GUARD, tokio::net::TcpStream::connect(addr)).await;
    let Ok(Ok(mut conn)) = connected else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if conn.write_all(&payload.bytes()).await.is_err() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.opened.fetch_add(1, Ordering::Relaxed);
    // Held until the flood's runtime shuts down, dropping this task and the socket with it.
    std::future::pending::<()>().await;
    drop(conn);
}

/// Raises this process's soft limit on open files to its hard limit, for the thousands of flood
/// connections; the daemons started afterwards inherit it.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit up to the hard limit");
}

/// Legitimate connections opened at once in the reconnect storm.
const STORM: usize = 3_000;

/// The cap on unproven connections must not turn on legitimate ones: a storm of clients reconnecting
/// at once through an `-e` end, more than the cap, keeps the `-d` end busy with handshakes whose
/// hellos are all in, and every one of them must reach the service. (It once evicted hundreds.)
#[test]
fn a_storm_of_legitimate_connections_larger_than_the_cap_all_get_through() {
    let _turn = turn();
    raise_fd_limit();
    let dir = scratch("storm");
    let key = key_file(&dir, "k");
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("[127.0.0.1]:{}", sink.local_addr().unwrap().port());
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let held = thread::spawn(move || {
        let mut held = Vec::new();
        for conn in sink.incoming().take(STORM) {
            held.push(conn.expect("accepted"));
            counter.fetch_add(1, Ordering::Relaxed);
        }
        held
    });
    let pipe = Pipe::start(&dir, &key, &target, &["-n", "0"], &["-n", "0"]);
    let clients: Vec<TcpStream> = (0..STORM)
        .map(|_| {
            let mut conn = TcpStream::connect(pipe.e_addr()).expect("the -e end accepts");
            conn.write_all(b"x").expect("a first byte");
            conn
        })
        .collect();
    eventually("every connection of the storm reaches the service", GUARD, || {
        match reached.load(Ordering::Relaxed) {
            n if n == STORM => Ok(()),
            n => Err(format!("{n} of {STORM}; the -d end's log:\n{}", tail(&pipe.d.log_text()))),
        }
    });
    drop(clients);
    drop(held.join().expect("the sink thread"));
}

/// The last lines of a log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Connections stalled at once in the memory tests.
const STALLED: usize = 32;
/// Most memory a stalled connection may pin at each end.
const STALLED_BOUND_KIB: u64 = 256;
/// A writer that has moved nothing for this long is blocked: everything between it and the
/// reader that stopped is full.
const STALL: Duration = Duration::from_secs(2);

#[test]
fn a_server_that_stops_reading_pins_at_most_256_kib_per_connection_at_each_end() {
    let _turn = turn();
    stalled_reader_memory(Stops::Server);
}

#[test]
fn a_client_that_stops_reading_pins_at_most_256_kib_per_connection_at_each_end() {
    let _turn = turn();
    stalled_reader_memory(Stops::Client);
}

/// Which plaintext end stops reading; the other writes until it blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stops {
    /// The server behind the `-d` end accepts and never reads; the client writes.
    Server,
    /// The client never reads; the server writes.
    Client,
}

/// Measures each end's resident memory before [`STALLED`] connections and once they are all
/// blocked, and asserts the growth per connection is within [`STALLED_BOUND_KIB`].
fn stalled_reader_memory(stops: Stops) {
    let dir = scratch("stalled-reader");
    let key = key_file(&dir, "k");
    let server = StallServer::start(stops);
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", server.port), &[], &[]);

    // A few whole connections first, so that what the first connections set up once (the worker
    // threads' allocator arenas, anything built lazily) is in the baseline and not in the growth.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let addr = pipe.e_addr();
            thread::spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                // The server hangs up on these at once, so the pipe may have reset the connection
                // before the write or the half-close: either may fail, and neither is what is measured.
                let _ = conn.write_all(b"warm");
                let _ = conn.shutdown(Shutdown::Write);
                let _ = read_until_closed(&mut conn);
            })
        })
        .collect();
    for w in warm {
        w.join().unwrap();
    }
    thread::sleep(Duration::from_millis(500)); // let both ends finish closing them
    let before = (vm_rss_kib(pipe.e.pid()), vm_rss_kib(pipe.d.pid()));

    server.armed.store(true, Ordering::Relaxed);
    let (blocked_tx, blocked) = mpsc::channel();
    for _ in 0..STALLED {
        let (addr, blocked_tx) = (pipe.e_addr(), blocked_tx.clone());
        thread::spawn(move || {
            let conn = TcpStream::connect(addr).unwrap();
            let _ = blocked_tx.send(match stops {
                Stops::Server => push_until_blocked(conn),
                Stops::Client => Ok((conn, 0)), // it never reads; the server's writer reports
            });
        });
    }
    let from_clients = collect_blocked(&blocked, "client");
    let from_server = match stops {
        Stops::Server => Vec::new(),
        Stops::Client => collect_blocked(&server.blocked, "server"),
    };
    let after = (vm_rss_kib(pipe.e.pid()), vm_rss_kib(pipe.d.pid()));

    let pushed: u64 = from_clients.iter().chain(&from_server).map(|(_, n)| n).sum();
    let mib = pushed >> 20;
    println!(
        "stalled reader: the {stops:?} stops reading; {STALLED} connections took {mib} MiB, then blocked"
    );
    let mut over = Vec::new();
    for (end, before, after) in [("-e", before.0, after.0), ("-d", before.1, after.1)] {
        let per_connection = after.saturating_sub(before) / STALLED as u64;
        println!("  {end} end: VmRSS {before} KiB -> {after} KiB, {per_connection} KiB per connection");
        if per_connection > STALLED_BOUND_KIB {
            over.push(format!("{end} end: {per_connection} KiB per connection"));
        }
    }
    assert!(over.is_empty(), "over {STALLED_BOUND_KIB} KiB per stalled connection: {}", over.join("; "));
}

/// Waits for [`STALLED`] blocked writers; returns their connections (held until the test ends)
/// with the bytes each wrote.
fn collect_blocked(
    blocked: &mpsc::Receiver<io::Result<(TcpStream, u64)>>,
    who: &str,
) -> Vec<(TcpStream, u64)> {
    (0..STALLED)
        .map(|i| match blocked.recv_timeout(GUARD) {
            Ok(Ok(writer)) => writer,
            Ok(Err(e)) => panic!("{who} writer {i} failed before blocking: {e}"),
            Err(_) => panic!("only {i} of {STALLED} {who} writers blocked"),
        })
        .collect()
}

/// Writes to `conn` until a write has moved nothing for [`STALL`]; returns the connection and the
/// bytes written.
///
/// # Errors
/// Any other error: the connection broke instead of filling up.
fn push_until_blocked(mut conn: TcpStream) -> io::Result<(TcpStream, u64)> {
    conn.set_write_timeout(Some(STALL))?;
    let chunk = pattern(5, 64 * 1024);
    let mut written = 0;
    loop {
        match conn.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok((conn, written));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The service behind the `-d` end in the memory tests: it never reads. Once armed, for
/// [`Stops::Client`], it writes to each connection until blocked; before, it hangs up at once
/// (the warm-up connections).
struct StallServer {
    /// Its port on loopback.
    port: u16,
    /// Set once the warm-up is over.
    armed: Arc<AtomicBool>,
    /// Its blocked writers' connections, for [`Stops::Client`].
    blocked: mpsc::Receiver<io::Result<(TcpStream, u64)>>,
}

impl StallServer {
    fn start(stops: Stops) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let (blocked_tx, blocked) = mpsc::channel();
        let is_armed = armed.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                match (is_armed.load(Ordering::Relaxed), stops) {
                    (false, _) => drop(conn),
                    (true, Stops::Server) => held.push(conn),
                    (true, Stops::Client) => {
                        let blocked_tx = blocked_tx.clone();
                        thread::spawn(move || blocked_tx.send(push_until_blocked(conn)));
                    }
                }
            }
        });
        StallServer { port, armed, blocked }
    }
}

/// A process's resident memory, from `/proc/PID/status`.
fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
}
