//! Interop with the classic peer, Debian's spiped 1.6.2, in both roles: the built `spiped` as `-e
//! --protocol classic` in front of spiped 1.6's `-d`, and spiped 1.6's `-e` in front of our `-d` (which
//! accepts both protocols by default), each in front of real Redis, echo and collecting servers.
//!
//! Every scenario that both implementations can run also runs with spiped 1.6 at both ends, as
//! `<scenario>::debian_pair_baseline`: that row has nothing of ours in the path, so when it passes and
//! a cross row fails, the fault is in our classic protocol, not in the harness.
//!
//! Layout (one module per scenario, each with its rows of the matrix):
//! - `ends`: either implementation as either end; the matrix rows; a pair of ends.
//! - `client`: redis-cli, Redis's own counters, a client that expects to be refused.
//! - `redis`: PING, SET/GET and redis-benchmark through the pipe.
//! - `bulk`: 256 MiB each way through an echo server, byte-exact.
//! - `half_close`: the client's end of stream crosses, the reply still arrives.
//! - `wrong_key`: a peer with another key never reaches the target.
//! - `fast`: `-f` (no forward secrecy) and `-g` on either end, in each combination that works.
//! - `require_pfs`: `-g` refusing a `-f` peer, on either end.
//! - `spipe`: spiped 1.6's `spipe` and ours (`--protocol classic`) against either `-d` end: a file
//!   byte-exact, the half-close of spiped's test 08 with a slow echo, our spipe refused with a wrong key
//!   or without `--protocol classic`.
//! - `protocol_choice`: our native-only `-d` refusing a classic initiator, and our native `-e` failing
//!   fast against a classic `-d` with a log line that names `--protocol classic`.
//! - `fleet`: one of our `-d` ends serving a native and a classic `-e` at once, in front of one Redis.
//! - `truncation`: a classic stream cut inside a packet reaches the far side as a reset, never a clean
//!   end (spiped 1.6 passes it on as a clean end), in front of our `-d` and behind our `-e`.

mod support;

#[path = "classic/bulk.rs"]
mod bulk;
#[path = "classic/client.rs"]
mod client;
#[path = "classic/ends.rs"]
mod ends;
#[path = "classic/fast.rs"]
mod fast;
#[path = "classic/fleet.rs"]
mod fleet;
#[path = "classic/half_close.rs"]
mod half_close;
#[path = "classic/protocol_choice.rs"]
mod protocol_choice;
#[path = "classic/redis.rs"]
mod redis;
#[path = "classic/require_pfs.rs"]
mod require_pfs;
#[path = "classic/spipe.rs"]
mod spipe;
#[path = "classic/truncation.rs"]
mod truncation;
#[path = "classic/wrong_key.rs"]
mod wrong_key;
