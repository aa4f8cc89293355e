//! Two hosts: network namespaces joined by a veth pair, Redis and a `-d` end in one, an `-e` end and
//! the client in the other. A capture on the veth must hold none of the keys and values that crossed
//! it, while holding the protocol's preamble (so the capture did see the traffic). A server host that
//! vanishes without a word costs an `-e --pool` end its spares, found dead by keepalive, and a new
//! host at its address serves every client. Needs root, so each is ignored in a plain `cargo test`
//! (scripts/test-all runs them with `--include-ignored`); without iproute2 and tcpdump they fail rather
//! than skip.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

/// A network namespace, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        ip(&["netns", "add", name]);
        let ns = Netns(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// The command line that runs a program inside the namespace (`ip netns exec` execs it).
    fn exec(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.0]
    }

    fn command(&self, program: &str) -> Command {
        let [ip, rest @ ..] = self.exec();
        let mut cmd = Command::new(ip);
        cmd.args(rest).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

/// Joins `server` (10.77.0.1) and `client` (10.77.0.2) with a veth pair whose ends are named after
/// `tag`.
fn link(server: &Netns, client: &Netns, tag: &str) -> (String, String) {
    let (veth_s, veth_c) = (format!("sps{tag}"), format!("spc{tag}"));
    ip(&[
        "link", "add", &veth_s, "netns", &server.0, "type", "veth", "peer", "name", &veth_c, "netns",
        &client.0,
    ]);
    ip(&["-n", &server.0, "addr", "add", "10.77.0.1/24", "dev", &veth_s]);
    ip(&["-n", &client.0, "addr", "add", "10.77.0.2/24", "dev", &veth_c]);
    ip(&["-n", &server.0, "link", "set", &veth_s, "up"]);
    ip(&["-n", &client.0, "link", "set", &veth_c, "up"]);
    (veth_s, veth_c)
}

/// Starts redis-server on `host`'s loopback, port 6379, and waits until it answers.
fn redis_on(host: &Netns, dir: &std::path::Path) -> Proc {
    let mut redis = host.command("redis-server");
    redis.args(["--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"]);
    redis.arg(dir);
    let started = spawn(redis, &dir.join(format!("redis-{}.log", host.0)));
    eventually("redis answers PING", Duration::from_secs(20), || {
        let out = host.command("redis-cli").args(["-p", "6379", "ping"]).output().unwrap();
        match String::from_utf8_lossy(&out.stdout).trim() {
            "PONG" => Ok(()),
            answer => Err(format!("redis-cli said {answer:?}")),
        }
    });
    started
}

/// `redis-cli -p 8000 ARGS` on `host`: its answer, trimmed.
fn cli(host: &Netns, args: &[&str]) -> String {
    let out = host.command("redis-cli").args([&["-p", "8000"][..], args].concat()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's ip must be installed");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    /// Stops it with SIGINT, as at a terminal (so tcpdump flushes its capture), and waits for it.
    fn stop(&mut self) {
        if self.0.try_wait().unwrap().is_none() {
            kill(Pid::from_raw(self.0.id() as i32), Signal::SIGINT).unwrap();
        }
        eventually("a process stops on SIGINT", Duration::from_secs(10), || {
            self.0.try_wait().unwrap().ok_or("still running")
        });
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut cmd: Command, log: &std::path::Path) -> Proc {
    Proc(cmd.stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().unwrap())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
#[ignore = "needs root: network namespaces and a veth pair (scripts/test-all runs it)"]
fn a_capture_between_two_hosts_holds_no_plaintext() {
    let id = std::process::id() % 100_000;
    let dir = scratch("two-hosts");
    let key = key_file(&dir, "redis.key");
    let key = key.to_str().unwrap();
    let server = Netns::new(&format!("spiped-srv-{id}"));
    let client = Netns::new(&format!("spiped-cli-{id}"));
    let (veth_s, _) = link(&server, &client, &id.to_string());

    // The server host: Redis on its loopback only, and the -d end on the veth address.
    let _redis = redis_on(&server, &dir);
    let pcap = dir.join("veth.pcap");
    let mut tcpdump = server.command("tcpdump");
    tcpdump.args([
        "-i",
        &veth_s,
        "--immediate-mode",
        "-U",
        "-Z",
        "root",
        "-n",
        "-s",
        "0",
        "-w",
        pcap.to_str().unwrap(),
        "tcp port 6379",
    ]);
    let mut capture = spawn(tcpdump, &dir.join("tcpdump.log"));
    eventually("tcpdump captures", Duration::from_secs(20), || {
        let log = std::fs::read_to_string(dir.join("tcpdump.log")).unwrap();
        if log.contains("listening on") { Ok(()) } else { Err(format!("tcpdump said {log:?}")) }
    });

    // Each end is ready once it has said READY=1 (across namespaces: the notify socket is a file).
    let _d = SpipedCmd::new(&dir, "d")
        .wrapper(server.exec())
        .log_level(None)
        .args(["-d", "-s", "[10.77.0.1]:6379", "-t", "[127.0.0.1]:6379", "-k", key])
        .start();
    // The client host: the -e end on its loopback, and the client.
    let _e = SpipedCmd::new(&dir, "e")
        .wrapper(client.exec())
        .log_level(None)
        .args(["-e", "-s", "[127.0.0.1]:8000", "-t", "[10.77.0.1]:6379", "-k", key])
        .start();

    let secret_key = format!("customer:{}:card", rand::random::<u32>());
    let secret_value = format!("4111-1111-1111-{:04}", rand::random::<u16>() % 10_000);
    let cli = |args: &[&str]| cli(&client, args);
    assert_eq!(cli(&["ping"]), "PONG");
    assert_eq!(cli(&["set", &secret_key, &secret_value]), "OK");
    assert_eq!(cli(&["get", &secret_key]), secret_value);
    capture.stop();

    let captured = std::fs::read(&pcap).unwrap();
    assert!(contains(&captured, &spiped::proto::native::PREAMBLE), "the capture saw the tunnel's traffic");
    assert!(!contains(&captured, secret_key.as_bytes()), "the key crossed the wire in clear");
    assert!(!contains(&captured, secret_value.as_bytes()), "the value crossed the wire in clear");
    assert!(!contains(&captured, b"PING") && !contains(&captured, b"PONG"), "commands crossed in clear");
}

#[test]
#[ignore = "needs root: network namespaces and a veth pair (scripts/test-all runs it)"]
fn spares_whose_host_vanished_fail_a_client_within_o_and_are_found_dead() {
    let id = std::process::id() % 100_000;
    let dir = scratch("pool-vanished");
    let key = key_file(&dir, "redis.key");
    let key = key.to_str().unwrap();
    let client = Netns::new(&format!("spiped-pv-cli-{id}"));
    let server = Netns::new(&format!("spiped-pv-srv-{id}"));
    let (veth_s, _) = link(&server, &client, &format!("{id}a"));
    let d_args = ["-d", "-s", "[10.77.0.1]:6379", "-t", "[127.0.0.1]:6379", "-k", key];
    let redis = redis_on(&server, &dir);
    let d = SpipedCmd::new(&dir, "d").wrapper(server.exec()).args(d_args).start();
    // Spares live far longer than this test: only keepalive can find them dead in time. The -e end's
    // clients and metrics are on unix sockets, which this test reaches from outside the namespace.
    let (source, metrics) = (dir.join("e.sock"), dir.join("e-metrics.sock"));
    let _e = SpipedCmd::new(&dir, "e")
        .wrapper(client.exec())
        .args(["-e", "-s", source.to_str().unwrap(), "-t", "[10.77.0.1]:6379", "-k", key, "-o", "2"])
        .args(["--pool", "4", "--pool-idle", "3600", "--metrics", metrics.to_str().unwrap()])
        .start();
    let sample = |name: &str| {
        let page = support::http::get_unix(&metrics, "/metrics").map_err(|e| e.to_string())?.body;
        let line = page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
        line.and_then(|n| n.parse::<u32>().ok()).ok_or(format!("no {name} in {page:?}"))
    };
    let spares = || sample("spiped_parked_connections");
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").arg("-s").arg(&source).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wait_spares = |want: u32| {
        eventually(&format!("{want} spares ready at the -e end"), Duration::from_secs(60), || {
            match spares()? {
                n if n == want => Ok(()),
                n => Err(format!("{n} ready")),
            }
        })
    };
    wait_spares(4);
    assert_eq!(cli(&["ping"]), "PONG");
    wait_spares(4);

    // The server host vanishes: its link goes down first, so that not even the closing of its sockets
    // reaches the client host, then its processes, its link (the namespace itself lingers while the
    // kernel still holds the closed sockets) and the host.
    ip(&["-n", &server.0, "link", "set", &veth_s, "down"]);

    // A client that takes a spare before keepalive has found it dead fails within about -o, as a
    // connect to the vanished host would, rather than wait on TCP's retransmissions for minutes.
    let taken = || sample(r#"spiped_pool_clients_total{spare="taken"}"#).unwrap();
    let taken_before = taken();
    let mut late = UnixStream::connect(&source).unwrap();
    late.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    late.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut got = Vec::new();
    match late.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty(), "an answer from a vanished host? {got:?}"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the client still waits after 60 s: {e}"
        ),
    }
    assert_eq!(taken(), taken_before + 1, "the client took a spare");

    drop((d, redis));
    ip(&["-n", &server.0, "link", "del", &veth_s]);
    drop(server);
    wait_spares(0);

    // A new host takes its address: every client is served, then from its spares.
    let server = Netns::new(&format!("spiped-pv-srv2-{id}"));
    link(&server, &client, &format!("{id}b"));
    let _redis = redis_on(&server, &dir);
    let _d = SpipedCmd::new(&dir, "d2").wrapper(server.exec()).args(d_args).start();
    for i in 0..20 {
        assert_eq!(cli(&["ping"]), "PONG", "client {i} after the new host came");
    }
    wait_spares(4);
    assert_eq!(cli(&["ping"]), "PONG", "a client served from a spare of the new host");
}
