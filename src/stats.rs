//! Counters and their snapshot. One snapshot feeds the systemd STATUS line, `/metrics` and `/status`,
//! so the three never disagree. Connections touch the counters once per event (accepted, handshake
//! done, target connected, ended), and the pump once per read batch for the bytes: never per record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::proto::{Fingerprint, Protocol};

/// Why a connection failed: the `reason` label of the failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer's handshake was refused: a wrong key, garbage, a replay, an invalid value.
    HandshakeRefused,
    /// The peer spoke a protocol this end does not accept (or classic without forward secrecy under -g).
    ProtocolMismatch,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// The peer closed the connection, or its socket failed, during the handshake.
    HandshakeClosed,
    /// `-d`: an unproven connection closed to make room for newer ones.
    Evicted,
    /// No target address accepted a connection.
    TargetUnreachable,
    /// Connecting to the target took longer than -o.
    TargetTimeout,
    /// The peer's records failed authentication or broke the protocol once established.
    Tampered,
    /// The encrypted stream ended without the protocol's end (a cut connection, or a truncation attack).
    Truncated,
    /// A socket failed once established.
    SocketError,
    /// `--idle-timeout` closed the connection but could not end it cleanly: data arrived after the
    /// close, or the peer end stopped reading before this end's end of stream could be sent.
    IdleCloseFailed,
    /// The daemon was told to stop at once (a second signal).
    Stopped,
    /// `-d`: an `-e` end put a parked connection to use as this end retired it; the client's
    /// connection is reset, its bytes never delivered.
    RetiredInUse,
}

impl Failure {
    /// Every reason, in the order of the counters.
    pub const ALL: [Failure; 13] = [
        Failure::HandshakeRefused,
        Failure::ProtocolMismatch,
        Failure::HandshakeTimeout,
        Failure::HandshakeClosed,
        Failure::Evicted,
        Failure::TargetUnreachable,
        Failure::TargetTimeout,
        Failure::Tampered,
        Failure::Truncated,
        Failure::SocketError,
        Failure::IdleCloseFailed,
        Failure::Stopped,
        Failure::RetiredInUse,
    ];

    /// The label value: short, stable, `snake_case`.
    pub fn label(self) -> &'static str {
        match self {
            Failure::HandshakeRefused => "handshake_refused",
            Failure::ProtocolMismatch => "protocol_mismatch",
            Failure::HandshakeTimeout => "handshake_timeout",
            Failure::HandshakeClosed => "handshake_closed",
            Failure::Evicted => "evicted",
            Failure::TargetUnreachable => "target_unreachable",
            Failure::TargetTimeout => "target_timeout",
            Failure::Tampered => "tampered",
            Failure::Truncated => "truncated",
            Failure::SocketError => "socket_error",
            Failure::IdleCloseFailed => "idle_close_failed",
            Failure::Stopped => "stopped",
            Failure::RetiredInUse => "retired_in_use",
        }
    }

    /// Where this reason's counter is.
    fn index(self) -> usize {
        self as usize
    }
}

/// How a connection that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Each direction ended as its sender ended it: the client, the service, or the peer end (whose
    /// idle close looks the same from here).
    Clean,
    /// This end's idle timeout (`--idle-timeout`) closed it: a policy end, closed cleanly, not a failure.
    Idle,
    /// `-d`: closed by the peer before it sent a byte, as a port check does (an `-e` end's `/status`
    /// among them). No peer speaking either protocol does so.
    Silent,
    /// A parked connection (`--pool`) that ended without being put to use: retired by either end,
    /// or refused for want of room.
    Unused,
}

impl Ending {
    /// Every ending, in the order of the counters.
    pub const ALL: [Ending; 4] = [Ending::Clean, Ending::Idle, Ending::Silent, Ending::Unused];

    /// The word for it in the log's `outcome` field and the metrics' `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Ending::Clean => "clean",
            Ending::Idle => "idle",
            Ending::Silent => "silent",
            Ending::Unused => "unused",
        }
    }
}

/// Why an `-e --pool` end could not make a spare: the `reason` label of the spare failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpareFailure {
    /// The `-d` end did not accept the connection, or not within -o.
    Connect,
    /// The handshake failed: the key refused, the connection closed or timed out.
    Handshake,
    /// The `-d` end answered with its end of stream: its room for parked connections is full, or it
    /// is stopping.
    Refused,
    /// The `-d` end closed without answering: it predates parked connections (or died then).
    Unanswered,
}

impl SpareFailure {
    /// Every reason, in the order of the counters.
    pub const ALL: [SpareFailure; 4] =
        [SpareFailure::Connect, SpareFailure::Handshake, SpareFailure::Refused, SpareFailure::Unanswered];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SpareFailure::Connect => "connect",
            SpareFailure::Handshake => "handshake",
            SpareFailure::Refused => "refused",
            SpareFailure::Unanswered => "unanswered",
        }
    }

    /// Where this reason's counter is (in [`PoolCounts::failed`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What an `-e --pool` end's spares did, counted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Clients served from a spare.
    pub taken: u64,
    /// Clients that found no spare ready and connected as without a pool.
    pub missed: u64,
    /// Spares that could not be made, by [`SpareFailure`] (in the order of [`SpareFailure::ALL`]).
    pub failed: [u64; SpareFailure::ALL.len()],
}

/// The protocols, in the order of the counters.
pub const PROTOCOLS: [Protocol; 2] = [Protocol::Native, Protocol::Classic];

/// Upper bounds of the time histograms' buckets, in seconds: from a handshake on loopback (a fraction
/// of a millisecond) to one that nearly used up a 5-second -o across a slow link.
pub const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Durations in fixed buckets, each count atomic.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] and above the one before.
    buckets: [AtomicU64; BUCKETS.len()],
    /// Every observation, the ones above the last bound included.
    count: AtomicU64,
    /// Their sum, in nanoseconds.
    sum_nanos: AtomicU64,
}

/// A histogram at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// Observations at or below each bound of [`BUCKETS`] (cumulative, as Prometheus has them).
    pub cumulative: [u64; BUCKETS.len()],
    /// Every observation.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&bound| secs <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; BUCKETS.len()];
        let mut below = 0;
        for (sum, bucket) in cumulative.iter_mut().zip(&self.buckets) {
            below += bucket.load(Ordering::Relaxed);
            *sum = below;
        }
        // Read last, so the count is never below the last bucket's cumulative figure.
        let count = self.count.load(Ordering::Relaxed).max(below);
        #[allow(clippy::cast_precision_loss)] // Seconds as a float, as exposed: precise to the microsecond.
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        HistogramSnapshot { cumulative, count, sum }
    }
}

/// One thing in a gauge (a live connection, a parked one), counted in when made and out when dropped,
/// whichever way its task ends.
#[derive(Debug)]
pub struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    /// Counts one more in `gauge` until dropped.
    pub fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connection counters, shared by every connection of an end.
#[derive(Debug)]
pub struct Stats {
    /// When the end started, for the uptime.
    started: Instant,
    /// Connections being served now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Connections that ended well, by [`Ending`].
    ended: [AtomicU64; Ending::ALL.len()],
    /// Connections that failed, by [`Failure`].
    failed: [AtomicU64; Failure::ALL.len()],
    /// Connections established, by protocol ([`PROTOCOLS`]).
    established: [AtomicU64; PROTOCOLS.len()],
    /// Plaintext bytes sealed and sent to the encrypted peer.
    sealed: AtomicU64,
    /// Plaintext bytes opened from the encrypted peer's records.
    opened: AtomicU64,
    /// From accept (`-d`) or from the connection to the `-d` end (`-e`) to the handshake's end.
    handshake: Histogram,
    /// Connecting to the target (`-d`: the service; `-e`: the `-d` end).
    target_connect: Histogram,
    /// Times the -n limit was reached (`-e`: the accept loop found every slot taken; `-d`: an
    /// authenticated connection had to wait for one).
    limit_hits: AtomicU64,
    /// Reloads attempted (SIGHUP), so that whoever asked for one can tell when it is over.
    reloads: AtomicU64,
    /// Whether the last reload failed (and the keys in force were kept).
    last_reload_failed: AtomicBool,
    /// When the last reload ended, in seconds since the Unix epoch.
    last_reload_at: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            active: AtomicU64::default(),
            total: AtomicU64::default(),
            ended: Default::default(),
            failed: Default::default(),
            established: Default::default(),
            sealed: AtomicU64::default(),
            opened: AtomicU64::default(),
            handshake: Histogram::default(),
            target_connect: Histogram::default(),
            limit_hits: AtomicU64::default(),
            reloads: AtomicU64::default(),
            last_reload_failed: AtomicBool::default(),
            last_reload_at: AtomicU64::default(),
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Since the end started.
    pub uptime: Duration,
    /// Connections being served.
    pub active: u64,
    /// Connections accepted since start.
    pub total: u64,
    /// Connections that ended well, by [`Ending`] (in the order of [`Ending::ALL`]).
    pub ended: [u64; Ending::ALL.len()],
    /// Connections that failed, by [`Failure`] (in the order of [`Failure::ALL`]).
    pub failed: [u64; Failure::ALL.len()],
    /// Connections established, by protocol (in the order of [`PROTOCOLS`]).
    pub established: [u64; PROTOCOLS.len()],
    /// Plaintext bytes sealed and sent to the encrypted peer.
    pub sealed: u64,
    /// Plaintext bytes opened from the encrypted peer.
    pub opened: u64,
    /// Handshake times.
    pub handshake: HistogramSnapshot,
    /// Target connect times.
    pub target_connect: HistogramSnapshot,
    /// Times the -n limit was reached.
    pub limit_hits: u64,
    /// The last reload, `None` before the first.
    pub reload: Option<LastReload>,
    /// The keys in force, with the connections each authenticated (`-d`) while in force.
    pub keys: Vec<(Fingerprint, u64)>,
    /// `-d`: connections parked now by `-e` ends with `--pool`; `-e`: spares ready.
    pub parked: u64,
    /// `-e --pool`: what the spares did.
    pub pool: PoolCounts,
}

/// How many reloads there were and how the last one went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastReload {
    /// Reloads attempted since start.
    pub count: u64,
    /// How the last one ended.
    pub outcome: Reload,
    /// When it ended.
    pub at: SystemTime,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new keys are in force.
    Ok,
    /// The keys in force were kept.
    Failed,
}

impl Snapshot {
    /// Connections that failed, whatever the reason.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Connections that failed for `reason`.
    pub fn failed(&self, reason: Failure) -> u64 {
        self.failed[reason.index()]
    }
}

impl Stats {
    /// Reads every counter (each on its own: a scrape during traffic may see a connection counted in
    /// one figure and not yet in the next, never a figure going back), with `keys`' usage.
    pub fn snapshot(&self, keys: impl Iterator<Item = (Fingerprint, u64)>) -> Snapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            uptime: self.started.elapsed(),
            active: load(&self.active),
            total: load(&self.total),
            ended: self.ended.each_ref().map(load),
            failed: self.failed.each_ref().map(load),
            established: self.established.each_ref().map(load),
            sealed: load(&self.sealed),
            opened: load(&self.opened),
            handshake: self.handshake.snapshot(),
            target_connect: self.target_connect.snapshot(),
            limit_hits: load(&self.limit_hits),
            reload: match self.reloads.load(Ordering::Acquire) {
                0 => None,
                count => Some(LastReload {
                    count,
                    outcome: if self.last_reload_failed.load(Ordering::Relaxed) {
                        Reload::Failed
                    } else {
                        Reload::Ok
                    },
                    at: UNIX_EPOCH + Duration::from_secs(load(&self.last_reload_at)),
                }),
            },
            keys: keys.collect(),
            parked: 0,
            pool: PoolCounts::default(),
        }
    }

    /// Counts a connection that ended well.
    pub fn ended(&self, how: Ending) {
        self.ended[how as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection that failed.
    pub fn failed(&self, why: Failure) {
        self.failed[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an established connection, and how long its handshake took.
    pub fn handshake_done(&self, protocol: Protocol, took: Duration) {
        let index = PROTOCOLS.iter().position(|&p| p == protocol).unwrap_or(0);
        self.established[index].fetch_add(1, Ordering::Relaxed);
        self.handshake.observe(took);
    }

    /// Records how long a connection to the target took.
    pub fn target_connected(&self, took: Duration) {
        self.target_connect.observe(took);
    }

    /// Counts the -n limit reached.
    pub fn limit_hit(&self) {
        self.limit_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// The byte counters, for the pump: sealed (to the peer) and opened (from it).
    pub fn byte_counters(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.sealed, &self.opened)
    }

    /// Counts a finished reload and how it ended.
    pub fn reloaded(&self, outcome: Reload) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.last_reload_at.store(now, Ordering::Relaxed);
        self.last_reload_failed.store(outcome == Reload::Failed, Ordering::Relaxed);
        // Released after the outcome, so a snapshot that sees the count sees its outcome.
        self.reloads.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_duration_in_its_bucket_and_above_the_last() {
        let h = Histogram::default();
        for ms in [0, 1, 1, 7, 3000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        // 0 ms in the first bucket; 1 ms at or below 0.001; 7 ms at or below 0.01; 3 s above them all.
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 3);
        assert_eq!(s.cumulative[4], 4);
        assert_eq!(s.cumulative[BUCKETS.len() - 1], 4);
        assert!((s.sum - 3.009).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn each_failure_has_its_own_counter_and_label() {
        let stats = Stats::default();
        for (n, reason) in Failure::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), n, "ALL is in the order of the enum");
            for _ in 0..=n {
                stats.failed(reason);
            }
        }
        let s = stats.snapshot(std::iter::empty());
        for (n, reason) in Failure::ALL.into_iter().enumerate() {
            assert_eq!(s.failed(reason), n as u64 + 1, "{}", reason.label());
        }
        let labels: std::collections::HashSet<_> = Failure::ALL.iter().map(|f| f.label()).collect();
        assert_eq!(labels.len(), Failure::ALL.len());
    }

    #[test]
    fn each_spare_failure_has_its_own_counter_and_label() {
        for (n, reason) in SpareFailure::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), n, "ALL is in the order of the enum");
        }
        let labels: std::collections::HashSet<_> = SpareFailure::ALL.iter().map(|f| f.label()).collect();
        assert_eq!(labels.len(), SpareFailure::ALL.len());
    }
}
