//! The Redis guide, for real: redis-server behind a `-d`/`-e` pair of the built `spiped`, driven by
//! redis-cli and redis-benchmark, over TCP, unix sockets and IPv6 loopback.

mod support;

use std::process::Command;

use support::*;

fn cli(e_addr: &str, args: &[&str]) -> String {
    let (host, port) = e_addr.rsplit_once(':').unwrap();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    redis_cli(&[&["-h", host, "-p", port][..], args].concat())
}

#[test]
fn ping_set_get_and_benchmark_through_the_tunnel() {
    let dir = scratch("redis-tcp");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "redis.key");
    let pipe = Pipe::start(&dir, &key, &format!("[127.0.0.1]:{}", redis.port), &[], &[]);

    assert_eq!(cli(&pipe.e_addr(), &["ping"]).trim(), "PONG");
    assert_eq!(cli(&pipe.e_addr(), &["set", "guide", "through the pipe"]).trim(), "OK");
    assert_eq!(redis_cli(&["-p", &redis.port.to_string(), "get", "guide"]).trim(), "through the pipe");
    assert_eq!(cli(&pipe.e_addr(), &["get", "guide"]).trim(), "through the pipe");

    let (_, port) = pipe.e_addr().rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
    let bench = Command::new("redis-benchmark")
        .args(["-p", &port, "-n", "5000", "-c", "20", "-t", "set,get,incr,lpush", "-q", "--csv"])
        .output()
        .expect("redis-benchmark must be installed");
    assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));
    let csv = String::from_utf8_lossy(&bench.stdout);
    for test in ["SET", "GET", "INCR", "LPUSH"] {
        assert!(csv.lines().any(|l| l.starts_with(&format!("\"{test}\""))), "{test} missing:\n{csv}");
    }
    // The benchmark's 5000 INCRs on one key, counted by Redis itself, prove every request arrived once.
    assert_eq!(redis_cli(&["-p", &redis.port.to_string(), "get", "counter:__rand_int__"]).trim(), "5000");
}

#[test]
fn unix_sockets_on_both_plaintext_sides() {
    let dir = scratch("redis-unix");
    let redis = Redis::start(&dir, true);
    let key = key_file(&dir, "redis.key");
    let e_source = dir.join("client.sock");
    let redis_sock = redis.unix.clone().unwrap();
    let pipe = Pipe::start_at(
        &dir,
        &key,
        redis_sock.to_str().unwrap(),
        &format!("[127.0.0.1]:{}", free_port()),
        e_source.to_str().unwrap(),
        &[],
        &[],
    );
    let sock = pipe.e_source.clone();
    assert_eq!(redis_cli(&["-s", &sock, "ping"]).trim(), "PONG");
    assert_eq!(redis_cli(&["-s", &sock, "set", "over", "unix"]).trim(), "OK");
    assert_eq!(redis_cli(&["-p", &redis.port.to_string(), "get", "over"]).trim(), "unix");
}

#[test]
fn ipv6_loopback_between_the_ends() {
    let dir = scratch("redis-ipv6");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "redis.key");
    let pipe = Pipe::start_at(
        &dir,
        &key,
        &format!("[::1]:{}", redis.port),
        &format!("[::1]:{}", free_port()),
        &format!("[::1]:{}", free_port()),
        &[],
        &[],
    );
    let port = pipe.e_source.rsplit_once(':').unwrap().1.to_string();
    assert_eq!(redis_cli(&["-h", "::1", "-p", &port, "ping"]).trim(), "PONG");
}

#[test]
fn a_host_name_target_resolves() {
    let dir = scratch("redis-name");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "redis.key");
    let pipe = Pipe::start(&dir, &key, &format!("localhost:{}", redis.port), &[], &["-r", "1"]);
    assert_eq!(cli(&pipe.e_addr(), &["ping"]).trim(), "PONG");
}
