//! A peer with another key never reaches the target. Where our `-d` end is in front of Redis, Redis
//! does not even see a connection (`total_connections_received`): our `-d` connects only once the
//! initiator has proved the key. spiped 1.6's `-d` connects to its target as soon as it accepts, so
//! behind it the check is that no request ran (`INFO commandstats`).

use crate::client::{calls, expect_refused, redis_target};
use crate::ends::{End, Matrix, Pair};
use crate::support::{Redis, key_file, scratch};

fn a_wrong_key_never_reaches_the_target(row: Matrix) {
    let dir = scratch("classic-wrong-key");
    let redis = Redis::start(&dir, false);
    let (e, d) = row.ends(&[], &[]);
    let (e_key, d_key) = (key_file(&dir, "e.key"), key_file(&dir, "d.key"));
    let pair = Pair::start_with_keys(&dir, (e, &e_key), (d, &d_key), &redis_target(&redis));
    let pings = calls(&redis, "ping");
    let connections = redis.connections_received();

    expect_refused(&pair.e_addr, "a client through an -e end holding another key");

    if let End::Ours(_) = pair.d {
        // The initiator's y came with a MAC made under another key: our -d end can tell.
        pair.d.wait_for_line(&["handshake failed", "wrong key"]);
        assert_eq!(
            redis.connections_received(),
            connections + 1,
            "Redis saw only our own INFO query, no connection from the -d end:\n{}",
            pair.logs()
        );
    }
    if let End::Ours(_) = pair.e {
        // spiped 1.6's -d end closes without a word: our -e end sees the handshake cut short.
        pair.e.wait_for_line(&["handshake failed"]);
    }
    assert_eq!(calls(&redis, "ping"), pings, "no PING ran:\n{}", pair.logs());
}

#[test]
fn debian_pair_baseline() {
    a_wrong_key_never_reaches_the_target(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    a_wrong_key_never_reaches_the_target(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    a_wrong_key_never_reaches_the_target(Matrix::DebianToOurs);
}
