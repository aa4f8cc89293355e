//! `-e --pool`: spare connections parked at the `-d` end serve clients at once, correctly, and the
//! service sees a connection only when a client comes; spares expire and are replaced; a `-d` end
//! that restarts or refuses to park costs no client an error.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

/// The value of `name` in the metrics served at `addr`.
fn sample(addr: &str, name: &str) -> Option<f64> {
    let page = support::http::get(addr, "/metrics").ok()?.body;
    page.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until the `-d` end whose metrics are at `addr` holds `n` parked connections.
fn wait_parked(addr: &str, n: f64) {
    eventually(&format!("{n} parked"), Duration::from_secs(30), || {
        let got = sample(addr, "spiped_parked_connections");
        if got == Some(n) { Ok(()) } else { Err(format!("{got:?}")) }
    });
}

/// A pair with `--pool` (and `e_extra`) on the `-e` end and metrics on the `-d` end at the returned
/// address.
fn pooled_pair(dir: &std::path::Path, target: &str, e_extra: &[&str]) -> (Pipe, String) {
    let key = key_file(dir, "k");
    let metrics = format!("127.0.0.1:{}", free_port());
    let pipe = Pipe::start(dir, &key, target, &["--metrics", &metrics], e_extra);
    (pipe, metrics)
}

fn ping(addr: &str) -> Result<(), String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    conn.write_all(b"*1\r\n$4\r\nPING\r\n").map_err(|e| e.to_string())?;
    let mut reply = [0u8; 7];
    conn.read_exact(&mut reply).map_err(|e| e.to_string())?;
    if &reply == b"+PONG\r\n" { Ok(()) } else { Err(format!("{reply:?}")) }
}

#[test]
fn redis_through_a_pool_and_a_burst_larger_than_the_pool() {
    let dir = scratch("pool-redis");
    let redis = Redis::start(&dir, false);
    let e_metrics = format!("127.0.0.1:{}", free_port());
    let (pipe, metrics) =
        pooled_pair(&dir, &format!("[127.0.0.1]:{}", redis.port), &["--pool", "4", "--metrics", &e_metrics]);
    wait_parked(&metrics, 4.0);
    let port = pipe.e_addr().rsplit_once(':').unwrap().1.to_string();
    assert_eq!(redis_cli(&["-p", &port, "ping"]).trim(), "PONG");
    assert_eq!(redis_cli(&["-p", &port, "set", "pooled", "yes"]).trim(), "OK");
    assert_eq!(redis_cli(&["-p", &port, "get", "pooled"]).trim(), "yes");
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let addr = pipe.e_addr();
            std::thread::spawn(move || ping(&addr))
        })
        .collect();
    let failed: Vec<String> = burst.into_iter().filter_map(|t| t.join().unwrap().err()).collect();
    assert!(failed.is_empty(), "{} of 200 failed: {failed:?}", failed.len());
    // The pool fills up again.
    wait_parked(&metrics, 4.0);
    // Every client took a spare or found none: the first three (redis-cli) found one each.
    let taken = sample(&e_metrics, r#"spiped_pool_clients_total{spare="taken"}"#).unwrap();
    let missed = sample(&e_metrics, r#"spiped_pool_clients_total{spare="missed"}"#).unwrap();
    assert_eq!(taken + missed, 203.0, "taken {taken}, missed {missed}");
    assert!(taken >= 3.0, "taken {taken}");
}

#[test]
fn the_service_sees_a_connection_only_when_a_client_comes_even_a_silent_one() {
    let dir = scratch("pool-silent");
    let redis = Redis::start(&dir, false);
    let (pipe, metrics) = pooled_pair(&dir, &format!("[127.0.0.1]:{}", redis.port), &["--pool", "3"]);
    wait_parked(&metrics, 3.0);
    let before = redis.connections_received();
    let mut client = TcpStream::connect(pipe.e_addr()).unwrap();
    // Each INFO query counts itself: what is left is the client's connection, once it is made.
    let mut queries = 0;
    eventually("redis sees the silent client's connection", Duration::from_secs(20), || {
        queries += 1;
        match redis.connections_received() - before - queries {
            1 => Ok(()),
            n => Err(format!("{n} connections besides our queries")),
        }
    });
    client.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut reply = [0u8; 7];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
}

#[test]
fn a_service_that_speaks_first_and_a_byte_exact_transfer_through_spares() {
    let dir = scratch("pool-bytes");
    let (pipe, metrics) =
        pooled_pair(&dir, &format!("[127.0.0.1]:{}", echo_server_saying(b"hello\n")), &["--pool", "2"]);
    wait_parked(&metrics, 2.0);
    let mut silent = TcpStream::connect(pipe.e_addr()).unwrap();
    let mut greeting = [0u8; 6];
    silent.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"hello\n", "heard while the client says nothing");

    let data = pattern(7, 1 << 20);
    let got = echo_through(TcpStream::connect(pipe.e_addr()).unwrap(), &data);
    assert_eq!(got.len(), 6 + data.len());
    assert_eq!(digest(&got[6..]), digest(&data), "1 MiB back byte for byte");
}

#[test]
fn spares_expire_and_are_replaced() {
    let dir = scratch("pool-expire");
    let (_pipe, metrics) =
        pooled_pair(&dir, &format!("[127.0.0.1]:{}", echo_server()), &["--pool", "2", "--pool-idle", "0.3"]);
    eventually("spares retired unused and replaced", Duration::from_secs(30), || {
        let unused =
            sample(&metrics, r#"spiped_connections_completed_total{outcome="unused"}"#).unwrap_or(0.0);
        if unused >= 4.0 { Ok(()) } else { Err(format!("{unused} retired")) }
    });
    wait_parked(&metrics, 2.0);
}

#[test]
fn a_d_end_restarted_while_spares_are_parked_costs_no_client_an_error() {
    let dir = scratch("pool-restart");
    let key = key_file(&dir, "k");
    let target = format!("[127.0.0.1]:{}", echo_server());
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let e_source = format!("[127.0.0.1]:{}", free_port());
    let k = key.to_str().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let d_args = ["-d", "-s", &d_source, "-t", &target, "-k", k, "--metrics", &metrics];
    let mut d = SpipedCmd::new(&dir, "d").args(d_args).start();
    let _e = SpipedCmd::new(&dir, "e")
        .args(["-e", "-s", &e_source, "-t", &d_source, "-k", k, "--pool", "4"])
        .start();
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        wait_parked(&metrics, 4.0);
        d.signal(signal);
        d.wait_gone(Duration::from_secs(20));
        d = SpipedCmd::new(&dir, "d").args(d_args).start();
        for i in 0..20u8 {
            let got = echo_through(TcpStream::connect(plain_addr(&e_source)).unwrap(), &[i; 100]);
            assert_eq!(got, [i; 100], "after a {signal:?}, client {i}");
        }
    }
}

#[test]
fn a_d_end_that_refuses_to_park_still_serves_every_client() {
    let dir = scratch("pool-refused");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "k");
    let e_metrics = format!("127.0.0.1:{}", free_port());
    let pipe = Pipe::start(
        &dir,
        &key,
        &format!("[127.0.0.1]:{}", redis.port),
        &["--max-parked", "0"],
        &["--pool", "4", "--metrics", &e_metrics],
    );
    for _ in 0..20 {
        ping(&pipe.e_addr()).unwrap();
    }
    let failures = |reason: &str| {
        sample(&e_metrics, &format!(r#"spiped_pool_spare_failures_total{{reason="{reason}"}}"#))
    };
    assert!(failures("refused").unwrap() > 0.0, "the refusals are counted as such");
    for reason in ["connect", "handshake", "unanswered"] {
        assert_eq!(failures(reason), Some(0.0), "{reason}");
    }
    assert_eq!(sample(&e_metrics, r#"spiped_pool_clients_total{spare="taken"}"#), Some(0.0));
    assert_eq!(sample(&e_metrics, r#"spiped_pool_clients_total{spare="missed"}"#), Some(20.0));
}

#[test]
fn a_reload_replaces_the_spares_made_under_the_old_key() {
    let dir = scratch("pool-reload");
    let (pipe, metrics) = pooled_pair(&dir, &format!("[127.0.0.1]:{}", echo_server()), &["--pool", "3"]);
    wait_parked(&metrics, 3.0);
    pipe.e.signal(Signal::SIGHUP);
    eventually("the old spares retired unused at the -d end", Duration::from_secs(20), || {
        let unused =
            sample(&metrics, r#"spiped_connections_completed_total{outcome="unused"}"#).unwrap_or(0.0);
        if unused >= 3.0 { Ok(()) } else { Err(format!("{unused} retired")) }
    });
    wait_parked(&metrics, 3.0);
    assert_eq!(echo_through(TcpStream::connect(pipe.e_addr()).unwrap(), b"after"), b"after");
}
