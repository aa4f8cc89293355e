//! SIGHUP on a `-d` end while redis-benchmark runs through the pipe: reloading the same key, and a
//! reload that fails (the key file gone), fail no request and drop no connection; then a reload that
//! puts another key in force leaves the live connection working, serves a new `-e` end with the new
//! key, and refuses a new connection with the old one before it reaches Redis.
//!
//! The benchmark is held mid-run while the reloads happen ([`Rig::under_held_benchmarks`]), so that they
//! land on its live connections whatever the machine's speed.

use crate::rig::{Live, Rig};
use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::scratch;

/// INCRs per benchmark: a few thousand, over 20 connections.
const REQUESTS: u32 = 4_000;

/// Reloads of the unchanged key while the benchmark is held.
const SAME_KEY_RELOADS: usize = 3;

fn reload_under_a_benchmark(keepalive: bool) {
    let (key_a, key_b) = (random_key(), random_key());
    let dir = scratch(&format!("reload-k{}", u8::from(keepalive)));
    // The -d end's key file, rewritten as the test goes; it starts with key A.
    let d_key = dir.join("d.key");
    write_key(&d_key, &key_a, 0o600);
    let rig = Rig::start(&dir, &[&d_key]);
    let (_e_a, e_a_addr) = rig.e_end("e-a", &rig.write_key("a.key", &key_a));
    let mut live = Live::open(&e_a_addr);

    rig.under_held_benchmarks(&[(&e_a_addr, keepalive)], REQUESTS, || {
        for n in 1..=SAME_KEY_RELOADS {
            let line = rig.reload().took(&format!("reload {n} of an unchanged key file"));
            assert!(line.contains(&fingerprint_of(&key_a)), "reload {n}: {line}");
        }
        live.assert_answers("after reloading the same key");

        std::fs::remove_file(&d_key).unwrap();
        let line = rig.reload().failed("a reload without its key file");
        assert!(line.contains(&d_key.display().to_string()), "names the file: {line}");
        live.assert_answers("after a failed reload");
    });
    // The failed reload kept key A in force for new connections too.
    Live::open(&e_a_addr).assert_answers("a new connection on key A after the failed reload");

    write_key(&d_key, &key_b, 0o600);
    let line = rig.reload().took("the reload to key B");
    assert!(line.contains(&fingerprint_of(&key_b)), "key B in force: {line}");
    assert!(!line.contains(&fingerprint_of(&key_a)), "key A no longer: {line}");
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
