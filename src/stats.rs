//! Counters and their snapshot: what the systemd STATUS line shows. They are touched once per
//! connection, never per record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Connection counters, shared by every connection of an end.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections being served now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Connections that ended in an error (handshake, target, or an aborted stream).
    pub failed: AtomicU64,
    /// Reloads attempted (SIGHUP), so that whoever asked for one can tell when it is over.
    reloads: AtomicU64,
    /// Whether the last reload failed (and the keys in force were kept).
    last_reload_failed: AtomicBool,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections being served.
    pub active: u64,
    /// Connections accepted since start.
    pub total: u64,
    /// Connections that ended in an error.
    pub failed: u64,
    /// Reloads attempted, and whether the last one took: `None` before the first.
    pub reload: Option<(u64, Reload)>,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new keys are in force.
    Ok,
    /// The keys in force were kept.
    Failed,
}

impl Stats {
    /// Reads every counter (each on its own: the figures are for people, not for arithmetic).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            active: self.active.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            reload: match self.reloads.load(Ordering::Acquire) {
                0 => None,
                n => Some((
                    n,
                    if self.last_reload_failed.load(Ordering::Relaxed) { Reload::Failed } else { Reload::Ok },
                )),
            },
        }
    }

    /// Counts a finished reload and how it ended.
    pub fn reloaded(&self, outcome: Reload) {
        self.last_reload_failed.store(outcome == Reload::Failed, Ordering::Relaxed);
        // Released after the outcome, so a snapshot that sees the count sees its outcome.
        self.reloads.fetch_add(1, Ordering::Release);
    }
}
