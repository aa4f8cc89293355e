//! The I/O shell: sockets, the accept loop and the per-connection byte pump around the I/O-free
//! [`crate::proto`]. It only moves bytes; every protocol decision is made in `proto`.

pub mod addr;
pub mod connection;
pub mod dial;
pub mod failures;
pub mod handshake;
pub mod idle;
pub mod listener;
pub mod parked;
pub mod pool;
pub mod proxy_header;
pub mod pump;
pub mod shutdown;
pub mod stream;
pub mod unproven;

use std::sync::Arc;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

pub use connection::Mode;
pub use dial::Dialer;
pub use listener::{AcceptedOptions, Listener, StdListener, Stopped, bind_tcp, run};
pub use parked::Parking;
pub use pool::Pool;

use crate::keys::KeyRing;
use crate::proto::Protocols;
use crate::proto::classic::ForwardSecrecy;
use crate::stats::Snapshot;
pub use crate::stats::Stats;

/// Everything a connection needs to know, shared by all of them: what does not change while the
/// daemon runs, the keys (which a reload replaces), how to reach the target, and the counters.
#[derive(Debug)]
pub struct Tunnel {
    /// Fixed at start.
    pub settings: Settings,
    /// The key set in force; each connection takes a snapshot of it when it starts.
    pub keys: KeyRing,
    /// How connections reach the target, within -o (which also bounds the `-e` end's handshake).
    pub dialer: Dialer,
    /// Counters for logs and status.
    pub stats: Stats,
    /// `-d`: the connections parked by `-e` ends with `--pool`, and the room for them.
    pub parking: Parking,
    /// `-e --pool`: the spare connections to the `-d` end.
    pub pool: Option<Arc<Pool>>,
}

impl Tunnel {
    /// The counters and the keys in force at one moment: what STATUS, `/metrics` and `/status` show.
    pub fn snapshot(&self) -> Snapshot {
        let keys = self.keys.current();
        let parked = self.parking.parked() + self.pool.as_ref().map_or(0, |pool| pool.ready());
        let pool = self.pool.as_ref().map(|pool| pool.counts()).unwrap_or_default();
        Snapshot { parked, pool, ..self.stats.snapshot(keys.usage()) }
    }
}

/// What an end is told at start and keeps.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Which end this is.
    pub mode: Mode,
    /// The protocols connections may use: one on `-e`; one or both on `-d`.
    pub protocols: Protocols,
    /// What classic connections do about forward secrecy (`-f`, `-g`).
    pub classic: ForwardSecrecy,
    /// Bound on a `-d` end's handshake: the time a peer that has not proved the key may hold a
    /// connection. Short, since a legitimate initiator sends its hello as soon as it connects.
    pub unproven_timeout: Duration,
    /// Most simultaneous authenticated connections (-n); 0 for no limit.
    pub max_connections: usize,
    /// Most `-d` connections whose peer has not yet proved the key, in each tier of [`unproven`].
    pub max_unproven: usize,
    /// `-d` with --proxy-protocol: each target connection starts with a PROXY v2 header naming the
    /// peer, so a PROXY-aware service sees who connected rather than the `-d` end's own address.
    pub proxy_protocol: bool,
    /// How long an established connection may carry no data either way before this end closes it
    /// cleanly (`--idle-timeout`): a policy end for connections a client forgot; `None` keeps them.
    pub idle_timeout: Option<Duration>,
}

/// The longest a `-d` end waits for a peer to prove the key (or -o, if shorter): a hello comes as soon
/// as the initiator connects and the key confirmation one round trip later, so this leaves room for a
/// slow link and a lost segment or two, and no more.
pub const UNPROVEN_TIMEOUT: Duration = Duration::from_secs(3);

/// The most unproven connections a `-d` end holds in each tier, whatever the file limit allows.
pub const MAX_UNPROVEN: usize = 1024;

/// Raises the soft limit on open files to the hard limit, as far as the system allows, and returns the
/// limit in force: a daemon that holds two descriptors per connection should not stop at the 1,024 that
/// shells and service managers give by default.
pub fn raise_file_limit() -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 1024 };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// The cap on each of a `-d` end's two tiers of unproven connections (see [`unproven`]) with
/// `file_limit` descriptors: an eighth of them, and at most [`MAX_UNPROVEN`]. A tier holds up to twice
/// its cap while its oldest are within their grace, so the two together never take more than half
/// the descriptors, and authenticated connections are never starved of them.
pub fn unproven_cap(file_limit: u64) -> usize {
    usize::try_from(file_limit / 8).unwrap_or(usize::MAX).clamp(16, MAX_UNPROVEN)
}
