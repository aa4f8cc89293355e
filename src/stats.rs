//! Counters and their snapshot: what the systemd STATUS line shows. They are touched once per
//! connection, never per record.

use std::sync::atomic::{AtomicU64, Ordering};

/// Connection counters, shared by every connection of an end.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections being served now.
    pub active: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
    /// Connections that ended in an error (handshake, target, or an aborted stream).
    pub failed: AtomicU64,
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
}

impl Stats {
    /// Reads every counter (each on its own: the figures are for people, not for arithmetic).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            active: self.active.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
