//! SIGHUP on a `-d` end while redis-benchmark runs through the pipe: reloading the same key, and a
//! reload that fails (the key file gone), fail no request and drop no connection; then a reload that
//! puts another key in force leaves the live connection working, serves a new `-e` end with the new
//! key, and refuses a new connection with the old one before it reaches Redis.
//!
//! The benchmark is held while the reloads happen, so that they land on its live connections whatever
//! the machine's speed: Redis's `CLIENT PAUSE WRITE` holds its INCRs (each of its connections then
//! waits with a request in flight through the pipe) and `CLIENT UNPAUSE`, after the reloads, lets all
//! its requests go (with `-k 0`, each on a new connection made under the reloaded keys).

use crate::rig::{Benchmark, Live, Reload, Rig};
use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::scratch;

/// INCRs per benchmark: a few thousand, over 20 connections.
const REQUESTS: u32 = 4_000;

/// Reloads of the unchanged key while the benchmark is held.
const SAME_KEY_RELOADS: usize = 3;

/// How long Redis holds the benchmark's requests at most: far longer than the reloads take, so the
/// test's `CLIENT UNPAUSE` is what ends it.
const PAUSE_MS: &str = "60000";

fn reload_under_a_benchmark(keepalive: bool) {
    let (key_a, key_b) = (random_key(), random_key());
    let dir = scratch(&format!("reload-k{}", u8::from(keepalive)));
    // The -d end's key file, rewritten as the test goes; it starts with key A.
    let d_key = dir.join("d.key");
    write_key(&d_key, &key_a, 0o600);
    let rig = Rig::start(&dir, &[&d_key]);
    let (_e_a, e_a_addr) = rig.e_end("e-a", &rig.write_key("a.key", &key_a));
    let mut live = Live::open(&e_a_addr);

    assert_eq!(rig.redis_cli(&["client", "pause", PAUSE_MS, "write"]).trim(), "OK");
    let bench = Benchmark::start(&rig.dir, &e_a_addr, keepalive, REQUESTS);
    // Beside the live connection: each of the benchmark's connections now has an INCR in flight.
    bench.wait_connected(&rig, 1);

    for n in 1..=SAME_KEY_RELOADS {
        match rig.reload() {
            Reload::Took(line) => assert!(line.contains(&fingerprint_of(&key_a)), "reload {n}: {line}"),
            Reload::Failed(line) => panic!("reload {n} of an unchanged key file failed: {line}"),
        }
    }
    live.assert_answers("after reloading the same key");

    std::fs::remove_file(&d_key).unwrap();
    match rig.reload() {
        Reload::Failed(line) => {
            assert!(line.contains(&d_key.display().to_string()), "names the file: {line}")
        }
        Reload::Took(line) => panic!("a reload without its key file took: {line}"),
    }
    live.assert_answers("after a failed reload");

    assert_eq!(Benchmark::counted(&rig), 0, "the benchmark was held while the keys were reloaded");
    assert_eq!(rig.redis_cli(&["client", "unpause"]).trim(), "OK");
    bench.assert_no_failure(&rig);
    // The failed reload kept key A in force for new connections too.
    Live::open(&e_a_addr).assert_answers("a new connection on key A after the failed reload");

    write_key(&d_key, &key_b, 0o600);
    match rig.reload() {
        Reload::Took(line) => {
            assert!(line.contains(&fingerprint_of(&key_b)), "key B in force: {line}");
            assert!(!line.contains(&fingerprint_of(&key_a)), "key A no longer: {line}");
        }
        Reload::Failed(line) => panic!("the reload to key B failed: {line}"),
    }
    live.assert_answers("the connection made on key A, after the switch to key B");
    let (_e_b, e_b_addr) = rig.e_end("e-b", &rig.write_key("b.key", &key_b));
    Live::open(&e_b_addr).assert_answers("a new -e end on key B");
    rig.assert_refused_before_redis(&e_a_addr, "a new connection on key A after the switch");
    live.assert_answers("the connection made on key A, at the end");
}

#[test]
fn reloads_under_a_keepalive_benchmark_fail_no_request_and_switch_keys_for_new_connections() {
    reload_under_a_benchmark(true);
}

#[test]
fn reloads_under_a_reconnecting_benchmark_fail_no_request_and_switch_keys_for_new_connections() {
    reload_under_a_benchmark(false);
}
