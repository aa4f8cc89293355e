//! The accept loop (mini-redis's server shell): a listener and a shutdown signal from the caller, a
//! semaphore for -n, back-off on accept errors, and a drain that waits for every connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};

use super::Tunnel;
use super::connection::{self, Admission, Mode};
use super::failures::FailureLog;
use super::shutdown::abort_channel;
use super::stream::{Stream, TcpOptions};
use super::unproven::Unproven;
use crate::stats::{Counted, Ending};

/// Shortest and longest pause after a failed accept (EMFILE, ENFILE, ENOBUFS, ...).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Most connections waiting to be accepted; Linux caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Binds and listens on `addr` with TCP_NODELAY and the keepalive setting of `options` already set,
/// so that every connection the kernel completes on it carries them: Linux copies a listener's
/// options into each connection as its handshake completes, so none need setting per connection.
///
/// # Errors
/// The operating system's error.
pub fn bind_tcp(addr: SocketAddr, options: TcpOptions) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    options.apply(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Where accepted TCP sockets get TCP_NODELAY and keepalive from.
#[derive(Debug, Clone, Copy)]
pub enum AcceptedOptions {
    /// From the listener, which had them before it listened ([`bind_tcp`]).
    Inherited,
    /// Set on each accepted socket: for a listener made elsewhere (passed by systemd), where
    /// connections may have queued before anything could be set on it.
    PerSocket(TcpOptions),
}

/// A bound, listening source socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP, and where its accepted sockets get their options.
    Tcp(TcpListener, AcceptedOptions),
    /// Unix-domain.
    Unix(UnixListener),
}

impl Listener {
    /// Takes over a listening socket bound before the runtime started (or passed by systemd).
    ///
    /// # Errors
    /// When the socket cannot be registered with the runtime.
    pub fn from_std(socket: StdListener, accepted: AcceptedOptions) -> io::Result<Self> {
        match socket {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Tcp(TcpListener::from_std(l)?, accepted))
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Unix(UnixListener::from_std(l)?))
            }
        }
    }

    /// Accepts one connection; returns it with the peer's address, for the log.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l, accepted) => {
                let (stream, peer) = l.accept().await?;
                if let AcceptedOptions::PerSocket(options) = accepted {
                    options.apply(&stream)?;
                }
                Ok((Stream::Tcp(stream), Peer(Some(peer))))
            }
            Listener::Unix(l) => Ok((Stream::Unix(l.accept().await?.0), Peer(None))),
        }
    }
}

/// Who connected: a TCP peer's address, or nobody in particular on a unix socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(Option<SocketAddr>);

impl Peer {
    fn ip(self) -> Option<std::net::IpAddr> {
        self.0.map(|a| a.ip())
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unix"),
        }
    }
}

/// A listening socket from the standard library, bound before the runtime exists.
#[derive(Debug)]
pub enum StdListener {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// Unix-domain.
    Unix(std::os::unix::net::UnixListener),
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every live connection finished on its own.
    Drained,
    /// The forced stop came first: this many connections were reset.
    Aborted(u64),
}

/// Accepts connections until `drain` completes, then stops accepting and waits for every live
/// connection to finish; if `force` completes first, resets the live connections and returns once
/// their tasks are gone.
///
/// On a `-e` end a connection takes its `-n` slot before it is accepted: at the limit, new clients wait
/// in the backlog. On a `-d` end the accept loop never waits: a connection is unproven until its peer
/// proves the key, unproven ones have a cap of their own (the oldest is closed for a new one), and only
/// an authenticated connection takes a `-n` slot. A flood of connections from peers without the key
/// therefore never stops a legitimate one from being accepted.
pub async fn run(
    listener: Listener,
    tunnel: Arc<Tunnel>,
    drain: impl Future<Output = ()>,
    force: impl Future<Output = ()>,
) -> Stopped {
    tokio::pin!(drain);
    let limit = (tunnel.settings.max_connections > 0)
        .then(|| Arc::new(Semaphore::new(tunnel.settings.max_connections)));
    let unproven =
        (tunnel.settings.mode == Mode::Decrypt).then(|| Unproven::new(tunnel.settings.max_unproven));
    let failures = FailureLog::new();
    let summaries = tokio::spawn(failures.clone().summarize());
    let (aborter, abort) = abort_channel();
    // Every connection task holds a sender; when all are dropped, the drain is over.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        let permit = match (&limit, tunnel.settings.mode) {
            (Some(sem), Mode::Encrypt) => match sem.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tunnel.stats.limit_hit();
                    tracing::warn!(
                        limit = tunnel.settings.max_connections,
                        "connection limit reached; new connections wait in the backlog"
                    );
                    tokio::select! {
                        permit = sem.clone().acquire_owned() => Some(permit.expect("the semaphore is never closed")),
                        () = &mut drain => break,
                    }
                }
            },
            _ => None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut drain => break,
        };
        let (stream, peer) = match accepted {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF.0;
                stream
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut drain => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let ticket = unproven.as_ref().map(|set| {
            let (ticket, made_room) = set.admit();
            if made_room {
                tracing::debug!(cap = set.cap(), "unproven connections at their cap: closing the oldest");
            }
            ticket
        });
        let admission = Admission {
            unproven: ticket,
            limit: if tunnel.settings.mode == Mode::Decrypt { limit.clone() } else { None },
            abort: abort.clone(),
        };
        let tunnel = tunnel.clone();
        let failures = failures.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _alive = alive;
            let started = Instant::now();
            tunnel.stats.total.fetch_add(1, Ordering::Relaxed);
            // Counted out when dropped: even if the task ends in a panic, the count and the drain stay right.
            let active = Counted::new(&tunnel.stats.active);
            let result = connection::handle(stream, &tunnel, admission).await;
            drop(active);
            let elapsed = started.elapsed();
            match result {
                Ok(s) if s.ending == Ending::Unused => {
                    // A spare retired unused: routine for a pool, and one a minute per spare.
                    tunnel.stats.ended(s.ending);
                    tracing::debug!(%peer, key = s.key.map(|k| k.to_string()), ?elapsed, outcome = "unused", "connection closed");
                }
                Ok(s) => {
                    tunnel.stats.ended(s.ending);
                    // One line per connection at its end: who, with which key, how long, how much each
                    // way (sealed: to the encrypted peer; opened: from it).
                    let key = s.key.map(|k| k.to_string());
                    tracing::info!(%peer, key, sealed = s.sealed, opened = s.opened, ?elapsed, outcome = s.ending.label(), "connection closed")
                }
                Err(e) if e.is_silent() => {
                    tunnel.stats.ended(Ending::Silent);
                    tracing::debug!(%peer, ?elapsed, outcome = "silent", "{e}");
                }
                Err(e) => {
                    tunnel.stats.failed(e.failure());
                    let in_full = match e.handshake_reason() {
                        Some(reason) => failures.note(peer.ip(), reason),
                        None => true,
                    };
                    if in_full {
                        tracing::warn!(%peer, ?elapsed, outcome = "failed", "{e}");
                    }
                }
            }
        });
    }
    drop(listener);
    drop(alive);
    // Parked connections carry nothing: retired at once, they hold the drain up no longer than it
    // takes to say so.
    tunnel.parking.stop();
    if let Some(pool) = &tunnel.pool {
        pool.retire_all();
    }
    let live = tunnel.stats.active.load(Ordering::Relaxed);
    if live > 0 {
        tracing::info!(live, "no longer accepting; waiting for live connections to finish");
    }
    let stopped = tokio::select! {
        _ = all_done.recv() => Stopped::Drained,
        () = force => {
            let live = tunnel.stats.active.load(Ordering::Relaxed);
            tracing::warn!(live, "stopping at once: resetting live connections");
            aborter.abort_all();
            let _ = all_done.recv().await;
            Stopped::Aborted(live)
        }
    };
    summaries.abort();
    if let Some(summary) = failures.end_period() {
        tracing::warn!("{summary}");
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts one connection made after `listener` was set up, and returns its options.
    async fn accepted_options(listener: Listener, addr: SocketAddr) -> (bool, bool) {
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (Stream::Tcp(accepted), _) = listener.accept().await.unwrap() else { panic!("a TCP listener") };
        let sock = socket2::SockRef::from(&accepted);
        (sock.tcp_nodelay().unwrap(), sock.keepalive().unwrap())
    }

    /// The options are set once, on the listener we bind: what it accepts must carry them, or every
    /// connection would run with Nagle's delays and without keepalive.
    #[tokio::test]
    async fn sockets_accepted_from_our_listener_inherit_its_options() {
        for keepalive in [true, false] {
            let socket = bind_tcp("127.0.0.1:0".parse().unwrap(), TcpOptions { keepalive }).unwrap();
            let addr = socket.local_addr().unwrap();
            let listener = Listener::from_std(StdListener::Tcp(socket), AcceptedOptions::Inherited).unwrap();
            assert_eq!(accepted_options(listener, addr).await, (true, keepalive), "keepalive {keepalive}");
        }
    }

    /// A listener made elsewhere (systemd's) has whatever options it was given; each accepted
    /// socket gets ours, including connections that queued before we had the listener.
    #[tokio::test]
    async fn sockets_accepted_from_a_passed_listener_get_the_options_set() {
        for keepalive in [true, false] {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let queued = std::net::TcpStream::connect(addr).unwrap();
            let options = AcceptedOptions::PerSocket(TcpOptions { keepalive });
            let listener = Listener::from_std(StdListener::Tcp(socket), options).unwrap();
            let (Stream::Tcp(first), _) = listener.accept().await.unwrap() else { panic!("a TCP listener") };
            let sock = socket2::SockRef::from(&first);
            assert_eq!((sock.tcp_nodelay().unwrap(), sock.keepalive().unwrap()), (true, keepalive), "queued");
            drop(queued);
            assert_eq!(accepted_options(listener, addr).await, (true, keepalive), "keepalive {keepalive}");
        }
    }
}
