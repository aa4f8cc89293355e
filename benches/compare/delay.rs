//! A delay link: a TCP relay on loopback that costs what a real link with round-trip time R costs,
//! the TCP handshake included, for the wan measure (issue 16). Loopback has no round trip worth the
//! name and the netem qdisc is not available, so the benchmark puts this relay where the network is.
//!
//! The model, with D = R/2 the one-way delay and t0 the moment the near side's connect reaches the
//! link (on loopback its `connect` returns at once; across a real link it would return at t0 + R,
//! when the SYN-ACK is back):
//! - the far side's connection is opened at t0 + 1.5R. Its SYN would arrive at t0 + D, but a server
//!   sees a connection only when its `accept` returns, after the handshake's last ACK, which leaves
//!   the near side at t0 + R and arrives at t0 + 1.5R. Opened any earlier, a service that speaks
//!   first (spiped 1.6's `-d` sends its nonce at once) would be heard a round trip too soon;
//! - every chunk read from either side is delivered to the other at its arrival + D, in order, by a
//!   timer of its own; nothing else holds it up (no bandwidth limit, no shared queue);
//! - but the near side's bytes reach the far side no earlier than t0 + 1.5R (they can leave only
//!   when its connect returns, at t0 + R), and the far side's bytes reach the near side no earlier
//!   than t0 + 2R (they can leave only once the far side has the connection);
//! - a half-close (FIN) and a reset travel the same way, after the data read before them: a FIN
//!   becomes a `shutdown(Write)` on the other side, a reset a close with a zero linger (an RST).
//!
//! So a direct connection's first reply (connect, request, reply) takes 2R, as across a real link:
//! 1R for the handshake, 1R for the request; a tunnel with a one-round-trip handshake of its own
//! takes 3R. Two things differ from a real link, and neither is in what the benchmark measures: a
//! far side that refuses the connection resets the near one at t0 + 1.5R (a real SYN's RST is back
//! at t0 + R), and a write that fails (its receiver is gone) resets the sender at once rather than a
//! round trip later.
//!
//! Each connection's two directions run as tasks of their own, each a reader and a writer: the reader
//! stamps a chunk with its delivery time and queues it, the writer sleeps until that time and writes.
//! The sleeps are on the link's own clock (clock.rs), which wakes each to within tens of microseconds;
//! tokio's millisecond timers would add about 1 ms at every hop. Sockets have TCP_NODELAY. The link
//! runs a small tokio runtime on threads of its own, so hundreds of connections at once
//! (redis-benchmark `-k 0`) meet no queueing but the delay; what it cannot help is sharing the
//! machine's cores with the processes it connects, which a real link does not. It records what it saw:
//! per connection, from accept to its first byte handed back to the near side (2R when the far side
//! answers at once), and per delivery how late its timer fired (the link's own overhead).

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Alarms, Clock};

/// The most one read takes from a socket: one chunk, delivered by one timer.
const CHUNK: usize = 64 * 1024;

/// Chunks in flight per direction before the reader waits: 16 MiB at most, far above what the
/// measured workloads put in flight, so the bound never delays them; it only caps memory.
const IN_FLIGHT: usize = 256;

/// A running delay link, stopped when dropped.
pub struct DelayLink {
    /// The loopback port the near side connects to.
    pub port: u16,
    /// What the link saw, shared with its tasks; [`DelayLink::take_stats`] reads and resets it.
    stats: Arc<Mutex<LinkStats>>,
    /// Sent (or dropped) to stop the accept loop, and with it the runtime and every connection.
    stop: Option<oneshot::Sender<()>>,
    /// The thread that runs the runtime, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// The timers every delivery waits on; stopped after the runtime (a field drops after `drop`).
    #[allow(dead_code, reason = "held for its Drop")]
    clock: Clock,
}

/// What the link measured about itself since it started or was last asked.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Per connection that got a byte back: from its accept to that byte's delivery to the near side.
    pub first_reply: Vec<Duration>,
    /// Per delivery: how long after its scheduled time it was handed on.
    pub lateness: Vec<Duration>,
}

impl DelayLink {
    /// Starts a link with round-trip time `rtt` from a new loopback port to `far`'s loopback port.
    ///
    /// # Errors
    /// When no port can be bound or the runtime cannot be built.
    pub fn start(far: u16, rtt: Duration) -> Result<Self> {
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the delay link")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("delay-link")
            .enable_all()
            .build()
            .context("the delay link's runtime")?;
        let stats = Arc::new(Mutex::new(LinkStats::default()));
        let (stop, stopped) = oneshot::channel();
        let clock = Clock::start()?;
        let link = Link {
            far: SocketAddr::from((Ipv4Addr::LOCALHOST, far)),
            one_way: rtt / 2,
            stats: stats.clone(),
            alarms: clock.alarms(),
        };
        let thread = std::thread::Builder::new().name("delay-link".into()).spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => link.accept(listener, stopped).await,
                    Err(e) => eprintln!("delay link: {e}"),
                }
            });
            // Shutting the runtime down cancels every connection's tasks and closes their sockets.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
        Ok(Self { port, stats, stop: Some(stop), thread: Some(thread), clock })
    }

    /// What the link measured since it started or was last asked, and a fresh start.
    pub fn take_stats(&self) -> LinkStats {
        std::mem::take(&mut *self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What every connection's tasks share.
#[derive(Clone)]
struct Link {
    /// Where the far side listens.
    far: SocketAddr,
    /// Half the round-trip time.
    one_way: Duration,
    /// Where the tasks record what they saw.
    stats: Arc<Mutex<LinkStats>>,
    /// The clock each delivery waits on.
    alarms: Alarms,
}

/// How a direction ended.
enum End {
    /// Its FIN was delivered: the other direction may go on.
    Closed,
    /// A reset was delivered, or a write failed: the connection is torn down.
    Reset,
}

/// What a reader hands its writer.
enum Event {
    Data(Vec<u8>),
    Fin,
    Reset,
}

impl Link {
    async fn accept(self, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok((near, _)) => {
                        tokio::spawn(self.clone().connection(near, Instant::now()));
                    }
                    Err(e) => {
                        // Out of descriptors, most likely: wait rather than spin.
                        eprintln!("delay link: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    }

    /// Relays one connection accepted at `t0`.
    async fn connection(self, near: TcpStream, t0: Instant) {
        let _ = near.set_nodelay(true);
        let near = Arc::new(near);
        // The handshake's last ACK reaches the far side, whose accept returns.
        let accepted = t0 + 3 * self.one_way;
        // The near side's bytes are read (and stamped) from now on, though they wait for the far side.
        let (far_ready, far_later) = oneshot::channel();
        let mut up = tokio::spawn(self.clone().direction(near.clone(), far_later, accepted, None));
        self.alarms.sleep_until(accepted).await;
        let far = match TcpStream::connect(self.far).await {
            Ok(far) => Arc::new(far),
            Err(_) => {
                up.abort();
                let _ = up.await;
                let _ = near.set_zero_linger();
                return;
            }
        };
        let _ = far.set_nodelay(true);
        let _ = far_ready.send(far.clone());
        let (near_ready, near_now) = oneshot::channel();
        let _ = near_ready.send(near.clone());
        let down_open = accepted + self.one_way;
        let mut down = tokio::spawn(self.direction(far, near_now, down_open, Some(t0)));
        let (first, up_first) = tokio::select! {
            end = &mut up => (end, true),
            end = &mut down => (end, false),
        };
        let other = if up_first { down } else { up };
        match first {
            Ok(End::Closed) => {
                let _ = other.await;
            }
            _ => {
                other.abort();
                let _ = other.await;
            }
        }
        // The last references to both sockets go here: they close (with an RST where one was set).
    }

    /// Carries `from`'s bytes to `to` (once it is there), each at its arrival + D but never before
    /// `open`. `since` is the connection's accept, on the direction back to the near side, to record
    /// its first reply.
    async fn direction(
        self,
        from: Arc<TcpStream>,
        to: oneshot::Receiver<Arc<TcpStream>>,
        open: Instant,
        since: Option<Instant>,
    ) -> End {
        let (queue, queued) = mpsc::channel(IN_FLIGHT);
        let reading = self.read_side(&from, queue, open);
        let writing = async {
            match to.await {
                Ok(to) => self.write_side(&from, &to, queued, since).await,
                Err(_) => End::Reset,
            }
        };
        tokio::pin!(reading, writing);
        tokio::select! {
            end = &mut writing => end,
            () = &mut reading => writing.await,
        }
    }

    /// Records a delivery's lateness and, for a connection's first byte back, its time since accept.
    fn record(&self, late: Duration, first_reply: Option<Duration>) {
        let mut stats = self.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        stats.lateness.push(late);
        stats.first_reply.extend(first_reply);
    }

    /// Reads chunks until a FIN or an error, stamping each with its delivery time.
    async fn read_side(&self, from: &TcpStream, queue: mpsc::Sender<(Instant, Event)>, open: Instant) {
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            let event = match read(from, &mut chunk).await {
                Ok(0) => Event::Fin,
                Ok(_) => Event::Data(chunk),
                Err(_) => Event::Reset,
            };
            let last = !matches!(event, Event::Data(_));
            let at = (Instant::now() + self.one_way).max(open);
            if queue.send((at, event)).await.is_err() || last {
                return;
            }
        }
    }

    /// Delivers each queued event at its time, until the FIN or a reset is delivered.
    async fn write_side(
        &self,
        from: &TcpStream,
        to: &TcpStream,
        mut queued: mpsc::Receiver<(Instant, Event)>,
        mut since: Option<Instant>,
    ) -> End {
        while let Some((at, event)) = queued.recv().await {
            self.alarms.sleep_until(at).await;
            let now = Instant::now();
            let first = if matches!(event, Event::Data(_)) { since.take() } else { None };
            self.record(now - at, first.map(|t0| now - t0));
            match event {
                Event::Data(bytes) => {
                    if write_all(to, &bytes).await.is_err() {
                        let _ = from.set_zero_linger();
                        return End::Reset;
                    }
                }
                Event::Fin => {
                    let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
                    return End::Closed;
                }
                Event::Reset => {
                    let _ = to.set_zero_linger();
                    return End::Reset;
                }
            }
        }
        // The reader stops only after queueing its last event, so this is not reached.
        End::Reset
    }
}

/// One read into `chunk`'s spare capacity: its length, zero at a FIN.
async fn read(from: &TcpStream, chunk: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        from.readable().await?;
        match from.try_read_buf(chunk) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
}

async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks that bytes cross the link intact both ways with half-closes: 16 connections at once, each
/// sending 1 MiB and a FIN, while the far side reads to the FIN, then answers with 1 MiB of its own
/// and a FIN. Run by `cargo test --benches` (the benchmark's `main` without `--bench`); it asserts
/// bytes, never timing.
///
/// # Errors
/// When a connection fails or a byte differs.
pub fn check() -> Result<()> {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;

    const CONNECTIONS: usize = 16;
    const SIZE: usize = 1 << 20;
    let pattern = |seed: u8| -> Vec<u8> { (0..SIZE).map(|i| (i % 251) as u8 ^ seed).collect() };
    let far = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let far_port = far.local_addr()?.port();
    let server = std::thread::spawn(move || -> Result<Vec<Vec<u8>>> {
        let mut handlers = Vec::new();
        for _ in 0..CONNECTIONS {
            let (mut stream, _) = far.accept()?;
            handlers.push(std::thread::spawn(move || -> Result<Vec<u8>> {
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                let mut got = Vec::new();
                stream.read_to_end(&mut got)?;
                // Bytes sent after the near side's FIN still reach it.
                stream.write_all(&pattern(got.first().copied().unwrap_or(0) ^ 0xff))?;
                stream.shutdown(Shutdown::Write)?;
                Ok(got)
            }));
        }
        handlers
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("server thread panicked"))?)
            .collect()
    });
    let link = DelayLink::start(far_port, Duration::from_millis(4))?;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let port = link.port;
            std::thread::spawn(move || -> Result<Vec<u8>> {
                let mut stream = StdStream::connect((Ipv4Addr::LOCALHOST, port))?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                stream.write_all(&pattern(i as u8))?;
                stream.shutdown(Shutdown::Write)?;
                let mut back = Vec::new();
                stream.read_to_end(&mut back)?;
                Ok(back)
            })
        })
        .collect();
    let mut seeds = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        let back = client.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        if back != pattern(i as u8 ^ 0xff) {
            bail!("connection {i}: {} bytes came back, not the far side's 1 MiB", back.len());
        }
        seeds.push(i as u8);
    }
    let received = server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    for got in received {
        let seed = got.first().copied().unwrap_or(0);
        if got != pattern(seed) || !seeds.contains(&seed) {
            bail!("the far side received {} bytes, not a client's 1 MiB", got.len());
        }
        seeds.retain(|s| *s != seed);
    }
    drop(link);
    Ok(())
}
