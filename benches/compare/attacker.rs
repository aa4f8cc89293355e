//! The attacker of the flood measure: silent TCP connections to a `-d` end's source, as a peer
//! without the key can open them. None sends a byte; each is held until the daemon closes it or the
//! attack stops. The connections live on a runtime of their own (one worker thread), so the
//! legitimate client on the calling thread never waits behind them.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use serde_json::{Value, json};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::MissedTickBehavior;

/// Silent connections being opened and held against one port.
pub struct Attacker {
    /// Holds the connections; shutting it down closes them all. `None` once stopped.
    runtime: Option<Runtime>,
    /// What became of the connections, shared with their tasks.
    counts: Arc<Counts>,
}

/// Counters the connection tasks update.
#[derive(Default)]
struct Counts {
    /// Connects issued (a SYN sent), whatever came of them.
    issued: AtomicUsize,
    /// Connects the kernel completed: connections the attacker held, however briefly.
    opened: AtomicUsize,
    /// Connects that failed (refused, timed out, out of descriptors or local ports).
    failed: AtomicUsize,
    /// Opened connections the daemon closed or reset before the attack stopped.
    closed: AtomicUsize,
}

/// What the attacker's connections came to when it stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Connects issued.
    pub issued: usize,
    /// Connects completed.
    pub opened: usize,
    /// Connects that failed.
    pub failed: usize,
    /// Opened connections the daemon closed before the end.
    pub closed: usize,
}

impl Tally {
    pub fn json(&self) -> Value {
        json!({ "issued": self.issued, "opened": self.opened, "failed": self.failed,
                "closed_by_daemon": self.closed })
    }
}

impl Attacker {
    /// Issues `count` connects to `port` at once and returns when all are issued: the kernel queues
    /// what the daemon has not accepted in front of anyone who connects next.
    ///
    /// # Errors
    /// When the runtime cannot start.
    pub fn burst(port: u16, count: usize) -> Result<Self> {
        let attacker = Self::new()?;
        let runtime = attacker.runtime.as_ref().expect("running until stopped");
        for _ in 0..count {
            open(runtime.handle(), port, &attacker.counts);
        }
        Ok(attacker)
    }

    /// Starts issuing `per_second` connects a second to `port` for `seconds`, in the background.
    ///
    /// # Errors
    /// When the runtime cannot start.
    pub fn flood(port: u16, per_second: u32, seconds: u64) -> Result<Self> {
        let attacker = Self::new()?;
        let counts = attacker.counts.clone();
        let runtime = attacker.runtime.as_ref().expect("running until stopped");
        let handle = runtime.handle().clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            // Ticks missed while the machine was busy are caught up, so the count stays exact.
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            for _ in 0..u64::from(per_second) * seconds {
                tick.tick().await;
                open(&handle, port, &counts);
            }
        });
        Ok(attacker)
    }

    fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("attacker")
            .enable_all()
            .build()
            .context("starting the attacker's runtime")?;
        Ok(Self { runtime: Some(runtime), counts: Arc::default() })
    }

    /// Closes every connection still held (with a reset) and returns the tally.
    pub fn stop(mut self) -> Tally {
        let tally = self.tally();
        self.shut_down();
        tally
    }

    fn tally(&self) -> Tally {
        let count = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        let c = &self.counts;
        Tally {
            issued: count(&c.issued),
            opened: count(&c.opened),
            failed: count(&c.failed),
            closed: count(&c.closed),
        }
    }

    fn shut_down(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Issues one connect to `port` and hands the socket to a task on `runtime` that holds it.
fn open(runtime: &tokio::runtime::Handle, port: u16, counts: &Arc<Counts>) {
    counts.issued.fetch_add(1, Ordering::Relaxed);
    match connect(port) {
        Ok(socket) => {
            runtime.spawn(hold(socket, counts.clone()));
        }
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A non-blocking connect to loopback `port`, in progress when it returns.
fn connect(port: u16) -> std::io::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))?;
    // Closing resets instead of leaving TIME_WAIT behind: thousands a measure would pin local ports.
    socket.set_linger(Some(Duration::ZERO))?;
    match socket.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into()) {
        Err(e) if e.raw_os_error() != Some(Errno::EINPROGRESS as i32) => Err(e),
        _ => Ok(socket.into()),
    }
}

/// Waits for the connect to complete, then holds the connection without a word until the daemon
/// closes it (or the runtime shuts down, which drops this task and resets the connection).
async fn hold(socket: std::net::TcpStream, counts: Arc<Counts>) {
    let Ok(mut stream) = TcpStream::from_std(socket) else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // As in tokio's own connect: writable once the handshake ends, with SO_ERROR set if it failed.
    if stream.writable().await.is_err() || !matches!(stream.take_error(), Ok(None)) {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.opened.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0; 256];
    while let Ok(1..) = stream.read(&mut buf).await {}
    counts.closed.fetch_add(1, Ordering::Relaxed);
}
