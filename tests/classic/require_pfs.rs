//! `-g` refuses a peer that sends y = 1 (`-f`), on either end: the connection fails, no request
//! reaches the target, and where our end refuses, its log says `-g` refused the peer.
//!
//! The classic message order decides who refuses when, and what the other end can know: the `-e`
//! end sends its y first and the `-d` end answers with its own only after checking it.
//! - A `-d` end with `-g` refuses before it answers (and ours before it connects to the target). The
//!   `-e` end, still waiting for that answer, sees its handshake cut short, and ours logs that.
//!   spiped 1.6 refusing logs nothing: its handshake failures are silent.
//! - An `-e` end with `-g` refuses the `-d` end's y. That `-d` end has finished its handshake and
//!   connected to its target, and then sees a connection that ends before any data, which is also
//!   what a client that sends nothing looks like: it cannot tell a refusal, so nothing is asserted
//!   of its log.

use crate::client::{calls, expect_refused, redis_target};
use crate::ends::{End, Matrix, Pair};
use crate::support::{Redis, scratch};

/// Which end refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refuser {
    /// The `-e` end, with `-g`, refusing a `-d` end with `-f`.
    E,
    /// The `-d` end, with `-g`, refusing an `-e` end with `-f`.
    D,
}

/// The `-e` end's and the `-d` end's extra flags, and which end refuses.
const REFUSALS: [(&[&str], &[&str], Refuser); 2] =
    [(&["-f"], &["-g"], Refuser::D), (&["-g"], &["-f"], Refuser::E)];

fn g_refuses_an_f_peer(row: Matrix) {
    let dir = scratch("classic-require-pfs");
    let redis = Redis::start(&dir, false);
    for (i, (e_extra, d_extra, refuser)) in REFUSALS.into_iter().enumerate() {
        let dir = dir.join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let pair = Pair::start(&dir, row.ends(e_extra, d_extra), &redis_target(&redis));
        let pings = calls(&redis, "ping");
        let connections = redis.connections_received();

        expect_refused(&pair.e_addr, &format!("-e {e_extra:?} to -d {d_extra:?}"));

        let refusing = match refuser {
            Refuser::E => &pair.e,
            Refuser::D => &pair.d,
        };
        if let End::Ours(_) = refusing {
            refusing.wait_for_line(&["handshake failed", "-g"]);
        }
        if let (Refuser::D, End::Ours(_)) = (refuser, &pair.e) {
            pair.e.wait_for_line(&["handshake failed"]);
        }
        if let (Refuser::D, End::Ours(_)) = (refuser, &pair.d) {
            assert_eq!(
                redis.connections_received(),
                connections + 1,
                "our -d end refused before connecting: Redis saw only our own INFO query\n{}",
                pair.logs()
            );
        }
        assert_eq!(calls(&redis, "ping"), pings, "-e {e_extra:?} to -d {d_extra:?}: no PING ran");
    }
}

#[test]
fn debian_pair_baseline() {
    g_refuses_an_f_peer(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    g_refuses_an_f_peer(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    g_refuses_an_f_peer(Matrix::DebianToOurs);
}
