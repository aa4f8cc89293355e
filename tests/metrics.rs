//! `--metrics`: `/metrics` as Debian's `promtool` and a real Prometheus server read it, with the counts
//! the test caused; `/status` and its target check; every failure counted under its reason.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use spiped::proto::Psk;
use spiped::proto::native::{EphemeralKey, Initiator, MSG2_LEN, PREAMBLE};
use support::http::{self, Response};
use support::keys::fingerprint_of_file as fingerprint_of;
use support::prometheus::{Prometheus, promtool_check};
use support::*;

/// A free loopback address for an endpoint.
fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A pair with `--metrics` on each end (the `-d` end's at `d_metrics`), in front of `target`; returns
/// it with the `-e` end's endpoint.
fn metered_pair(
    dir: &std::path::Path,
    key: &std::path::Path,
    target: &str,
    d_metrics: &str,
) -> (Pipe, String) {
    let e_metrics = free_addr();
    let pipe = Pipe::start(dir, key, target, &["--metrics", d_metrics], &["--metrics", &e_metrics]);
    (pipe, e_metrics)
}

/// The value of the sample `name` (with its labels, as exposed) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn metrics(addr: &str) -> String {
    let response = http::get(addr, "/metrics").unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    response.body
}

/// Waits until `name` in `addr`'s metrics is `expected`.
fn wait_sample(addr: &str, name: &str, expected: f64) {
    eventually(&format!("{name} = {expected}"), Duration::from_secs(20), || {
        let got = sample(&metrics(addr), name);
        if got == Some(expected) { Ok(()) } else { Err(format!("{got:?}")) }
    });
}

fn status(addr: &str) -> (u16, serde_json::Value) {
    let Response { status, body, .. } = http::get(addr, "/status").unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

#[test]
fn promtool_accepts_both_ends_metrics_with_no_findings() {
    let dir = scratch("metrics-promtool");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let d_metrics = free_addr();
    let (pipe, e_metrics) = metered_pair(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &d_metrics);
    let port = pipe.e_addr().rsplit_once(':').unwrap().1.to_string();
    assert_eq!(redis_cli(&["-p", &port, "ping"]).trim(), "PONG");
    wait_sample(&d_metrics, r#"spiped_connections_completed_total{outcome="clean"}"#, 1.0);

    for (end, addr) in [("-d", &d_metrics), ("-e", &e_metrics)] {
        let text = metrics(addr);
        let (ok, findings) = promtool_check(&text);
        assert!(ok && findings.trim().is_empty(), "{end}: promtool findings:\n{findings}\n{text}");
        for family in ["spiped_build_info", "process_open_fds", "process_resident_memory_bytes"] {
            assert!(text.contains(&format!("# HELP {family} ")), "{end}: {family}:\n{text}");
        }
        assert!(sample(&text, "process_open_fds").unwrap() > 0.0);
    }
    let d = metrics(&d_metrics);
    let fingerprint = fingerprint_of(&key);
    assert_eq!(
        sample(&d, &format!(r#"spiped_key_connections_total{{fingerprint="{fingerprint}"}}"#)),
        Some(1.0)
    );
    assert_eq!(sample(&d, r#"spiped_connections_established_total{protocol="native"}"#), Some(1.0));
    assert_eq!(sample(&d, "spiped_handshake_duration_seconds_count"), Some(1.0));
    assert_eq!(sample(&d, "spiped_target_connect_duration_seconds_count"), Some(1.0));
    // PING and PONG, as plaintext: sealed toward the peer, opened from it.
    assert_eq!(sample(&d, r#"spiped_plaintext_bytes_total{direction="opened"}"#), Some(14.0), "{d}");
    assert_eq!(sample(&d, r#"spiped_plaintext_bytes_total{direction="sealed"}"#), Some(7.0), "{d}");
}

/// The issue's scenario: a real Prometheus scrapes both ends of a pair while good, wrong-key and
/// garbage connections arrive, and its query API gives back exactly those counts.
#[test]
fn prometheus_scrapes_the_counts_of_good_wrong_key_and_garbage_connections() {
    let dir = scratch("metrics-prometheus");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let d_metrics = free_addr();
    let (pipe, e_metrics) = metered_pair(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &d_metrics);
    let prometheus = Prometheus::start(&dir, &[("d", &d_metrics), ("e", &e_metrics)]);

    let port = pipe.e_addr().rsplit_once(':').unwrap().1.to_string();
    for _ in 0..5 {
        assert_eq!(redis_cli(&["-p", &port, "ping"]).trim(), "PONG");
    }
    // An -e end with another key: the -d end refuses each of its connections.
    let wrong = key_file(&dir, "wrong");
    let wrong_source = format!("[127.0.0.1]:{}", free_port());
    let _wrong_e = SpipedCmd::new(&dir, "wrong-e")
        .args(["-e", "-s", &wrong_source, "-t", &pipe.d_source, "-k", wrong.to_str().unwrap()])
        .start();
    for _ in 0..3 {
        let mut conn = TcpStream::connect(plain_addr(&wrong_source)).unwrap();
        let _ = conn.write_all(b"*1\r\n$4\r\nPING\r\n");
        assert!(read_until_closed(&mut conn).map_or(true, |got| got.is_empty()), "wrong key: no reply");
    }
    for seed in 0..4 {
        let mut conn = TcpStream::connect(pipe.d_addr()).unwrap();
        conn.write_all(&pattern(seed, 512)).unwrap();
        let _ = read_until_closed(&mut conn);
    }

    let fingerprint = fingerprint_of(&key);
    for (query, expected) in [
        (r#"spiped_connections_completed_total{job="d",outcome="clean"}"#, 5.0),
        (r#"spiped_connections_completed_total{job="e",outcome="clean"}"#, 5.0),
        (r#"spiped_connections_failed_total{job="d",reason="handshake_refused"}"#, 7.0),
        (r#"sum(spiped_connections_failed_total{job="e"})"#, 0.0),
        (r#"spiped_connections_accepted_total{job="d"}"#, 12.0),
        (&format!(r#"spiped_key_connections_total{{job="d",fingerprint="{fingerprint}"}}"#), 5.0),
        (r#"spiped_connections_established_total{job="d",protocol="native"}"#, 5.0),
        (r#"spiped_handshake_duration_seconds_count{job="e"}"#, 5.0),
        (r#"spiped_connections_active{job="d"}"#, 0.0),
        (r#"spiped_build_info{job="d",mode="decrypt"}"#, 1.0),
    ] {
        prometheus.wait_for(query, expected);
    }
}

#[test]
fn status_is_200_while_the_target_answers_and_503_when_it_does_not() {
    let dir = scratch("metrics-status");
    let key = key_file(&dir, "k");
    let redis = Redis::start(&dir, false);
    let target = format!("[127.0.0.1]:{}", redis.port);
    let d_metrics = free_addr();
    let (mut pipe, e_metrics) = metered_pair(&dir, &key, &target, &d_metrics);

    let (code, d) = status(&d_metrics);
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["mode"], "decrypt");
    assert_eq!(d["target"], target.as_str());
    assert_eq!(d["target_check"]["ok"], true);
    assert_eq!(d["keys"][0]["fingerprint"], fingerprint_of(&key).as_str());
    let (code, e) = status(&e_metrics);
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["mode"], "encrypt");
    // The -e end's check connected to the -d end and closed without a byte: a port check there,
    // never a failed handshake.
    wait_sample(&d_metrics, r#"spiped_connections_completed_total{outcome="silent"}"#, 1.0);
    assert_eq!(
        sample(&metrics(&d_metrics), r#"spiped_connections_failed_total{reason="handshake_closed"}"#),
        Some(0.0)
    );

    drop(redis);
    let (code, d) = status(&d_metrics);
    assert_eq!(code, 503, "{d}");
    assert_eq!(d["target_check"]["ok"], false);
    assert!(d["target_check"]["error"].as_str().unwrap().contains("unreachable"), "{d}");
    assert_eq!(status(&e_metrics).0, 200, "the -e end's target, the -d end, is up");

    pipe.d.signal(nix::sys::signal::Signal::SIGKILL);
    pipe.d.wait_gone(Duration::from_secs(10));
    let (code, e) = status(&e_metrics);
    assert_eq!(code, 503, "{e}");
    assert_eq!(e["target_check"]["ok"], false);
}

/// A native client holding `key` that completes the handshake with the `-d` end at `addr` and sends
/// `record` as its first data; returns the connection and the wire bytes of that record.
fn authenticated(addr: &str, key: &std::path::Path, record: &[u8]) -> (TcpStream, Vec<u8>) {
    let psk = Psk::from_key_file(&std::fs::read(key).unwrap());
    let mut conn = TcpStream::connect(addr).unwrap();
    let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rand::rng()));
    conn.write_all(&hello).unwrap();
    let mut msg2 = [0u8; MSG2_LEN];
    conn.read_exact(&mut msg2).unwrap();
    let mut confirmation = Vec::new();
    let (mut tx, _) = initiator.read_response(&msg2, &mut confirmation).unwrap().split();
    conn.write_all(&confirmation).unwrap();
    let mut wire = Vec::new();
    tx.seal_data(record, &mut wire).unwrap();
    (conn, wire)
}

#[test]
fn each_failure_is_counted_under_its_reason() {
    let dir = scratch("metrics-reasons");
    let key = key_file(&dir, "k");
    let (d_metrics, dead_metrics) = (free_addr(), free_addr());
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let k = key.to_str().unwrap();
    let target = format!("[127.0.0.1]:{}", echo_server());
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &d_source, "-t", &target, "-k", k, "-o", "1", "--metrics", &d_metrics])
        .start();
    let d_addr = plain_addr(&d_source);

    // Silent: connected and closed without a byte.
    drop(TcpStream::connect(&d_addr).unwrap());
    // Handshake timeout: the preamble, then nothing until -o.
    let mut conn = TcpStream::connect(&d_addr).unwrap();
    conn.write_all(&PREAMBLE).unwrap();
    let _ = read_until_closed(&mut conn);
    // Handshake closed: the preamble and part of message 1, then the end.
    let mut conn = TcpStream::connect(&d_addr).unwrap();
    conn.write_all(&PREAMBLE).unwrap();
    conn.write_all(&[0x42; 20]).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let _ = read_until_closed(&mut conn);
    // Protocol mismatch: the native preamble with another version.
    let mut conn = TcpStream::connect(&d_addr).unwrap();
    let mut other = PREAMBLE;
    *other.last_mut().unwrap() ^= 0x7f;
    conn.write_all(&other).unwrap();
    let _ = read_until_closed(&mut conn);
    // Truncated: authenticated, one record, then a FIN without the end of stream.
    let (mut conn, wire) = authenticated(&d_addr, &key, b"partial request");
    conn.write_all(&wire).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let _ = read_until_closed(&mut conn);
    // Tampered: authenticated, then a record with one bit changed.
    let (mut conn, mut wire) = authenticated(&d_addr, &key, b"a request");
    *wire.last_mut().unwrap() ^= 1;
    conn.write_all(&wire).unwrap();
    let _ = read_until_closed(&mut conn);

    for (reason, n) in [
        ("handshake_timeout", 1.0),
        ("handshake_closed", 1.0),
        ("protocol_mismatch", 1.0),
        ("truncated", 1.0),
        ("tampered", 1.0),
        ("handshake_refused", 0.0),
        ("target_unreachable", 0.0),
    ] {
        wait_sample(&d_metrics, &format!(r#"spiped_connections_failed_total{{reason="{reason}"}}"#), n);
    }
    let text = metrics(&d_metrics);
    assert_eq!(sample(&text, r#"spiped_connections_completed_total{outcome="silent"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, "spiped_connections_accepted_total"), Some(6.0), "{text}");
    drop(d);

    // Target unreachable: a -d end in front of a port nothing listens on, after a good handshake.
    let dead_source = format!("[127.0.0.1]:{}", free_port());
    let dead_target = format!("[127.0.0.1]:{}", free_port());
    let _dead = SpipedCmd::new(&dir, "dead")
        .args(["-d", "-s", &dead_source, "-t", &dead_target, "-k", k, "--metrics", &dead_metrics])
        .start();
    let (mut conn, _) = authenticated(&plain_addr(&dead_source), &key, b"");
    let _ = read_until_closed(&mut conn);
    wait_sample(&dead_metrics, r#"spiped_connections_failed_total{reason="target_unreachable"}"#, 1.0);
}

#[test]
fn each_time_the_connection_limit_is_reached_it_is_counted() {
    let dir = scratch("metrics-limit");
    let key = key_file(&dir, "k");
    let e_metrics = free_addr();
    let pipe = Pipe::start(
        &dir,
        &key,
        &format!("[127.0.0.1]:{}", echo_server()),
        &[],
        &["-n", "1", "--metrics", &e_metrics],
    );
    let e_source = pipe.e_source.clone();
    assert_eq!(sample(&metrics(&e_metrics), "spiped_connection_limit"), Some(1.0));
    assert_eq!(sample(&metrics(&e_metrics), "spiped_connection_limit_hits_total"), Some(0.0));
    // The one slot taken: the -e end stops accepting, and counts the limit reached.
    let first = TcpStream::connect(plain_addr(&e_source)).unwrap();
    wait_sample(&e_metrics, "spiped_connection_limit_hits_total", 1.0);
    let second = TcpStream::connect(plain_addr(&e_source)).unwrap();
    drop(first);
    // The second, from the backlog, takes the freed slot: the limit is reached again.
    assert_eq!(echo_through(second, b"two"), b"two");
    assert_eq!(sample(&metrics(&e_metrics), "spiped_connection_limit_hits_total"), Some(2.0));
}

#[test]
fn the_endpoint_serves_a_unix_socket_and_refuses_other_methods_and_paths() {
    let dir = scratch("metrics-unix");
    let key = key_file(&dir, "k");
    let socket = dir.join("metrics.sock");
    let (mut pipe, e_metrics) =
        metered_pair(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), socket.to_str().unwrap());
    let response = http::get_unix(&socket, "/metrics").unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.headers.to_lowercase().contains("content-type: text/plain; version=0.0.4"),
        "{response:?}"
    );
    assert!(response.body.contains("spiped_build_info{"), "{}", response.body);
    let posted = http::request(
        &e_metrics,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(posted.status, 405, "{posted:?}");
    assert_eq!(http::get(&e_metrics, "/nothing").unwrap().status, 404);
    pipe.d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(pipe.d.wait_exit(Duration::from_secs(20)).success());
    assert!(!socket.exists(), "the metrics socket file is removed at exit");
}

/// The scrape configuration and alert rules docs/metrics.md offers are what Prometheus accepts.
#[test]
fn the_documented_scrape_config_and_alert_rules_pass_promtool() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus/prometheus.yml");
    let out = std::process::Command::new("promtool").args(["check", "config", config]).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS: 8 rules found"), "the rules file is checked too:\n{said}");
}

#[test]
fn a_connection_closed_for_being_idle_is_counted_as_such() {
    let dir = scratch("metrics-idle");
    let key = key_file(&dir, "k");
    let d_metrics = free_addr();
    let e_metrics = free_addr();
    let pipe = Pipe::start(
        &dir,
        &key,
        &format!("[127.0.0.1]:{}", echo_server()),
        &["--idle-timeout", "0.5", "--metrics", &d_metrics],
        &["--metrics", &e_metrics],
    );
    let mut conn = TcpStream::connect(pipe.e_addr()).unwrap();
    conn.write_all(b"ping").unwrap();
    let mut back = [0; 4];
    conn.read_exact(&mut back).unwrap();
    // Left idle: the -d end closes it; the client reads the end of stream and closes in turn.
    assert_eq!(read_until_closed(&mut conn).unwrap(), b"");
    drop(conn);
    wait_sample(&d_metrics, r#"spiped_connections_completed_total{outcome="idle"}"#, 1.0);
    wait_sample(&e_metrics, r#"spiped_connections_completed_total{outcome="clean"}"#, 1.0);
    let d = metrics(&d_metrics);
    assert_eq!(sample(&d, r#"spiped_connections_completed_total{outcome="clean"}"#), Some(0.0), "{d}");
    assert_eq!(sample(&d, r#"spiped_plaintext_bytes_total{direction="opened"}"#), Some(4.0), "{d}");
}

/// The endpoint serves 16 clients at once; none of these may keep a slot for ever: 16 clients that
/// pipeline requests and never read the replies (each closed once its replies make no progress for
/// 10 s), one that idles after a request (closed by the 5 s limit on the next request's headers), and
/// one whose request body never ends (answered without being read, then closed).
#[test]
fn clients_that_never_read_idle_or_never_finish_a_body_cannot_keep_a_scrape_out() {
    let dir = scratch("metrics-stalled");
    let key = key_file(&dir, "k");
    let e_metrics = free_addr();
    let pipe =
        Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", echo_server()), &[], &["--metrics", &e_metrics]);
    // The two that take a slot first, so that some of the 16 wait for theirs in the backlog.
    let mut idle = TcpStream::connect(&e_metrics).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut endless = TcpStream::connect(&e_metrics).unwrap();
    endless.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nsome").unwrap();
    let _unread: Vec<TcpStream> =
        (0..16).map(|_| http::pipeline_unread(&e_metrics, "/metrics").unwrap()).collect();

    // The tunnel's own connections do not wait for the endpoint.
    let conn = TcpStream::connect(pipe.e_addr()).unwrap();
    assert_eq!(echo_through(conn, b"meanwhile"), b"meanwhile");
    let scraped = eventually("a scrape is served", Duration::from_secs(90), || {
        http::get(&e_metrics, "/metrics").map_err(|e| e.to_string())
    });
    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert!(scraped.body.contains("spiped_build_info{"), "{}", scraped.body);

    for (what, client) in [("idle", &mut idle), ("endless body", &mut endless)] {
        let got = read_until_closed(client).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: answered, then closed: {got}");
        assert_eq!(got.matches("HTTP/1.1 ").count(), 1, "{what}: one reply: {got}");
    }
    let conn = TcpStream::connect(pipe.e_addr()).unwrap();
    assert_eq!(echo_through(conn, b"after"), b"after");
}
