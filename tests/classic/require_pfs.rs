//! `-g` refuses a peer that sends y = 1 (`-f`), on either end: the connection fails, no request
//! reaches the target, and where our end refuses, its log says `-g` refused the peer. spiped 1.6 logs
//! nothing when it refuses (its handshake failures are silent), so where it refuses, the check is that
//! our end logs the handshake failing.
//!
//! The classic message order decides who refuses when: the `-e` end sends its y first, so a `-d`
//! end with `-g` refuses before it answers (and ours before it connects to the target), while an `-e`
//! end with `-g` refuses the `-d` end's y, after that end has connected to its target.

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

        let (refusing, other) = match refuser {
            Refuser::E => (&pair.e, &pair.d),
            Refuser::D => (&pair.d, &pair.e),
        };
        if let End::Ours(_) = refusing {
            refusing.wait_for_line(&["handshake failed", "-g"]);
        }
        if let End::Ours(_) = other {
            other.wait_for_line(&["handshake failed"]);
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
