//! Choosing the protocol: our `-d --protocol native` refuses a classic initiator, and our `-e` on its
//! default (native) fails fast against a classic `-d` end, with a log line that says what to do.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client::{PING, calls, expect_refused, redis_target};
use crate::ends::{EndSpec, Pair};
use crate::support::{Redis, scratch};

/// The `-o` given to both ends in the fail-fast test: far longer than detection needs, so a close
/// that comes from a timeout is not mistaken for one that comes from detection.
const HANDSHAKE_TIMEOUT: &str = "30";

/// How long the fail-fast test waits for our log line and for the client's close: a third of
/// [`HANDSHAKE_TIMEOUT`], so both must come while the connection is still inside its `-o` window.
const DETECTED_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn ours_native_d_refuses_a_classic_initiator() {
    let dir = scratch("classic-native-d");
    let redis = Redis::start(&dir, false);
    let pair = Pair::start(
        &dir,
        (EndSpec::debian(&[]), EndSpec::ours(&["--protocol", "native"])),
        &redis_target(&redis),
    );
    let pings = calls(&redis, "ping");
    let connections = redis.connections_received();

    expect_refused(&pair.e_addr, "a classic initiator at a native-only -d end");
    pair.d.wait_for_line(&["handshake failed", "classic spiped"]);
    assert_eq!(
        redis.connections_received(),
        connections + 1,
        "Redis saw only our own INFO query, no connection from the -d end:\n{}",
        pair.logs()
    );
    assert_eq!(calls(&redis, "ping"), pings, "no PING ran");
}

/// A classic `-d` end sends its 32-byte nonce unprompted; a native one never sends before the
/// initiator's hello. So our native `-e` end can tell at once that its target speaks classic spiped,
/// and must say so, naming the flag that fixes it, instead of waiting out `-o`.
///
/// No timing assertion: the bound is on how long the test waits, a third of `-o`, and what proves
/// detection is the log line's content (a timeout logs "handshake timed out").
#[test]
fn ours_native_e_against_debian_d_fails_fast_naming_protocol_classic() {
    let dir = scratch("classic-native-e");
    let redis = Redis::start(&dir, false);
    let pair = Pair::start(
        &dir,
        (EndSpec::ours(&["-o", HANDSHAKE_TIMEOUT]), EndSpec::debian(&["-o", HANDSHAKE_TIMEOUT])),
        &redis_target(&redis),
    );
    let pings = calls(&redis, "ping");

    let mut client = TcpStream::connect(&pair.e_addr).unwrap();
    // The -e end may already have closed it: a failed write is as good as a close.
    let _ = client.write_all(PING);
    pair.e.wait_for_line_within(&["classic spiped", "--protocol classic"], DETECTED_WITHIN);
    client.set_read_timeout(Some(DETECTED_WITHIN)).unwrap();
    let mut got = Vec::new();
    match client.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty(), "{} bytes came back: {got:?}", got.len()),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the client's connection is still open {DETECTED_WITHIN:?} after it connected:\n{}",
            pair.logs()
        ),
    }
    assert!(!pair.e.log_text().contains("handshake timed out"), "detected, not timed out:\n{}", pair.logs());
    assert_eq!(calls(&redis, "ping"), pings, "no PING ran");
}
