//! One measurement each: bulk throughput with iperf3, request rates and latency with redis-benchmark,
//! and resident memory per idle connection.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths::Pair;
use crate::procs::{cpu_seconds, machine_busy_seconds, rss_kib, run};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One iperf3 run through a path.
pub struct Bulk {
    pub gbit_s: f64,
    /// CPU seconds per GiB moved used by the tunnel's own processes (zero for a direct path).
    pub ends_cpu_per_gib: f64,
    /// CPU seconds per GiB moved used by the whole machine: iperf3, kernel and tunnel.
    pub machine_cpu_per_gib: f64,
}

/// Runs iperf3 for `seconds` through `pair`, client to server, or server to client if `reverse`. A run
/// that iperf3 itself reports as failed (its server now and then resets a new control connection
/// while it tidies up after the last test) is tried once more after a pause.
pub fn bulk(pair: &Pair, seconds: u64, reverse: bool) -> Result<Bulk> {
    match bulk_once(pair, seconds, reverse) {
        Err(e) if e.to_string().starts_with(NO_TRANSFER) => {
            eprintln!("bulk: {e}; trying once more");
            std::thread::sleep(Duration::from_secs(1));
            bulk_once(pair, seconds, reverse)
        }
        done => done,
    }
}

/// How [`bulk_once`] says iperf3 reported a failure.
const NO_TRANSFER: &str = "iperf3 reported no transfer";

fn bulk_once(pair: &Pair, seconds: u64, reverse: bool) -> Result<Bulk> {
    let ends_cpu = || pair.pids().into_iter().map(cpu_seconds).sum::<Result<f64>>();
    let (ends0, machine0) = (ends_cpu()?, machine_busy_seconds()?);
    let mut iperf = Command::new("iperf3");
    iperf.args(["-c", "127.0.0.1", "-J", "-p", &pair.port.to_string(), "-t", &seconds.to_string()]);
    if reverse {
        iperf.arg("-R");
    }
    let out = run(&mut iperf, Duration::from_secs(seconds + 30))?;
    let (ends1, machine1) = (ends_cpu()?, machine_busy_seconds()?);
    let report: serde_json::Value = serde_json::from_str(&out).context("iperf3's JSON")?;
    let received = &report["end"]["sum_received"];
    let (Some(bytes), Some(bps)) = (received["bytes"].as_f64(), received["bits_per_second"].as_f64()) else {
        bail!("{NO_TRANSFER}: {}", report["error"]);
    };
    let gib = bytes / GIB;
    Ok(Bulk {
        gbit_s: bps / 1e9,
        ends_cpu_per_gib: (ends1 - ends0) / gib,
        machine_cpu_per_gib: (machine1 - machine0) / gib,
    })
}

/// redis-benchmark's figures for one command.
pub struct Requests {
    pub test: String,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Runs redis-benchmark through `pair`: `clients` connections, `requests` of each of `tests`.
pub fn redis(pair: &Pair, clients: u32, requests: u32, tests: &str, extra: &[&str]) -> Result<Vec<Requests>> {
    let mut bench = Command::new("redis-benchmark");
    bench.args(["-p", &pair.port.to_string(), "-c", &clients.to_string(), "-n", &requests.to_string()]);
    bench.args(["-t", tests, "--csv"]).args(extra);
    let out = run(&mut bench, Duration::from_secs(300))?;
    let mut lines = out.lines().map(|l| l.split(',').map(|f| f.trim_matches('"')).collect::<Vec<_>>());
    let header = lines.next().context("redis-benchmark printed nothing")?;
    let column = |name: &str| header.iter().position(|h| *h == name).context("redis-benchmark's CSV header");
    let (rps, p50, p99) = (column("rps")?, column("p50_latency_ms")?, column("p99_latency_ms")?);
    let rows = lines
        .map(|row| {
            let num = |i: usize| row.get(i).context("short row")?.parse::<f64>().context("not a number");
            Ok(Requests {
                test: row[0].to_lowercase(),
                rps: num(rps)?,
                p50_us: num(p50)? * 1e3,
                p99_us: num(p99)? * 1e3,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if rows.is_empty() {
        bail!("redis-benchmark reported no results");
    }
    Ok(rows)
}

/// A target that accepts connections, reads the one byte each client sends, and holds them open.
pub struct Sink {
    pub port: u16,
    held: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (held, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopping) = (held.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Non-blocking throughout, so one connection still in its handshake holds up no other.
            let (mut waiting, mut streams) = (Vec::<TcpStream>::new(), Vec::new());
            while !stopping.load(Ordering::Relaxed) {
                let mut progressed = false;
                while let Ok((stream, _)) = listener.accept() {
                    if stream.set_nonblocking(true).is_ok() {
                        waiting.push(stream);
                        progressed = true;
                    }
                }
                let mut i = 0;
                while i < waiting.len() {
                    match waiting[i].read(&mut [0]) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => i += 1,
                        Ok(1) => {
                            streams.push(waiting.swap_remove(i));
                            count.fetch_add(1, Ordering::Relaxed);
                            progressed = true;
                        }
                        _ => drop(waiting.swap_remove(i)), // closed or failed before its byte
                    }
                }
                if !progressed {
                    sleep(Duration::from_millis(1));
                }
            }
        });
        Ok(Self { port, held, stop, thread: Some(thread) })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Opens connections through `pair` (in front of `sink`) up to each of `counts` in turn and returns,
/// for each, the growth of the tunnel's resident memory (both ends) per open connection, in KiB.
pub fn idle_memory(pair: &Pair, sink: &Sink, counts: &[usize]) -> Result<Vec<f64>> {
    let pids = pair.pids();
    let rss = || pids.iter().map(|&p| rss_kib(p)).sum::<Result<u64>>();
    sleep(Duration::from_millis(300));
    let before = rss()?;
    let mut clients = Vec::new();
    let mut per_connection = Vec::new();
    for &count in counts {
        while clients.len() < count {
            // In batches, so a slow end's accept queue never overflows into SYN retries.
            let batch = (count - clients.len()).min(100);
            for _ in 0..batch {
                let mut client = TcpStream::connect(("127.0.0.1", pair.port))?;
                client.write_all(b"x")?;
                clients.push(client);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while sink.held.load(Ordering::Relaxed) < clients.len() {
                if Instant::now() > deadline {
                    bail!(
                        "only {} of {} connections reached the target",
                        sink.held.load(Ordering::Relaxed),
                        clients.len()
                    );
                }
                sleep(Duration::from_millis(5));
            }
        }
        sleep(Duration::from_secs(1));
        per_connection.push(rss()?.saturating_sub(before) as f64 / count as f64);
    }
    Ok(per_connection)
}
