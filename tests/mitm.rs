//! A man in the middle of the encrypted side, against the built `spiped`: a relay between the `-e`
//! and `-d` ends flips, drops, duplicates, swaps or cuts the stream (with a FIN or an RST) at every
//! byte offset of the first records, in both directions, one fault per connection. Behind the `-d` end
//! a real server greets each connection and echoes what it reads. For every case, neither plaintext
//! end may see a byte that was not sent, or a clean end of incomplete data: a fault surfaces as a
//! reset, and when the handshake fails the target is never contacted at all.

mod support;

#[path = "hostile/relay.rs"]
mod relay;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spiped::proto::native::{HELLO_LEN, MSG2_LEN, PREAMBLE_LEN, RECORD_OVERHEAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use relay::{Dir, Fault, Report, Strike, holds_socket, relay};
use support::*;

/// The client's data, and so the server's echo: one short record each way.
const DATA_LEN: usize = 16;
/// What the server says first: its own short record, ahead of the echo.
const GREETING_LEN: usize = 16;
/// Bytes from the `-e` end up to the end of its key confirmation: the `-d` end contacts its target
/// only once all of them have arrived intact.
const CONFIRMED: usize = HELLO_LEN + RECORD_OVERHEAD;
/// Pipes (each an `-e` end, the relay, a `-d` end and a server) running cases at once. Most of a
/// lane's time goes on waiting out `-o 1` after a fault that stalls the handshake, not on CPU.
const LANES: usize = 16;
/// A guard against a hang, far beyond the daemons' `-o 1`: a connection still open after this is
/// reported as never ending.
const GUARD: Duration = Duration::from_secs(30);

/// Every fault the relay applies at each offset: single bytes, and whole records' worth.
const FAULTS: [Fault; 10] = [
    Fault::Flip,
    Fault::Drop(1),
    Fault::Drop(RECORD_OVERHEAD),
    Fault::Duplicate(1),
    Fault::Duplicate(RECORD_OVERHEAD),
    Fault::Swap(1),
    Fault::Swap(RECORD_OVERHEAD),
    Fault::Fin,
    Fault::FinBoth,
    Fault::Rst,
];

#[test]
fn every_fault_at_every_offset_of_the_first_records_surfaces_as_a_reset() {
    let started = Instant::now();
    let dir = scratch("mitm");
    let key = key_file(&dir, "k");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (dir, key, handle) = (&dir, &key, runtime.handle());
    let ports = distinct_free_ports(2 * LANES);
    let lanes: Vec<Arc<Lane>> = std::thread::scope(|s| {
        let starting: Vec<_> = ports
            .chunks(2)
            .enumerate()
            .map(|(i, ports)| s.spawn(move || Lane::start(dir, key, i, (ports[0], ports[1]), handle)))
            .collect();
        starting.into_iter().map(|lane| Arc::new(lane.join().unwrap())).collect()
    });
    let cases: Vec<Case> = [Style::Eager, Style::Quiet]
        .into_iter()
        .flat_map(|style| [Dir::ToD, Dir::ToE].map(|dir| (style, dir)))
        .flat_map(|(style, dir)| FAULTS.map(|fault| (style, dir, fault)))
        .flat_map(|(style, dir, fault)| (0..span(dir)).map(move |at| (style, Strike { dir, fault, at })))
        .enumerate()
        .map(|(i, (style, strike))| Case { strike, style, seed: i as u64 })
        .collect();

    let outcomes = runtime.block_on(run_all(&lanes, &cases));
    let applied = outcomes.iter().filter(|o| o.report.diverges_at.is_some()).count();
    let failed = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
    println!(
        "mitm: {} cases ({applied} with the stream changed) on {LANES} lanes in {:.1} s; {failed} failed",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
    );
    let summary = summarise(&outcomes);
    for line in &summary {
        println!("  {line}");
    }
    for (i, lane) in lanes.into_iter().enumerate() {
        let Ok(mut lane) = Arc::try_unwrap(lane) else { panic!("every case has finished with lane {i}") };
        for (end, daemon) in [("-e", &mut lane.e), ("-d", &mut lane.d)] {
            assert!(daemon.is_running(), "lane {i}'s {end} end died:\n{}", daemon.log_text());
        }
    }
    assert_eq!(outcomes.len(), cases.len(), "every case ran");
    assert!(summary.is_empty(), "{failed} of {} cases failed:\n{}", outcomes.len(), summary.join("\n"));
}

/// One connection's worth of test.
#[derive(Debug, Clone, Copy)]
struct Case {
    /// The fault.
    strike: Strike,
    /// When the client sends.
    style: Style,
    /// Seeds the client's data and the server's greeting, different for each case.
    seed: u64,
}

/// When the client sends its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Style {
    /// At once: its bytes are already waiting at the `-e` end while the handshake runs.
    Eager,
    /// Only once the `-e` end has sent its key confirmation: when the handshake fails, nothing of
    /// the client's is waiting at the `-e` end, whose close then says everything about how it ended.
    Quiet,
}

/// What one case came to.
struct Outcome {
    /// The case.
    case: Case,
    /// What the relay saw.
    report: Report,
    /// What went wrong, if anything.
    problems: Vec<String>,
}

/// Runs every case, each lane taking the next one as it finishes the last.
async fn run_all(lanes: &[Arc<Lane>], cases: &[Case]) -> Vec<Outcome> {
    let queue = Arc::new(Mutex::new(cases.iter().copied().collect::<VecDeque<_>>()));
    let workers: Vec<_> = lanes
        .iter()
        .map(|lane| {
            let (lane, queue) = (lane.clone(), queue.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some(case) = next else { return done };
                    let (report, problems) = run_case(&lane, case).await;
                    done.push(Outcome { case, report, problems });
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("a lane panicked"));
    }
    all
}

/// One line per kind of failure: the client style, the direction, what the faulted bytes were, the
/// fault, the offsets and the problem.
fn summarise(outcomes: &[Outcome]) -> Vec<String> {
    let mut groups: BTreeMap<(Style, Dir, &str, Fault, &str), Vec<usize>> = BTreeMap::new();
    for Outcome { case, problems, .. } in outcomes {
        let Strike { dir, fault, at } = case.strike;
        for problem in problems {
            groups.entry((case.style, dir, region(dir, at), fault, problem)).or_default().push(at);
        }
    }
    groups
        .into_iter()
        .map(|((style, dir, region, fault, problem), mut offsets)| {
            offsets.sort_unstable();
            let dir = match dir {
                Dir::ToD => "-e to -d",
                Dir::ToE => "-d to -e",
            };
            format!("{style:?} client, {dir}, {region}, {fault:?} at {}: {problem}", ranges(&offsets))
        })
        .collect()
}

/// Bytes of each direction the cases cover: the handshake and the first data record, never the
/// end-of-stream record, which comes after all the data.
fn span(dir: Dir) -> usize {
    match dir {
        Dir::ToD => CONFIRMED + RECORD_OVERHEAD + DATA_LEN,
        Dir::ToE => MSG2_LEN + RECORD_OVERHEAD + GREETING_LEN,
    }
}

/// What the bytes at `at` are, for the report.
fn region(dir: Dir, at: usize) -> &'static str {
    match dir {
        Dir::ToD if at < PREAMBLE_LEN => "preamble",
        Dir::ToD if at < HELLO_LEN => "message 1",
        Dir::ToD if at < CONFIRMED => "key confirmation",
        Dir::ToD => "first data record",
        Dir::ToE if at < MSG2_LEN => "message 2",
        Dir::ToE => "first data record (the greeting)",
    }
}

/// Whether a stream departing from the original at `at` stops the handshake: the `-d` end then never
/// authenticates the `-e` end and must never contact its target.
fn breaks_handshake(dir: Dir, at: usize) -> bool {
    at < match dir {
        Dir::ToD => CONFIRMED,
        Dir::ToE => MSG2_LEN,
    }
}

/// One pipe with the relay in the middle: client -> `-e` -> relay -> `-d` -> server.
struct Lane {
    /// The `-e` end, whose target is the relay; killed on drop.
    e: Spiped,
    /// The `-d` end, whose target is the server; killed on drop.
    d: Spiped,
    /// Where the client connects.
    e_addr: SocketAddr,
    /// Where the relay connects.
    d_addr: SocketAddr,
    /// The relay's listener: the `-e` end's target.
    relay: TcpListener,
    /// The server's listener: the `-d` end's target.
    server: TcpListener,
}

impl Lane {
    /// Starts lane `i`'s daemons on the `(e, d)` ports, with listeners registered with `runtime`.
    fn start(dir: &Path, key: &Path, i: usize, (e_port, d_port): (u16, u16), runtime: &Handle) -> Lane {
        let _in_runtime = runtime.enter();
        let listen = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            TcpListener::from_std(listener).unwrap()
        };
        let (relay, server) = (listen(), listen());
        let key = key.to_str().unwrap();
        let d_source = format!("[127.0.0.1]:{d_port}");
        let e_source = format!("[127.0.0.1]:{e_port}");
        let to_server = format!("[127.0.0.1]:{}", server.local_addr().unwrap().port());
        let to_relay = format!("[127.0.0.1]:{}", relay.local_addr().unwrap().port());
        let d_args = ["-d", "-s", &d_source, "-t", &to_server, "-k", key, "-o", "1"];
        let d = Spiped::start(dir, &format!("d{i}"), &d_args, &d_source);
        let e_args = ["-e", "-s", &e_source, "-t", &to_relay, "-k", key, "-o", "1"];
        let e = Spiped::start(dir, &format!("e{i}"), &e_args, &e_source);
        let parse = |source: &str| plain_addr(source).parse().unwrap();
        Lane { e_addr: parse(&e_source), d_addr: parse(&d_source), e, d, relay, server }
    }
}

/// How a plaintext end's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A clean end of stream.
    Clean,
    /// A reset or another error, from a read or a write.
    Failed(io::ErrorKind),
    /// Still open after [`GUARD`].
    Hung,
}

/// What a plaintext end received, and how its connection ended.
#[derive(Debug)]
struct Seen {
    /// Every byte received.
    data: Vec<u8>,
    /// How it ended.
    end: End,
}

/// Runs one case on `lane`: returns the relay's report and what went wrong, if anything.
async fn run_case(lane: &Arc<Lane>, case: Case) -> (Report, Vec<String>) {
    let sent = pattern(case.seed, DATA_LEN);
    let greeting = pattern(!case.seed, GREETING_LEN);
    let (confirmed_tx, confirmed) = oneshot::channel();
    let client = tokio::spawn(client(lane.e_addr, case.style, sent.clone(), confirmed));
    let (fence_tx, fence_rx) = oneshot::channel();
    let server = tokio::spawn(serve_until_fence(lane.clone(), greeting.clone(), fence_rx));
    // The -e end connects to its target, the relay, as soon as it has accepted the client.
    let (from_e, _) = lane.relay.accept().await.expect("the -e end connects to the relay");
    let to_d = TcpStream::connect(lane.d_addr).await.expect("the -d end accepts");
    for s in [&from_e, &to_d] {
        s.set_nodelay(true).unwrap();
    }
    let mut problems = Vec::new();
    let report = match tokio::time::timeout(
        GUARD,
        relay(from_e, to_d, case.strike, (CONFIRMED, confirmed_tx)),
    )
    .await
    {
        Ok(report) => report,
        Err(_) => {
            problems.push("the relayed connection never ended".to_string());
            Report::default()
        }
    };
    let client = client.await.expect("the client task");
    // Once the -d end has let go of the connection, it has connected to its target or never will:
    // a fence connection behind it then tells the server it has seen all there is.
    if let Some(inode) = report.d_socket {
        let deadline = Instant::now() + GUARD;
        while holds_socket(lane.d.pid(), inode) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if holds_socket(lane.d.pid(), inode) {
            problems.push("the -d end never let go of the connection".to_string());
        }
    }
    let fence = TcpSocket::new_v4().unwrap();
    fence.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    fence_tx.send(fence.local_addr().unwrap()).unwrap();
    let _fence = fence.connect(lane.server.local_addr().unwrap()).await.unwrap();
    let mut server_seen = Vec::new();
    for handler in server.await.expect("the server task") {
        server_seen.push(handler.await.expect("a server connection's task"));
    }
    let client_expects = [greeting, sent.clone()].concat();
    let server_expects = if client.wrote { &sent[..] } else { &[] };
    let sides = Sides { client: (&client.seen, &client_expects), server: (&server_seen, server_expects) };
    problems.extend(check(case.strike.dir, &report, sides));
    (report, problems)
}

/// What each plaintext end saw, beside what it should have received.
struct Sides<'a> {
    /// The client's connection, and the server's greeting and echo.
    client: (&'a Seen, &'a [u8]),
    /// Each connection the server had, and the data the client sent, if it sent any.
    server: (&'a [Seen], &'a [u8]),
}

/// What is wrong with the outcome of one case.
fn check(dir: Dir, report: &Report, sides: Sides) -> Vec<String> {
    let mut problems = Vec::new();
    let mut end_of = |who: &str, seen: &Seen, expected: &[u8]| {
        if !expected.starts_with(&seen.data) {
            problems.push(format!("the {who} received bytes that were never sent"));
        }
        match seen.end {
            End::Hung => problems.push(format!("the {who}'s connection never ended")),
            End::Clean if seen.data.len() < expected.len() => problems.push(format!(
                "the {who} saw a clean end after {} of {} bytes",
                seen.data.len(),
                expected.len()
            )),
            _ => {}
        }
    };
    let ((client, to_client), (server, to_server)) = (sides.client, sides.server);
    end_of("client", client, to_client);
    for seen in server {
        end_of("server", seen, to_server);
    }
    if report.diverges_at.is_some() && client.end == End::Clean && client.data == to_client {
        problems.push("the fault went unnoticed: the client saw all its data and a clean end".into());
    }
    if server.len() > 1 {
        problems.push(format!("the server saw {} connections", server.len()));
    }
    if report.diverges_at.is_some_and(|at| breaks_handshake(dir, at)) && !server.is_empty() {
        problems.push("the target was contacted although the handshake failed".into());
    }
    problems
}

/// What the client saw, and whether it sent its data.
struct ClientSeen {
    /// What it received, and how its connection ended.
    seen: Seen,
    /// Whether it wrote its data: a quiet client whose connection ends first sends nothing.
    wrote: bool,
}

/// The plaintext client: sends `sent`, half-closes, and reads until the end. A quiet client sends
/// once `confirmed` says the `-e` end has sent its key confirmation, and not at all if its
/// connection ends before that.
async fn client(
    addr: SocketAddr,
    style: Style,
    sent: Vec<u8>,
    confirmed: oneshot::Receiver<()>,
) -> ClientSeen {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        // Reset by the -e end before the connect was seen to complete.
        Err(e) => {
            return ClientSeen { seen: Seen { data: Vec::new(), end: End::Failed(e.kind()) }, wrote: false };
        }
    };
    let mut data = Vec::new();
    if style == Style::Quiet {
        let mut confirmed = Some(confirmed);
        loop {
            tokio::select! {
                fired = async { confirmed.as_mut().expect("guarded").await }, if confirmed.is_some() => {
                    match fired {
                        Ok(()) => break,
                        Err(_) => confirmed = None, // never will be: wait for the end
                    }
                }
                read = tokio::time::timeout(GUARD, stream.read_buf(&mut data)) => {
                    let end = match read {
                        Err(_) => End::Hung,
                        Ok(Ok(0)) => End::Clean,
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => End::Failed(e.kind()),
                    };
                    return ClientSeen { seen: Seen { data, end }, wrote: false };
                }
            }
        }
    }
    // A reset is reported once, to whichever call meets it first: a failed write or half-close is
    // the connection's end even if the reads that follow see a clean one.
    let written = match stream.write_all(&sent).await {
        Ok(()) => stream.shutdown().await,
        failed => failed,
    };
    let mut seen = read_all(&mut stream, data).await;
    if let Err(e) = written {
        seen.end = End::Failed(e.kind());
    }
    ClientSeen { seen, wrote: true }
}

/// Reads `stream` to its end, after the `data` already read.
async fn read_all(stream: &mut TcpStream, mut data: Vec<u8>) -> Seen {
    let end = loop {
        match tokio::time::timeout(GUARD, stream.read_buf(&mut data)).await {
            Err(_) => break End::Hung,
            Ok(Ok(0)) => break End::Clean,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break End::Failed(e.kind()),
        }
    };
    Seen { data, end }
}

/// Accepts the `-d` end's connections, each greeted and echoed, until the fence connection.
async fn serve_until_fence(
    lane: Arc<Lane>,
    greeting: Vec<u8>,
    fence: oneshot::Receiver<SocketAddr>,
) -> Vec<JoinHandle<Seen>> {
    let mut fence = fence;
    let mut fence_addr = None;
    let mut handlers = Vec::new();
    loop {
        let (stream, peer) = lane.server.accept().await.expect("the server accepts");
        // The fence's address is sent before it connects, so it is known by the time it is accepted.
        fence_addr = fence_addr.or_else(|| fence.try_recv().ok());
        if Some(peer) == fence_addr {
            return handlers;
        }
        handlers.push(tokio::spawn(greet_and_echo(stream, greeting.clone())));
    }
}

/// The server's side of one connection: says `greeting`, then writes back what it reads, and
/// half-closes at the end. Returns what it read and how its connection ended.
async fn greet_and_echo(mut stream: TcpStream, greeting: Vec<u8>) -> Seen {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    if let Err(e) = stream.write_all(&greeting).await {
        return Seen { data, end: End::Failed(e.kind()) };
    }
    let end = loop {
        match tokio::time::timeout(GUARD, stream.read(&mut buf)).await {
            Err(_) => break End::Hung,
            Ok(Ok(0)) => match stream.shutdown().await {
                Ok(()) => break End::Clean,
                Err(e) => break End::Failed(e.kind()),
            },
            Ok(Ok(n)) => {
                data.extend_from_slice(&buf[..n]);
                if let Err(e) = stream.write_all(&buf[..n]).await {
                    break End::Failed(e.kind());
                }
            }
            Ok(Err(e)) => break End::Failed(e.kind()),
        }
    };
    Seen { data, end }
}

/// `n` loopback ports nobody listens on right now, all different, for the lanes' daemons: taken before
/// the lanes start, below the ephemeral range. (Ports bound to 0 and released came from the range the
/// daemons' own outgoing connections take theirs from, and one was seen taken again before a daemon
/// could listen on it.)
fn distinct_free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// `[0, 1, 2, 5]` -> `0-2, 5`.
fn ranges(offsets: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < offsets.len() {
        let mut j = i;
        while j + 1 < offsets.len() && offsets[j + 1] == offsets[j] + 1 {
            j += 1;
        }
        out.push(if i == j { offsets[i].to_string() } else { format!("{}-{}", offsets[i], offsets[j]) });
        i = j + 1;
    }
    out.join(", ")
}
