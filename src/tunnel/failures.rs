//! Failed handshakes in the log without flooding it. A peer without the key can fail thousands of
//! handshakes a second; one warning each would fill a disk and bury everything else. In each period the
//! first few failures are logged in full; the rest are counted, and a summary line at the end of the
//! period gives how many there were, why, and from how many distinct peers.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long each period lasts.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Failures logged in full in each period before the rest are only counted.
pub const IN_FULL: u32 = 10;

/// Distinct peers remembered per period; beyond it the summary says "at least".
const MAX_PEERS: usize = 10_000;

/// The failures of the current period.
#[derive(Debug, Default)]
pub struct FailureLog {
    /// The period's counts, under one lock (taken once per failure, never on a good connection).
    period: Mutex<Period>,
}

/// What one period has seen.
#[derive(Debug, Default)]
struct Period {
    /// Failures logged in full so far.
    logged: u32,
    /// Failures only counted, by reason.
    counted: BTreeMap<&'static str, u64>,
    /// The distinct addresses those came from, up to [`MAX_PEERS`].
    peers: HashSet<IpAddr>,
    /// Whether more peers were seen than [`MAX_PEERS`].
    peers_overflowed: bool,
}

impl FailureLog {
    /// A log with an empty first period.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Records a failure for `reason` from `peer` (`None` for a unix socket); returns whether it should
    /// be logged in full.
    pub fn note(&self, peer: Option<IpAddr>, reason: &'static str) -> bool {
        let mut period = self.lock();
        if period.logged < IN_FULL {
            period.logged += 1;
            return true;
        }
        *period.counted.entry(reason).or_default() += 1;
        if let Some(ip) = peer {
            if period.peers.len() < MAX_PEERS {
                period.peers.insert(ip);
            } else if !period.peers.contains(&ip) {
                period.peers_overflowed = true;
            }
        }
        false
    }

    /// Ends the period (every [`PERIOD`], and at shutdown): the summary of what was counted but not
    /// logged, if anything was.
    pub fn end_period(&self) -> Option<String> {
        let period = std::mem::take(&mut *self.lock());
        let total: u64 = period.counted.values().sum();
        if total == 0 {
            return None;
        }
        let reasons: Vec<String> = period.counted.iter().map(|(why, n)| format!("{n} {why}")).collect();
        let peers = period.peers.len();
        let at_least = if period.peers_overflowed { "at least " } else { "" };
        Some(format!(
            "{total} more failed handshakes since the last summary, not logged one by one ({}), from \
             {at_least}{peers} distinct addresses",
            reasons.join(", ")
        ))
    }

    /// Logs each period's summary, forever; spawn it and abort it at shutdown.
    pub async fn summarize(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(PERIOD);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Some(summary) = self.end_period() {
                tracing::warn!("{summary}");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Period> {
        // Nothing that holds the lock can panic part-way through a change.
        self.period.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn the_first_failures_are_logged_in_full_and_the_rest_summarized() {
        let log = FailureLog::new();
        for _ in 0..IN_FULL {
            assert!(log.note(ip(1), "timed out"));
        }
        assert!(!log.note(ip(1), "timed out"));
        assert!(!log.note(ip(2), "wrong key or garbage"));
        assert!(!log.note(None, "wrong key or garbage"));
        let summary = log.end_period().expect("two were only counted");
        assert!(summary.starts_with("3 more failed handshakes since the last summary"), "{summary}");
        assert!(summary.contains("1 timed out, 2 wrong key or garbage"), "{summary}");
        assert!(summary.ends_with("from 2 distinct addresses"), "{summary}");
        assert!(log.note(ip(1), "timed out"), "a new period logs in full again");
        assert_eq!(log.end_period(), None, "nothing was only counted");
    }

    #[test]
    fn distinct_peers_are_capped_and_the_summary_says_so() {
        let log = FailureLog::new();
        for _ in 0..IN_FULL {
            log.note(None, "x");
        }
        for n in 0..=MAX_PEERS as u32 {
            log.note(Some(IpAddr::from(n.to_be_bytes())), "x");
        }
        let summary = log.end_period().unwrap();
        assert!(summary.ends_with(&format!("from at least {MAX_PEERS} distinct addresses")), "{summary}");
    }
}
