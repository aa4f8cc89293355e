//! Redis through the pipe: PING, SET/GET, and a small redis-benchmark whose every request must arrive.

use std::process::Command;
use std::time::Duration;

use crate::client::{cli, output_within, redis_target};
use crate::ends::{Matrix, Pair};
use crate::support::{Redis, redis_cli, scratch};

/// Requests redis-benchmark makes per test.
const REQUESTS: u32 = 2_000;

/// How long the whole benchmark may take: spiped 1.6 at both ends does it in a few seconds.
const BENCHMARK_WITHIN: Duration = Duration::from_secs(120);

fn ping_set_get_and_benchmark(row: Matrix) {
    let dir = scratch("classic-redis");
    let redis = Redis::start(&dir, false);
    let pair = Pair::start(&dir, row.ends(&[], &[]), &redis_target(&redis));

    assert_eq!(cli(&pair, &["ping"]).trim(), "PONG", "{}", pair.logs());
    assert_eq!(cli(&pair, &["set", "classic", "through the pipe"]).trim(), "OK");
    assert_eq!(redis_cli(&["-p", &redis.port.to_string(), "get", "classic"]).trim(), "through the pipe");
    assert_eq!(cli(&pair, &["get", "classic"]).trim(), "through the pipe");

    let bench = output_within(
        Command::new("redis-benchmark").args([
            "-h",
            "127.0.0.1",
            "-p",
            &pair.e_port(),
            "-n",
            &REQUESTS.to_string(),
            "-c",
            "10",
            "-t",
            "ping,set,get,incr",
            "-q",
            "--csv",
        ]),
        BENCHMARK_WITHIN,
    );
    assert!(bench.status.success(), "{}\n{}", String::from_utf8_lossy(&bench.stderr), pair.logs());
    let csv = String::from_utf8_lossy(&bench.stdout);
    for test in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR"] {
        assert!(csv.lines().any(|l| l.starts_with(&format!("\"{test}\""))), "{test} missing:\n{csv}");
    }
    // Every INCR, counted by Redis itself, arrived exactly once: no request was lost or repeated.
    assert_eq!(
        redis_cli(&["-p", &redis.port.to_string(), "get", "counter:__rand_int__"]).trim(),
        REQUESTS.to_string(),
        "{}",
        pair.logs()
    );
}

#[test]
fn debian_pair_baseline() {
    ping_set_get_and_benchmark(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    ping_set_get_and_benchmark(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    ping_set_get_and_benchmark(Matrix::DebianToOurs);
}
