//! `/status`: what an operator or a load balancer asks of an end, as JSON, with a check that the
//! target accepts a connection right now (503 when it does not).

use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;

use crate::stats::{Reload, Snapshot};
use crate::tunnel::{Mode, Tunnel};

/// The addresses as given on the command line, for the status.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// -s.
    pub source: String,
    /// -t.
    pub target: String,
}

/// The document `/status` serves.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `encrypt` (-e) or `decrypt` (-d).
    mode: &'static str,
    /// -s as given.
    source: String,
    /// -t as given.
    target: String,
    /// Seconds since the end started.
    uptime_seconds: u64,
    /// Connections being served now.
    live_connections: u64,
    /// Connections accepted since start.
    total_connections: u64,
    /// Connections that failed since start.
    failed_connections: u64,
    /// The keys in force (their fingerprints) and, on `-d`, the connections each authenticated.
    keys: Vec<KeyStatus>,
    /// The last reload, if there was one.
    last_reload: Option<ReloadStatus>,
    /// Whether the target accepted a connection just now.
    target_check: Check,
}

/// One key in force.
#[derive(Debug, Serialize)]
struct KeyStatus {
    /// Its fingerprint (safe to show).
    fingerprint: String,
    /// Connections it authenticated while in force (`-d`; 0 on `-e`).
    connections: u64,
}

/// The last reload.
#[derive(Debug, Serialize)]
struct ReloadStatus {
    /// Reloads since start.
    count: u64,
    /// `ok`, or `failed` (the keys in force were kept).
    outcome: &'static str,
    /// When it ended, in seconds since the Unix epoch.
    at: u64,
}

/// The target check's result.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Whether a connection to the target was accepted.
    pub ok: bool,
    /// How long the attempt took, in milliseconds.
    pub took_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Status {
    /// Whether the end can serve: its target accepted a connection.
    pub fn healthy(&self) -> bool {
        self.target_check.ok
    }
}

/// Checks the target and puts the status together from `snapshot`.
pub async fn status(tunnel: &Tunnel, addresses: &Addresses, snapshot: Snapshot) -> Status {
    let target_check = check(tunnel).await;
    Status {
        mode: match tunnel.settings.mode {
            Mode::Encrypt => "encrypt",
            Mode::Decrypt => "decrypt",
        },
        source: addresses.source.clone(),
        target: addresses.target.clone(),
        uptime_seconds: snapshot.uptime.as_secs(),
        live_connections: snapshot.active,
        total_connections: snapshot.total,
        failed_connections: snapshot.failed_total(),
        keys: snapshot
            .keys
            .iter()
            .map(|(key, used)| KeyStatus { fingerprint: key.to_string(), connections: *used })
            .collect(),
        last_reload: snapshot.reload.map(|r| ReloadStatus {
            count: r.count,
            outcome: match r.outcome {
                Reload::Ok => "ok",
                Reload::Failed => "failed",
            },
            at: r.at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }),
        target_check,
    }
}

/// A connection to the target as connections make it (its addresses in turn, -b, within -o), closed
/// at once without a byte. A `-d` end takes such a connection from an `-e` end's check for what it is,
/// a silent port check, and counts no failed handshake.
async fn check(tunnel: &Tunnel) -> Check {
    let started = Instant::now();
    let result = tunnel.dialer.connect().await;
    let took_ms = millis(started.elapsed());
    match result {
        Ok(stream) => {
            drop(stream);
            Check { ok: true, took_ms, error: None }
        }
        Err(e) => Check { ok: false, took_ms, error: Some(e.to_string()) },
    }
}

fn millis(took: Duration) -> f64 {
    (took.as_secs_f64() * 1e6).round() / 1e3
}
