//! `-e --pool N`: spare connections to the `-d` end, connected, authenticated and parked there
//! (docs/PROTOCOL.md 4.6) before any client needs them, so that a client's first bytes leave at once:
//! across a network with round-trip time R, its first reply comes after about 1R instead of 3R.
//!
//! A filler task keeps up to N spares: it makes them a few at a time, backs off when the `-d` end
//! fails or refuses them, retires each after `--pool-idle` (and makes another), and drops those the
//! `-d` end has retired or lost. A client takes the oldest live spare; one found closed is dropped
//! before any client byte is written to it, so no byte is ever sent twice. With no spare ready, the
//! client's connection is made as without the pool. A `-d` end that closes every connection it is
//! asked to park without answering predates parked connections: the pool says so once and stops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use super::Tunnel;
use super::connection::{ConnError, dial};
use super::handshake::{HandshakeError, native};
use super::stream::{ReadHalf, WriteHalf};
use crate::proto::Protocol;
use crate::proto::native::Ready;

/// Shortest and longest pause after a spare could not be made.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));

/// Spares closed unanswered in a row, with none ever accepted, before the pool takes the `-d` end for
/// one that cannot park.
const UNANSWERED_LIMIT: u32 = 3;

/// How often the filler looks over its spares for expired or closed ones.
const SWEEP: Duration = Duration::from_secs(1);

/// The spares of an `-e` end.
#[derive(Debug)]
pub struct Pool {
    /// Spares to keep (`--pool`).
    size: usize,
    /// How long a spare is kept before it is retired and replaced (`--pool-idle`).
    idle: Duration,
    /// The spares ready now, oldest first.
    spares: Mutex<VecDeque<Spare>>,
    /// Wakes the filler when a spare was taken.
    wanted: Notify,
    /// Set once the `-d` end turned out not to park connections: clients connect as without a pool.
    off: AtomicBool,
    /// Clients served from a spare.
    taken: AtomicU64,
    /// Clients that found no spare ready and connected as without a pool.
    missed: AtomicU64,
}

/// A connection parked at both ends.
#[derive(Debug)]
pub struct Spare {
    /// The connection to the `-d` end.
    pub sockets: (ReadHalf, WriteHalf),
    /// Its protocol state.
    pub ready: Ready,
    /// When it became ready.
    born: Instant,
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
            taken: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    /// Spares ready now.
    pub fn ready(&self) -> u64 {
        self.lock().len() as u64
    }

    /// Clients served from a spare, and clients that found none ready.
    pub fn counts(&self) -> (u64, u64) {
        (self.taken.load(Ordering::Relaxed), self.missed.load(Ordering::Relaxed))
    }

    /// The oldest live spare, if there is one; closed ones met on the way are dropped.
    pub fn take(&self) -> Option<Spare> {
        loop {
            let Some(spare) = self.lock().pop_front() else {
                self.missed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            self.wanted.notify_one();
            // One past --pool-idle may be about to meet the -d end's own retirement: not used.
            if spare.born.elapsed() < self.idle && is_open(&spare.sockets.0) {
                self.taken.fetch_add(1, Ordering::Relaxed);
                return Some(spare);
            }
            tracing::debug!("a spare connection was found closed when taken; trying the next");
        }
    }

    /// Keeps the pool filled until dropped (the end stops).
    pub async fn keep_filled(self: Arc<Self>, tunnel: Arc<Tunnel>) {
        let mut making = JoinSet::new();
        // After a failure no spare is made before `retry_at`; each failure in a row doubles `delay`.
        let (mut delay, mut retry_at) = (Duration::ZERO, None::<Instant>);
        let (mut unanswered, mut ever_accepted) = (0, false);
        let period = SWEEP.min(self.idle / 2);
        let mut next_sweep = Instant::now();
        while self.is_on() {
            let now = Instant::now();
            // A sweep probes every spare: on its own schedule, not at every spare made or taken.
            if now >= next_sweep {
                self.sweep();
                next_sweep = now + period;
            }
            if retry_at.is_none_or(|at| now >= at) {
                retry_at = None;
                while self.ready() as usize + making.len() < self.size {
                    let tunnel = tunnel.clone();
                    making.spawn(async move { make(&tunnel).await });
                }
            }
            let wake = retry_at.map_or(next_sweep, |at| at.min(next_sweep));
            tokio::select! {
                () = self.wanted.notified() => {}
                () = sleep_until(wake) => {}
                Some(made) = making.join_next() => match made {
                    // (Its key may have been replaced while it was made: then it goes at the next flush
                    // or sweep, as a spare made a moment before the reload does.)
                    Ok(Ok(spare)) if self.is_on() => {
                        (delay, unanswered, ever_accepted) = (Duration::ZERO, 0, true);
                        self.lock().push_back(spare);
                    }
                    Ok(Ok(spare)) => retire(spare),
                    Ok(Err(e)) => {
                        if matches!(e, ConnError::Handshake(HandshakeError::ParkUnanswered)) && !ever_accepted {
                            unanswered += 1;
                            if unanswered >= UNANSWERED_LIMIT {
                                tracing::warn!(
                                    "--pool: the -d end closed {unanswered} connections it was asked to park \
                                     without answering: it predates parked connections (upgrade it to use \
                                     --pool); connecting per client instead"
                                );
                                self.off.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                        delay = (delay * 2).clamp(BACKOFF.0, BACKOFF.1);
                        retry_at = Some(Instant::now() + delay);
                        tracing::debug!("--pool: cannot make a spare connection: {e}; next try in {delay:?}");
                    }
                    Err(e) => tracing::warn!("--pool: a task making a spare failed: {e}"),
                },
            }
        }
    }

    /// Whether clients may take spares: false once the `-d` end turned out not to park connections.
    pub fn is_on(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
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
        self.off.store(true, Ordering::Relaxed);
        self.flush();
    }

    /// Drops spares the `-d` end has closed or retired, and retires those kept for `--pool-idle`.
    fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut spares = self.lock();
        let mut kept = VecDeque::with_capacity(spares.len());
        for spare in spares.drain(..) {
            if !is_open(&spare.sockets.0) {
                continue;
            }
            if now.duration_since(spare.born) < self.idle {
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
/// and waits for its answer, within -o.
async fn make(tunnel: &Tunnel) -> Result<Spare, ConnError> {
    let (mut er, mut ew) = dial(&tunnel.dialer, &tunnel.stats).await?.into_split();
    let keys = tunnel.keys.current();
    let shaking = Instant::now();
    let parked = native::initiate_parked(&mut er, &mut ew, keys.first());
    match timeout(tunnel.dialer.timeout, parked).await {
        Ok(Ok(ready)) => {
            tunnel.stats.handshake_done(Protocol::Native, shaking.elapsed());
            Ok(Spare { sockets: (er, ew), ready, born: Instant::now() })
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ConnError::HandshakeTimeout),
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
