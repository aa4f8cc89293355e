//! The side-by-side benchmark: a direct path, spiped-rs, Debian's spiped 1.6, stunnel (TLS 1.3) and a
//! relay floor (two HAProxy processes with no encryption), all on loopback in front of the same
//! redis-server and iperf3 server, measured in one run; beside them the classic-wire paths of issue
//! 12: spiped-rs speaking classic spiped 1.x to itself (spiped-rs-classic), to spiped 1.6's `-d`
//! (mixed-e), and spiped 1.6's `-e` to spiped-rs's `-d` (mixed-d).
//!
//! ```text
//! cargo bench --bench compare                  # 3 interleaved rounds, idle memory, the flood measure
//! cargo bench --bench compare -- --smoke       # a quick pass over everything (CI); figures mean little
//! cargo bench --bench compare -- --rounds 5 --seconds 10 --idle 1000 --json run.json --only spiped-rs,direct
//! cargo bench --bench compare -- --measures flood --flood-seconds 20   # the flood measure alone
//! cargo bench --bench compare -- --measures wan --rtt-ms 20 --wan-connections 200 --wan-requests 2000
//! ```
//!
//! Each round takes every measure on every path before the next measure, starting from a different
//! path each round, so drift hits all paths alike; the table shows medians over rounds. Idle memory
//! is measured once per path, with fresh ends in front of a sink that holds the connections open.
//! The flood measure (flood.rs) runs the spiped paths (all but mixed-e, whose `-d` end is spiped
//! 1.6's as on the spiped-1.6 path), each with its `-d` end at the daemon's defaults, quiet, under a
//! burst of silent connections and under a steady flood of them.
//! The wan measure (wan.rs, issue 16) puts a delay link (delay.rs) of round-trip time `--rtt-ms`
//! between the client side and the server side of direct, spiped-rs, spiped 1.6 and stunnel, and
//! times new connections' first replies and redis-benchmark `-k 0`, once per round.
//! It needs redis-server, redis-tools and iperf3; spiped, stunnel4 and haproxy are compared when
//! installed.
//! A benchmark, not a test: it asserts nothing about its figures. `cargo test --benches` runs only
//! the delay link's own check (bytes intact both ways, half-closes passed on; no timing).

mod attacker;
mod clock;
mod delay;
mod flood;
mod measure;
mod paths;
mod procs;
mod report;
mod wan;

use std::path::PathBuf;
use std::process::Command;
use std::{env, fs};

use anyhow::{Context, Result, bail};
use serde_json::json;

use flood::Condition;
use measure::{Sink, bulk, idle_memory, redis};
use paths::{Env, Kind, Limits, Pair};
use procs::{Daemon, free_ports, raise_file_limit};
use report::Results;

/// The command line.
struct Options {
    rounds: usize,
    seconds: u64,
    idle: Vec<usize>,
    json: Option<PathBuf>,
    only: Option<Vec<String>>,
    /// Requests per redis-benchmark run: new connections, 50 clients, 1 client.
    requests: [u32; 3],
    /// Which measures to take, so one can be run alone.
    measures: Measures,
    /// How long each flood condition lasts on each path.
    flood_seconds: u64,
    /// The wan measure's round-trip time, in milliseconds.
    rtt_ms: u64,
    /// New connections the wan measure times one after another, per path and round.
    wan_connections: usize,
    /// Requests of each of SET and GET redis-benchmark `-k 0` makes in the wan measure.
    wan_requests: u32,
    /// `--smoke`: a pass that shows every measure runs on every path; a failure on a path with
    /// another program's end (a peer such as spiped 1.6 missing a connection, on the spiped-1.6,
    /// mixed-e or mixed-d path) is reported but does not fail the run.
    smoke: bool,
}

/// The measures a run takes (`--measures bulk,redis,idle,flood,wan`; all by default).
#[derive(Clone, Copy)]
struct Measures {
    /// iperf3 both ways, in the rounds.
    bulk: bool,
    /// redis-benchmark's new connections, 50 clients and 1 client, in the rounds.
    redis: bool,
    /// Resident memory per idle connection.
    idle: bool,
    /// Legitimate connections under a flood of silent ones.
    flood: bool,
    /// New connections across a delay link (issue 16), in the rounds.
    wan: bool,
}

impl Measures {
    const ALL: Measures = Measures { bulk: true, redis: true, idle: true, flood: true, wan: true };

    fn parse(list: &str) -> Result<Self> {
        let mut m = Measures { bulk: false, redis: false, idle: false, flood: false, wan: false };
        for name in list.split(',') {
            match name {
                "bulk" => m.bulk = true,
                "redis" => m.redis = true,
                "idle" => m.idle = true,
                "flood" => m.flood = true,
                "wan" => m.wan = true,
                other => bail!("unknown measure {other:?}: bulk, redis, idle, flood or wan"),
            }
        }
        Ok(m)
    }

    fn names(self) -> Vec<&'static str> {
        [
            (self.bulk, "bulk"),
            (self.redis, "redis"),
            (self.idle, "idle"),
            (self.flood, "flood"),
            (self.wan, "wan"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Whether `kind` takes part in any measure asked for: the flood runs only some spiped paths,
    /// and idle memory and the wan measure not every path.
    fn wants(self, kind: Kind) -> bool {
        if kind.pooled() {
            return self.wan;
        }
        self.bulk
            || self.redis
            || (self.idle && kind.idles())
            || (self.flood && kind.floods())
            || (self.wan && kind.crosses_wan())
    }
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            rounds: 3,
            seconds: 5,
            idle: vec![1000, 10_000],
            json: None,
            only: None,
            requests: [4000, 50_000, 10_000],
            measures: Measures::ALL,
            flood_seconds: 20,
            rtt_ms: wan::RTT_MS,
            wan_connections: 200,
            wan_requests: 2000,
            smoke: false,
        };
        let mut args = args.iter().filter(|a| *a != "--bench");
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--smoke" => {
                    (o.rounds, o.seconds, o.idle, o.requests) = (1, 1, vec![100], [300, 3000, 1000]);
                    o.flood_seconds = 2;
                    (o.wan_connections, o.wan_requests) = (5, 200);
                    o.smoke = true;
                }
                "--rounds" => o.rounds = value()?.parse()?,
                "--seconds" => o.seconds = value()?.parse()?,
                "--idle" => o.idle = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
                "--json" => o.json = Some(value()?.into()),
                "--only" => o.only = Some(value()?.split(',').map(String::from).collect()),
                "--measures" => o.measures = Measures::parse(value()?)?,
                "--flood-seconds" => o.flood_seconds = value()?.parse()?,
                "--rtt-ms" => o.rtt_ms = value()?.parse()?,
                "--wan-connections" => o.wan_connections = value()?.parse()?,
                "--wan-requests" => o.wan_requests = value()?.parse()?,
                other => bail!("unknown argument {other:?} (see benches/compare/main.rs)"),
            }
        }
        Ok(o)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("compare: a benchmark, not a test; run it with `cargo bench --bench compare`");
        delay::check().context("the delay link's check")?;
        println!("compare: the delay link passes bytes intact both ways, half-closes included");
        return Ok(());
    }
    let options = Options::parse(&args)?;
    let m = options.measures;
    for (tool, package, needed) in [
        ("redis-server", "redis-server", true),
        ("redis-benchmark", "redis-tools", m.redis || m.wan),
        ("iperf3", "iperf3", m.bulk),
    ] {
        if needed && Command::new(tool).arg("--version").output().is_err() {
            bail!(
                "{tool} is missing: apt-get install {package} (and spiped stunnel4 haproxy to compare them too)"
            );
        }
    }
    let files = raise_file_limit(65_536);
    let dir = env::temp_dir().join(format!("spiped-compare-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let outcome = run(&options, &dir, files);
    let _ = fs::remove_dir_all(&dir);
    outcome
}

fn run(options: &Options, dir: &std::path::Path, files: u64) -> Result<()> {
    let env = Env::new(dir, PathBuf::from(env!("CARGO_BIN_EXE_spiped")), files)?;
    let mut kinds = Vec::new();
    for kind in Kind::ALL {
        if options.only.as_ref().is_some_and(|only| !only.iter().any(|o| o == kind.name()))
            || !options.measures.wants(kind)
        {
            continue;
        }
        match env.missing(kind) {
            Some(package) => eprintln!("skipping {}: apt-get install {package}", kind.name()),
            None => kinds.push(kind),
        }
    }
    let m = options.measures;
    let [redis_port, iperf_port] = free_ports(2)?[..] else { unreachable!() };
    let mut redis_server = Command::new("redis-server");
    redis_server.args([
        "--port",
        &redis_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let mut targets = vec![Daemon::spawn("redis-server", &mut redis_server, dir)?];
    targets[0].wait_listening(redis_port)?;
    if m.bulk {
        let mut iperf = Command::new("iperf3");
        iperf.args(["-s", "-p", &iperf_port.to_string()]);
        targets.push(Daemon::spawn("iperf3", &mut iperf, dir)?);
        targets[1].wait_listening(iperf_port)?;
    }

    let steps: Vec<Step> = Step::ALL.into_iter().filter(|s| s.chosen(m)).collect();
    let rounds = if steps.is_empty() { 0 } else { options.rounds };
    let mut paths = Vec::new();
    if rounds > 0 {
        for &kind in &kinds {
            let start = |target| Pair::start(kind, &env, target, Limits::Unlimited);
            paths.push((kind, start(redis_port)?, if m.bulk { Some(start(iperf_port)?) } else { None }));
        }
    }
    let mut results = Results::new(&kinds);
    let mut failed = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {}", round + 1, options.rounds);
        let mut order: Vec<_> = paths.iter().collect();
        let first = round % order.len().max(1);
        order.rotate_left(first);
        for &step in &steps {
            for (kind, to_redis, to_iperf) in &order {
                if let Err(e) = step.measure(options, to_redis, to_iperf.as_ref(), *kind, &mut results) {
                    fail(&mut failed, *kind, format!("{}: {e:#}", step.name()));
                }
            }
        }
    }
    results.derive_added_latency();
    drop(paths);

    let wan_seconds =
        if m.wan { wan_rounds(options, &env, &kinds, redis_port, &mut results, &mut failed)? } else { 0.0 };

    for condition in Condition::ALL.into_iter().filter(|_| m.flood) {
        for &kind in kinds.iter().filter(|k| k.floods()) {
            eprintln!("flood: {} {}, {} s", kind.name(), condition.label(), options.flood_seconds);
            match flood::measure(kind, &env, redis_port, condition, options.flood_seconds) {
                Ok(run) => results.add_flood(kind, run),
                Err(e) => {
                    fail(&mut failed, kind, format!("flood, {}: {e:#}", condition.label()));
                }
            }
        }
    }

    // Each end holds two descriptors per connection, and so does this process (client and sink);
    // stunnel allows itself 125/256 of its open-file limit in clients.
    let most = (files * 125 / 256 / 100 * 100) as usize;
    let wanted: &[usize] = if m.idle { &options.idle } else { &[] };
    let mut idle: Vec<usize> = wanted.iter().map(|&n| n.min(most)).collect();
    idle.dedup();
    if idle != wanted {
        eprintln!(
            "idle memory: at most {most} connections fit the open-file limit of {files}; measuring {idle:?}"
        );
    }
    for &kind in kinds.iter().filter(|k| k.idles() && !idle.is_empty()) {
        eprintln!("idle memory: {} at {idle:?} connections", kind.name());
        let sink = Sink::start()?;
        let measured = Pair::start(kind, &env, sink.port, Limits::Unlimited)
            .and_then(|pair| idle_memory(&pair, &sink, &idle));
        match measured {
            Ok(per) => idle
                .iter()
                .zip(per)
                .for_each(|(n, kib)| results.add(&format!("idle_kib_per_conn_{n}"), kind, kib)),
            Err(e) => {
                fail(&mut failed, kind, format!("idle memory: {e:#}"));
            }
        }
    }
    drop(targets);

    let (cores, machine) = machine();
    println!(
        "\nspiped-rs compare: {}; {} rounds, {} s iperf3 runs, {} s per flood condition; {machine}\n",
        m.names().join(", "),
        options.rounds,
        options.seconds,
        options.flood_seconds
    );
    if let Some(table) = results.table() {
        println!("{table}");
    }
    if results.has_targets() {
        println!("{}", results.targets_table());
    }
    if let Some(table) = results.classic_table() {
        println!("{table}");
        if results.has_targets() {
            println!("{}", results.classic_targets_table());
        }
    }
    if let Some(table) = results.metrics_table() {
        println!("{table}");
    }
    if let Some(table) = results.wan_table() {
        println!(
            "across a WAN (issue 16): a delay link of R = {} ms between client side and server side\n{table}",
            options.rtt_ms
        );
        println!("{}", results.wan_targets_table());
        if let Some(line) = results.wan_sanity(options.rtt_ms) {
            println!("{line}\n");
        }
    }
    if m.flood {
        println!("{}", results.flood_table());
    }

    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let about = json!({ "machine": machine, "cores": cores, "unix_time": started, "rounds": options.rounds,
                        "iperf3_seconds": options.seconds, "requests": options.requests, "idle_counts": idle,
                        "measures": m.names(), "flood_seconds": options.flood_seconds,
                        "flood_burst": flood::BURST, "flood_per_second": flood::RATE,
                        "wan_rtt_ms": options.rtt_ms, "wan_connections": options.wan_connections,
                        "wan_requests": options.wan_requests, "wan_seconds": wan_seconds });
    let file =
        options.json.clone().unwrap_or_else(|| PathBuf::from(format!("target/bench/compare-{started}.json")));
    if let Some(parent) = file.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&file, serde_json::to_string_pretty(&results.json(about))?)?;
    println!("JSON: {}", file.display());
    if options.smoke {
        let (fatal, peers): (Vec<_>, Vec<_>) = failed.into_iter().partition(|(kind, _)| kind.all_ours());
        for (_, failure) in &peers {
            println!(
                "smoke: a measure on a path with a peer's end failed (not fatal in a smoke run): {failure}"
            );
        }
        failed = fatal;
    }
    if !failed.is_empty() {
        let lines: Vec<&str> = failed.iter().map(|(_, line)| line.as_str()).collect();
        bail!("{} measurements failed; the table is incomplete:\n  {}", failed.len(), lines.join("\n  "));
    }
    Ok(())
}

/// The wan measure's rounds: each path of `kinds` that crosses a WAN, started with a delay link in
/// front of redis, measured once a round, starting from a different path each round. Returns how long
/// it took, in seconds.
///
/// # Errors
/// When a path's delay link cannot start; a failed measure is recorded in `failed` instead.
fn wan_rounds(
    options: &Options,
    env: &Env,
    kinds: &[Kind],
    redis_port: u16,
    results: &mut Results,
    failed: &mut Vec<(Kind, String)>,
) -> Result<f64> {
    let started = std::time::Instant::now();
    let rtt = std::time::Duration::from_millis(options.rtt_ms);
    let mut paths = Vec::new();
    for &kind in kinds.iter().filter(|k| k.crosses_wan()) {
        match Pair::start_across(kind, env, redis_port, Limits::Unlimited, Some(rtt)) {
            Ok(pair) => paths.push((kind, pair)),
            Err(e) => fail(failed, kind, format!("wan: {e:#}")),
        }
    }
    for round in 0..options.rounds {
        let mut order: Vec<_> = paths.iter().collect();
        let first = round % order.len().max(1);
        order.rotate_left(first);
        for (kind, pair) in order {
            eprintln!(
                "wan, round {} of {}: {}, R = {} ms",
                round + 1,
                options.rounds,
                kind.name(),
                options.rtt_ms
            );
            let measured = wan::measure(pair, *kind, options.wan_connections, options.wan_requests, results);
            if let Err(e) = measured {
                fail(failed, *kind, format!("wan: {e:#}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("wan: {seconds:.0} s");
    Ok(seconds)
}

/// Records a failed measure on `kind`'s path (`what`: the measure and the error) and says so at once.
fn fail(failed: &mut Vec<(Kind, String)>, kind: Kind, what: String) {
    let line = format!("{} {what}", kind.name());
    eprintln!("  {line}");
    failed.push((kind, line));
}

/// The number of cores, and a line naming them, the CPU and the kernel.
fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    (cores, format!("{cores} cores, {}, Linux {}", cpu.unwrap_or("unknown CPU"), kernel.trim()))
}

/// The measures of a round, in order.
#[derive(Clone, Copy)]
enum Step {
    BulkUp,
    BulkDown,
    NewConnections,
    Redis50,
    Redis1,
}

impl Step {
    const ALL: [Step; 5] = [Step::BulkUp, Step::BulkDown, Step::NewConnections, Step::Redis50, Step::Redis1];

    /// Whether the measures asked for include this step.
    fn chosen(self, m: Measures) -> bool {
        if matches!(self, Step::BulkUp | Step::BulkDown) { m.bulk } else { m.redis }
    }

    fn name(self) -> &'static str {
        match self {
            Step::BulkUp => "bulk up",
            Step::BulkDown => "bulk down",
            Step::NewConnections => "new connections",
            Step::Redis50 => "redis, 50 clients",
            Step::Redis1 => "redis, 1 client",
        }
    }

    fn measure(
        self,
        o: &Options,
        to_redis: &Pair,
        to_iperf: Option<&Pair>,
        kind: Kind,
        results: &mut Results,
    ) -> Result<()> {
        let [conns, many, one] = o.requests;
        match self {
            Step::BulkUp | Step::BulkDown => {
                let down = matches!(self, Step::BulkDown);
                let b = bulk(to_iperf.context("no path to iperf3")?, o.seconds, down)?;
                results.add(if down { "bulk_down_gbit_s" } else { "bulk_up_gbit_s" }, kind, b.gbit_s);
                if kind != Kind::Direct {
                    results.add("cpu_ends_s_per_gib", kind, b.ends_cpu_per_gib);
                }
                results.add("cpu_machine_s_per_gib", kind, b.machine_cpu_per_gib);
            }
            Step::NewConnections => {
                let r = redis(to_redis, 50, conns, "ping_inline", &["-k", "0"])?;
                results.add("new_conns_per_s", kind, r[0].rps);
            }
            Step::Redis50 | Step::Redis1 => {
                let (clients, requests) = if matches!(self, Step::Redis50) { (50, many) } else { (1, one) };
                for r in redis(to_redis, clients, requests, "set,get", &[])? {
                    results.add(&format!("{}_{clients}_rps", r.test), kind, r.rps);
                    results.add(&format!("{}_{clients}_p50_us", r.test), kind, r.p50_us);
                    results.add(&format!("{}_{clients}_p99_us", r.test), kind, r.p99_us);
                }
            }
        }
        Ok(())
    }
}
