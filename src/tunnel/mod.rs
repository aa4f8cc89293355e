//! The I/O shell: sockets, the accept loop and the per-connection byte pump around the I/O-free
//! [`crate::proto`]. It only moves bytes; every protocol decision is made in `proto`.

pub mod addr;
pub mod connection;
pub mod listener;
pub mod pump;
pub mod stream;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub use connection::Mode;
pub use listener::{AcceptedOptions, Listener, StdListener, bind_tcp, run};

use crate::proto::Psk;
use addr::{Addr, TargetAddrs};
use stream::TcpOptions;

/// Everything a connection needs to know, shared by all of them.
#[derive(Debug)]
pub struct Tunnel {
    /// Which end this is.
    pub mode: Mode,
    /// The shared key.
    pub psk: Psk,
    /// Where connections go, re-resolved in the background for host names.
    pub target: TargetAddrs,
    /// Local address for outgoing connections (-b).
    pub bind: Option<Addr>,
    /// Bound on the target connect and on the handshake (-o).
    pub timeout: Duration,
    /// Most simultaneous connections (-n); 0 for no limit.
    pub max_connections: usize,
    /// TCP socket options for the connections this end makes (accepted ones get theirs from the
    /// listener; see [`AcceptedOptions`]).
    pub tcp: TcpOptions,
    /// Counters for logs and status.
    pub stats: Stats,
}

/// Connection counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections being served now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Connections that ended in an error (handshake, target, or an aborted stream).
    pub failed: AtomicU64,
}
