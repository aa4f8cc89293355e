//! `-e --pool N`: spare connections to the `-d` end, connected, authenticated and parked there
//! (docs/PROTOCOL.md 4.6) before any client needs them, so that a client's first bytes leave at once:
//! across a network with round-trip time R, its first reply comes after about 1R instead of 3R.
//!
//! A filler task keeps up to N spares: it makes them a few at a time, backs off when the `-d` end
//! fails or refuses them, retires each after `--pool-idle` (and makes another), and drops those the
//! `-d` end has retired or lost. A client takes the oldest live spare; one found closed is dropped
//! before any client byte is written to it, so no byte is ever sent twice. With no spare ready, the
//! client's connection is made as without the pool. A `-d` end that closes every connection it is
//! asked to park without answering predates parked connections: the pool says so and turns off, then
//! tries one spare every `--pool-idle` and turns back on once the `-d` end parks it (upgraded).
//!
//! Spares carry keepalive probes while they wait, so that one whose `-d` host vanished without a word
//! is found dead within seconds and dropped; a client's connection gets back the probing it would have
//! had without the pool. A client that takes a spare in those seconds fails within -o (a [`Bound`] on
//! unacknowledged bytes while the connection is new), as a connect to the vanished host would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::RngExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::Tunnel;
use super::connection::{ConnError, dial};
use super::handshake::{HandshakeError, native};
use super::stream::{Probes, ReadHalf, WriteHalf};
use crate::keys::KeySet;
use crate::proto::Protocol;
use crate::proto::native::Ready;
use crate::stats::{PoolCounts, SpareFailure};

/// Shortest and longest pause after a spare could not be made.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// Spares closed unanswered in a row before the pool takes the `-d` end for one that cannot park, and
/// turns itself off until a probe, one `--pool-idle` later, finds it parking.
const UNANSWERED_LIMIT: u32 = 3;

/// How often the filler looks over its spares for expired or closed ones.
const SWEEP: Duration = Duration::from_secs(1);

/// The share of `--pool-idle` by which a spare's life is cut short at random, so that spares made
/// together (at start, after a reload) are not all retired and remade together.
const JITTER: f64 = 0.1;

/// A spare's keepalive probing, at most: a `-d` host that vanishes without a word (a crash, a network
/// that drops idle flows) leaves spares that look open, and only probes find them dead. With 2 probes
/// unanswered, a spare is found dead within about 6 s of its host's going (and dropped at the next
/// sweep); a client that takes one before then meets what any connection meets when its server's host
/// vanishes. A probe every 2 s per spare is nothing on the wire. Shorter for a short `--pool-idle`: a
/// sixth of it, but never under the kernel's 1 s.
const PROBE: Duration = Duration::from_secs(2);

/// Unanswered probes after which a spare's connection is dropped.
const PROBES_UNANSWERED: u32 = 2;

/// The spares of an `-e` end.
#[derive(Debug)]
pub struct Pool {
    /// Spares to keep (`--pool`).
    size: usize,
    /// How long a spare is kept before it is retired and replaced (`--pool-idle`); also the pause
    /// between probes of a `-d` end that did not park.
    idle: Duration,
    /// The spares ready now, oldest first.
    spares: Mutex<VecDeque<Spare>>,
    /// Wakes the filler when a spare was taken.
    wanted: Notify,
    /// Set while the `-d` end does not park connections: clients connect as without a pool.
    off: AtomicBool,
    /// Set when the end stops: no spare is made or taken again.
    stopped: AtomicBool,
    /// Clients served from a spare.
    taken: AtomicU64,
    /// Clients that found no spare ready and connected as without a pool.
    missed: AtomicU64,
    /// Spares that could not be made, by [`SpareFailure`].
    failed: [AtomicU64; SpareFailure::ALL.len()],
}

/// The filler's pace: how soon it may make the next spare after failures.
#[derive(Debug, Default)]
struct Pace {
    /// The pause after the last failure; doubled by each failure in a row.
    delay: Duration,
    /// No spare is made before then; `None` when none failed last.
    retry_at: Option<Instant>,
    /// Spares closed unanswered in a row.
    unanswered: u32,
}

/// A connection parked at both ends.
#[derive(Debug)]
pub struct Spare {
    /// The connection to the `-d` end.
    pub sockets: (ReadHalf, WriteHalf),
    /// Its protocol state.
    pub ready: Ready,
    /// When it is retired unused: `--pool-idle` after it became ready, less a little jitter.
    expires: Instant,
    /// The keepalive probing the connection had before it became a spare, given back when a client
    /// takes it; `None` for a unix socket.
    probes: Option<Probes>,
}

impl Pool {
    /// A pool of `size` spares, each kept for at most `idle`.
    pub fn new(size: usize, idle: Duration) -> Self {
        Pool {
            size,
            idle,
            spares: Mutex::default(),
            wanted: Notify::new(),
            off: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            failed: Default::default(),
        }
    }

    /// Spares ready now.
    pub fn ready(&self) -> u64 {
        self.lock().len() as u64
    }

    /// What the spares did since start.
    pub fn counts(&self) -> PoolCounts {
        PoolCounts {
            taken: self.taken.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            failed: std::array::from_fn(|i| self.failed[i].load(Ordering::Relaxed)),
        }
    }

    /// The oldest live spare, if the pool is on and has one (a client served without one is counted as
    /// missed); closed ones met on the way are dropped.
    /// The spare's connection gets back the keepalive probing it had before it was a spare.
    pub fn take(&self) -> Option<Spare> {
        loop {
            let next = if self.is_on() { self.lock().pop_front() } else { None };
            let Some(spare) = next else {
                self.missed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            self.wanted.notify_one();
            // One past its time may be about to meet the -d end's own retirement: not used.
            if Instant::now() < spare.expires && is_open(&spare.sockets.0) {
                if let Some(probes) = spare.probes
                    && let Err(e) = spare.sockets.0.set_probes(probes)
                {
                    tracing::debug!(
                        "a spare connection's keepalive could not be set back: {e}; trying the next"
                    );
                    continue;
                }
                self.taken.fetch_add(1, Ordering::Relaxed);
                return Some(spare);
            }
            tracing::debug!(
                "a spare connection was found closed or past its time when taken; trying the next"
            );
        }
    }

    /// Keeps the pool filled until the end stops.
    pub async fn keep_filled(self: Arc<Self>, tunnel: Arc<Tunnel>) {
        let mut making = JoinSet::new();
        let mut pace = Pace::default();
        let period = SWEEP.min(self.idle / 2);
        let mut next_sweep = Instant::now();
        while !self.stopped.load(Ordering::Relaxed) {
            let now = Instant::now();
            // A sweep probes every spare: on its own schedule, not at every spare made or taken.
            if now >= next_sweep {
                self.sweep();
                next_sweep = now + period;
            }
            if pace.retry_at.is_none_or(|at| now >= at) {
                pace.retry_at = None;
                // While off, one spare at a time probes whether the -d end parks now.
                let wanted = if self.is_on() { self.size } else { 1 };
                while self.ready() as usize + making.len() < wanted {
                    let tunnel = tunnel.clone();
                    let idle = self.idle;
                    making.spawn(async move { make(&tunnel, idle).await });
                }
            }
            let wake = pace.retry_at.map_or(next_sweep, |at| at.min(next_sweep));
            tokio::select! {
                () = self.wanted.notified() => {}
                () = sleep_until(wake) => {}
                Some(made) = making.join_next() => match made {
                    // Made under the keys in force: kept. A reload while it was made flushed the others
                    // made under the old key, and this one goes too.
                    Ok(Ok((spare, keys))) if Arc::ptr_eq(&keys, &tunnel.keys.current()) => {
                        pace = Pace::default();
                        self.keep(spare);
                    }
                    Ok(Ok((spare, _))) => retire(spare),
                    Ok(Err(e)) => self.not_made(&mut pace, spare_failure(&e), &e),
                    // A panic: counted, and paced, as any other failure.
                    Err(e) => self.not_made(&mut pace, SpareFailure::Handshake, &e),
                },
            }
        }
    }

    /// Adds a spare just made, unless the end has stopped meanwhile (then it is retired); a spare made
    /// while the pool was off shows the `-d` end parks connections now.
    fn keep(&self, spare: Spare) {
        let mut spares = self.lock();
        // Under the lock: `retire_all` sets `stopped` before it drains, so a spare is either drained
        // by it or never added.
        if self.stopped.load(Ordering::Relaxed) {
            drop(spares);
            return retire(spare);
        }
        if self.off.swap(false, Ordering::Relaxed) {
            tracing::info!("--pool: the -d end parks connections now; spares back in use");
        }
        spares.push_back(spare);
    }

    /// Counts a spare that could not be made, and sets when the next may be made: after a pause that
    /// doubles with each failure in a row, or `--pool-idle` while the pool is off. Closed unanswered
    /// [`UNANSWERED_LIMIT`] times in a row, the pool turns off: the spares it holds go (they cannot be
    /// from this `-d` end), and clients connect as without it.
    fn not_made(&self, pace: &mut Pace, reason: SpareFailure, e: &dyn std::fmt::Display) {
        self.failed[reason.index()].fetch_add(1, Ordering::Relaxed);
        pace.unanswered = if reason == SpareFailure::Unanswered { pace.unanswered + 1 } else { 0 };
        if pace.unanswered >= UNANSWERED_LIMIT && !self.off.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "--pool: the -d end closed {} connections it was asked to park without answering: it \
                 predates parked connections (upgrade it to use --pool); connecting per client instead, \
                 and trying again every {:?}",
                pace.unanswered,
                self.idle
            );
            self.flush();
        }
        pace.delay = if self.is_on() { (pace.delay * 2).clamp(BACKOFF.0, BACKOFF.1) } else { self.idle };
        pace.retry_at = Some(Instant::now() + pace.delay);
        tracing::debug!("--pool: cannot make a spare connection: {e}; next try in {:?}", pace.delay);
    }

    /// Whether clients may take spares: false while the `-d` end does not park connections, and once
    /// the end stops.
    pub fn is_on(&self) -> bool {
        !self.off.load(Ordering::Relaxed) && !self.stopped.load(Ordering::Relaxed)
    }

    /// Retires every spare, and lets the filler make new ones: after a reload, spares made under the
    /// old key are not used.
    pub fn flush(&self) {
        let spares: Vec<Spare> = self.lock().drain(..).collect();
        for spare in spares {
            retire(spare);
        }
        self.wanted.notify_one();
    }

    /// Retires every spare and makes no more (the end is stopping): each gets this end's end of stream.
    pub fn retire_all(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.flush();
    }

    /// Drops spares the `-d` end has closed or retired, or that keepalive found dead, and retires those
    /// whose time is up.
    fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut spares = self.lock();
        let mut kept = VecDeque::with_capacity(spares.len());
        for spare in spares.drain(..) {
            if !is_open(&spare.sockets.0) {
                continue;
            }
            if now < spare.expires {
                kept.push_back(spare);
            } else {
                expired.push(spare);
            }
        }
        *spares = kept;
        drop(spares);
        for spare in expired {
            retire(spare);
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Spare>> {
        self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Makes one spare: connects to the `-d` end, runs the handshake asking it to park the connection,
/// and waits for its answer, within -o. The connection gets keepalive probes tight enough to find the
/// `-d` end gone while it waits. Returns the keys it was made under, for the filler to check they are
/// still in force.
async fn make(tunnel: &Tunnel, idle: Duration) -> Result<(Spare, Arc<KeySet>), ConnError> {
    let (mut er, mut ew) = dial(&tunnel.dialer, &tunnel.stats).await?.into_split();
    let probes = watch(&er, idle).map_err(|e| ConnError::Handshake(HandshakeError::Io(e)))?;
    let keys = tunnel.keys.current();
    let shaking = Instant::now();
    let parked = native::initiate_parked(&mut er, &mut ew, keys.first());
    match timeout(tunnel.dialer.timeout, parked).await {
        Ok(Ok(ready)) => {
            tunnel.stats.handshake_done(Protocol::Native, shaking.elapsed());
            let life = idle.mul_f64(1.0 - rand::rng().random_range(0.0..JITTER));
            Ok((Spare { sockets: (er, ew), ready, expires: Instant::now() + life, probes }, keys))
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ConnError::HandshakeTimeout),
    }
}

/// Sets a spare's keepalive probing for a spare's life of `idle`, and returns what it had.
fn watch(read: &ReadHalf, idle: Duration) -> std::io::Result<Option<Probes>> {
    let Some(before) = read.probes()? else { return Ok(None) };
    let probe = (idle / 6).clamp(Duration::from_secs(1), PROBE);
    read.set_probes(Probes { on: true, idle: probe, interval: probe, count: PROBES_UNANSWERED })?;
    Ok(Some(before))
}

/// The reason a spare could not be made, for its counter.
fn spare_failure(e: &ConnError) -> SpareFailure {
    match e {
        ConnError::Target { .. } | ConnError::TargetTimeout => SpareFailure::Connect,
        ConnError::Handshake(HandshakeError::ParkRefused) => SpareFailure::Refused,
        ConnError::Handshake(HandshakeError::ParkUnanswered) => SpareFailure::Unanswered,
        _ => SpareFailure::Handshake,
    }
}

/// A taken spare's bound on how long its bytes may go unacknowledged, while it is new: a spare taken
/// in the seconds before keepalive finds its host gone would otherwise hold the client's bytes in
/// TCP's retransmissions for many minutes, where a connection made without the pool fails within -o.
/// The bound is -o (TCP_USER_TIMEOUT) for twice -o, then lifted: a connection in
/// use is as patient as any other.
#[derive(Debug)]
pub struct Bound {
    /// A second handle on the socket, to lift the bound with; `None` when there is nothing to lift.
    socket: Option<socket2::Socket>,
    /// How long the bound holds.
    holds: Duration,
}

/// How many times -o a taken spare's bound holds: long enough that a dead spare's first bytes, unacknowledged
/// for -o, fail the connection before the bound is lifted.
const FIRST_ANSWER: u32 = 2;

impl Bound {
    /// Bounds `read`'s socket by `timeout`. A socket the bound cannot be set on (or, under a full file
    /// table, duplicated for lifting) goes on unbounded, as a connection without the pool does.
    pub fn new(read: &ReadHalf, timeout: Duration) -> Bound {
        let socket =
            read.duplicate().ok().flatten().filter(|s| s.set_tcp_user_timeout(Some(timeout)).is_ok());
        Bound { socket, holds: timeout * FIRST_ANSWER }
    }

    /// Runs `connection`, lifting the bound once it has held its time; the handle goes with it.
    pub async fn around<F: Future>(self, connection: F) -> F::Output {
        let Some(socket) = self.socket else { return connection.await };
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            done = &mut connection => return done,
            () = tokio::time::sleep(self.holds) => {
                if let Err(e) = socket.set_tcp_user_timeout(None) {
                    tracing::debug!("a pooled connection's bound could not be lifted: {e}");
                }
            }
        }
        drop(socket);
        connection.await
    }
}

/// Sends a spare's end of stream and a FIN, in the background.
fn retire(spare: Spare) {
    let Spare { sockets: (_er, mut ew), ready, .. } = spare;
    let mut end = Vec::new();
    if ready.retire(&mut end).is_err() {
        return;
    }
    tokio::spawn(async move {
        let _ = ew.write_all(&end).await;
        let _ = ew.shutdown().await;
    });
}

/// Whether a parked connection is still open: the `-d` end sends nothing on one but its end of stream,
/// so any byte, an end of file or an error means it is over.
fn is_open(read: &ReadHalf) -> bool {
    let mut probe = Vec::with_capacity(64);
    matches!(read.try_read_buf(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Psk;
    use crate::proto::native::{Accepted, Confirm, EphemeralKey, Initiator, Responder};
    use crate::tunnel::addr::Addr;
    use crate::tunnel::stream::{Stream, TcpOptions};

    /// A connected TCP socket's halves, with SO_KEEPALIVE as `keepalive`, and its far end.
    async fn connected(keepalive: bool) -> ((ReadHalf, WriteHalf), tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = Addr::Tcp(listener.local_addr().unwrap());
        let stream = Stream::connect(&addr, None, TcpOptions { keepalive }).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (stream.into_split(), accepted)
    }

    /// The initiator's side of a connection parked at both ends, the handshake run in memory.
    fn ready() -> Ready {
        let psk = Psk::from_key_file(b"pool");
        let (initiator, hello) = Initiator::start(&psk, EphemeralKey::from_bytes([1; 32]));
        let (unconfirmed, msg2, _) =
            Responder::accept(&[psk], &hello, EphemeralKey::from_bytes([2; 32])).unwrap();
        let mut wire = Vec::new();
        let spare = initiator.read_response_parked(&msg2, &mut wire).unwrap();
        let Confirm::Park { request, .. } = unconfirmed.confirm(&mut wire).unwrap() else { panic!("park") };
        let mut answer = Vec::new();
        request.accept(&mut answer).unwrap();
        let Accepted::Ready { ready, .. } = spare.accepted(&mut answer).unwrap() else { panic!("parked") };
        ready
    }

    #[tokio::test]
    async fn a_spare_probes_while_it_waits_and_a_client_gets_back_the_probing_it_had() {
        for keepalive in [true, false] {
            let ((read, _write), _peer) = connected(keepalive).await;
            let before = read.probes().unwrap().unwrap();
            assert_eq!(before.on, keepalive);
            for (idle, probe) in
                [(Duration::from_secs(60), PROBE), (Duration::from_secs(3), Duration::from_secs(1))]
            {
                let kept = watch(&read, idle).unwrap();
                assert_eq!(kept, Some(before), "what it had, to give back");
                let watched = Probes { on: true, idle: probe, interval: probe, count: PROBES_UNANSWERED };
                assert_eq!(read.probes().unwrap(), Some(watched), "--pool-idle {idle:?}");
                read.set_probes(before).unwrap();
                assert_eq!(read.probes().unwrap(), Some(before), "given back");
            }
        }
    }

    #[tokio::test]
    async fn a_client_that_takes_a_spare_gets_its_connection_with_the_probing_it_had_before() {
        for keepalive in [true, false] {
            let (sockets, _peer) = connected(keepalive).await;
            let before = sockets.0.probes().unwrap();
            let probes = watch(&sockets.0, Duration::from_secs(60)).unwrap();
            let pool = Pool::new(1, Duration::from_secs(60));
            let expires = Instant::now() + Duration::from_secs(60);
            pool.keep(Spare { sockets, ready: ready(), expires, probes });
            let taken = pool.take().expect("a live spare");
            assert_eq!(taken.sockets.0.probes().unwrap(), before, "keepalive {keepalive}");
            assert_eq!(pool.counts().taken, 1);
        }
    }

    #[tokio::test]
    async fn a_spare_made_as_the_end_stops_is_retired_not_kept() {
        let (sockets, mut peer) = connected(true).await;
        let pool = Pool::new(1, Duration::from_secs(60));
        pool.retire_all();
        let expires = Instant::now() + Duration::from_secs(60);
        pool.keep(Spare { sockets, ready: ready(), expires, probes: None });
        assert_eq!(pool.ready(), 0);
        assert!(pool.take().is_none());
        // Its end of stream and a FIN reach the -d end.
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut got).await.unwrap();
        assert!(!got.is_empty(), "the retiring end record");
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_spare_is_bound_by_o_while_new_then_as_patient_as_any_connection() {
        let ((read, _write), _peer) = connected(true).await;
        let user_timeout = || read.duplicate().unwrap().unwrap().tcp_user_timeout().unwrap();
        let o = Duration::from_secs(5);
        let bound = Bound::new(&read, o);
        assert_eq!(user_timeout(), Some(o));
        // A connection that ends before the bound is lifted keeps it to its end.
        bound.around(tokio::time::sleep(o)).await;
        assert_eq!(user_timeout(), Some(o));
        // One that lives on has it lifted.
        Bound::new(&read, o).around(tokio::time::sleep(o * 3)).await;
        assert_eq!(user_timeout(), None);
    }
}
