//! The accept loop (mini-redis's server shell): a listener and a shutdown signal from the caller, a
//! semaphore for -n, back-off on accept errors, and a drain that waits for every connection.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};

use super::Tunnel;
use super::connection;
use super::stream::{Stream, TcpOptions};

/// Shortest and longest pause after a failed accept (EMFILE, ENFILE, ENOBUFS, ...).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// A bound, listening source socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix-domain.
    Unix(UnixListener),
}

impl Listener {
    /// Takes over a listening socket bound before the runtime started (or passed by systemd). A TCP
    /// listener gets TCP_NODELAY and the keepalive setting of `options`, which Linux copies to every
    /// socket it accepts: no option to set per connection.
    ///
    /// # Errors
    /// When the socket cannot be configured or registered with the runtime.
    pub fn from_std(socket: StdListener, options: TcpOptions) -> io::Result<Self> {
        match socket {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                let sock = socket2::SockRef::from(&l);
                sock.set_tcp_nodelay(true)?;
                sock.set_keepalive(options.keepalive)?;
                Ok(Listener::Tcp(TcpListener::from_std(l)?))
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Unix(UnixListener::from_std(l)?))
            }
        }
    }

    /// Accepts one connection; returns it with the peer's address, for the log.
    async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
            Listener::Unix(l) => Ok((Stream::Unix(l.accept().await?.0), String::from("unix"))),
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

/// Accepts connections until `shutdown` completes, then stops accepting and waits for every live
/// connection to finish.
pub async fn run(listener: Listener, tunnel: Arc<Tunnel>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let limit = (tunnel.max_connections > 0).then(|| Arc::new(Semaphore::new(tunnel.max_connections)));
    // Every connection task holds a sender; when all are dropped, the drain is over.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut backoff = ACCEPT_BACKOFF.0;
    loop {
        let permit = match &limit {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(
                        limit = tunnel.max_connections,
                        "connection limit reached; new connections wait in the backlog"
                    );
                    tokio::select! {
                        permit = sem.clone().acquire_owned() => Some(permit.expect("the semaphore is never closed")),
                        () = &mut shutdown => break,
                    }
                }
            },
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
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
                    () = &mut shutdown => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let tunnel = tunnel.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _alive = alive;
            let started = Instant::now();
            tunnel.stats.active.fetch_add(1, Ordering::Relaxed);
            tunnel.stats.total.fetch_add(1, Ordering::Relaxed);
            let result = connection::handle(stream, tunnel.clone()).await;
            tunnel.stats.active.fetch_sub(1, Ordering::Relaxed);
            let elapsed = started.elapsed();
            match result {
                Ok(s) => {
                    tracing::debug!(%peer, sealed = s.sealed, opened = s.opened, ?elapsed, "connection closed")
                }
                Err(e) => {
                    tunnel.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, ?elapsed, "{e}");
                }
            }
        });
    }
    drop(listener);
    drop(alive);
    let live = tunnel.stats.active.load(Ordering::Relaxed);
    if live > 0 {
        tracing::info!(live, "no longer accepting; waiting for live connections to finish");
    }
    let _ = all_done.recv().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options are set once, on the listener: what is accepted must carry them, or every
    /// connection would run with Nagle's delays and without keepalive.
    #[tokio::test]
    async fn accepted_sockets_carry_the_listeners_options() {
        for keepalive in [true, false] {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let listener = Listener::from_std(StdListener::Tcp(socket), TcpOptions { keepalive }).unwrap();
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (Stream::Tcp(accepted), _) = listener.accept().await.unwrap() else {
                panic!("a TCP listener")
            };
            let sock = socket2::SockRef::from(&accepted);
            assert!(sock.tcp_nodelay().unwrap(), "TCP_NODELAY is inherited");
            assert_eq!(sock.keepalive().unwrap(), keepalive, "SO_KEEPALIVE is inherited");
        }
    }
}
