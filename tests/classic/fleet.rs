//! A mixed fleet: one `-d` end serving two `-e` ends at the same time, in front of one Redis. With
//! ours as the `-d` end, one `-e` end speaks native (ours, on its default) and the other classic
//! (spiped 1.6): the `-d` end tells them apart per connection, on one socket.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::client::{output_within, redis_target, request_line};
use crate::ends::EndSpec;
use crate::support::{Redis, free_port, key_file, plain_addr, redis_cli, scratch};

/// INCRs each `-e` end's client sends in turn with the other's.
const INTERLEAVED: u64 = 200;

/// INCRs redis-benchmark sends through each `-e` end while the other's runs.
const CONCURRENT: u64 = 2_000;

/// One INCR of the key `fleet`, in Redis's protocol.
const INCR: &[u8] = b"*2\r\n$4\r\nINCR\r\n$5\r\nfleet\r\n";

fn one_d_end_serves_two_e_ends_at_once(d: EndSpec, first: EndSpec, second: EndSpec) {
    let dir = scratch("classic-fleet");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "k");
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let d = d.start(&dir, "d", "-d", &d_source, &redis_target(&redis), &key);
    let es: Vec<(_, String)> = [("e1", first), ("e2", second)]
        .into_iter()
        .map(|(name, spec)| {
            let source = format!("[127.0.0.1]:{}", free_port());
            (spec.start(&dir, name, "-e", &source, &d_source, &key), plain_addr(&source))
        })
        .collect();
    let logs = || {
        let mut all = format!("-d end's log:\n{}", d.log_text());
        for (i, (e, _)) in es.iter().enumerate() {
            all += &format!("\n-e end {}'s log:\n{}", i + 1, e.log_text());
        }
        all
    };

    // Both connections open at once, their requests taking turns: the replies count up across both.
    let mut conns: Vec<TcpStream> = es.iter().map(|(_, addr)| TcpStream::connect(addr).unwrap()).collect();
    for conn in &conns {
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    let mut expected = 0;
    for _ in 0..INTERLEAVED {
        for (i, conn) in conns.iter_mut().enumerate() {
            expected += 1;
            let reply =
                request_line(conn, INCR).unwrap_or_else(|e| panic!("-e end {}: {e}\n{}", i + 1, logs()));
            assert_eq!(reply, format!(":{expected}\r\n"), "through -e end {}", i + 1);
        }
    }
    drop(conns);

    // Then each -e end under load while the other's is.
    let benches: Vec<_> = es
        .iter()
        .map(|(_, addr)| {
            let port = addr.rsplit_once(':').expect("host:port").1.to_string();
            std::thread::spawn(move || {
                output_within(
                    Command::new("redis-benchmark").args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-n",
                        &CONCURRENT.to_string(),
                        "-c",
                        "5",
                        "-t",
                        "incr",
                        "-q",
                    ]),
                    Duration::from_secs(120),
                )
            })
        })
        .collect();
    for bench in benches {
        let out = bench.join().expect("the benchmark's thread does not panic");
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), logs());
    }
    assert_eq!(
        redis_cli(&["-p", &redis.port.to_string(), "get", "counter:__rand_int__"]).trim(),
        (2 * CONCURRENT).to_string(),
        "every INCR of both benchmarks arrived once:\n{}",
        logs()
    );
}

#[test]
fn debian_pair_baseline() {
    one_d_end_serves_two_e_ends_at_once(EndSpec::debian(&[]), EndSpec::debian(&[]), EndSpec::debian(&[]));
}

#[test]
fn ours_d_serves_a_native_and_a_classic_e() {
    one_d_end_serves_two_e_ends_at_once(EndSpec::ours(&[]), EndSpec::ours(&[]), EndSpec::debian(&[]));
}
