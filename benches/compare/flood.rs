//! The flood measure (issue 11): a legitimate client keeps connecting through a spiped path whose
//! `-d` end runs at the daemon's default `-n` and `-o`, first on a quiet machine, then while an
//! attacker without the key holds a burst of silent connections to the `-d` end, then while it keeps
//! opening new ones at a steady rate. Each legitimate connection is a redis `PING` through the
//! tunnel: whether it was answered (and if not, how it failed), and how long from connect to the
//! first byte of the reply. The goal: every one answered, the median under 100 ms.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::attacker::{Attacker, Tally};
use crate::paths::{Env, Kind, Limits, Pair};

/// Silent connections the burst opens at once, and holds for the whole measure.
pub const BURST: usize = 4000;

/// Silent connections the sustained flood opens each second.
pub const RATE: u32 = 200;

/// The goal's bound on the median setup time of a legitimate connection, in milliseconds.
pub const GOAL_MEDIAN_MS: f64 = 100.0;

/// The legitimate client's pause between one connection's end and the next one's start: enough to
/// leave the machine to the daemon and the attacker, short enough for hundreds of samples.
const PAUSE: Duration = Duration::from_millis(20);

/// How long the legitimate client waits for its reply: longer than the `-e` end's default `-o` of
/// 5 s, so a tunnel that gives up is seen giving up rather than cut short by the client.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the attacker does while the legitimate client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing: the baseline.
    Quiet,
    /// [`BURST`] silent connections opened at the start and held.
    Burst,
    /// [`RATE`] silent connections a second for the whole measure, each held until the daemon
    /// closes it.
    Flood,
}

impl Condition {
    pub const ALL: [Condition; 3] = [Condition::Quiet, Condition::Burst, Condition::Flood];

    /// The part of the metric keys naming it.
    pub fn key(self) -> &'static str {
        match self {
            Condition::Quiet => "quiet",
            Condition::Burst => "burst",
            Condition::Flood => "flood",
        }
    }

    /// How the tables name it.
    pub fn label(self) -> String {
        match self {
            Condition::Quiet => String::from("quiet"),
            Condition::Burst => format!("burst of {BURST}"),
            Condition::Flood => format!("flood at {RATE}/s"),
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }
}

/// The label of a `flood_<condition>_<what>` metric key, and whether higher is better.
pub fn describe(key: &str) -> Option<(String, bool)> {
    let (condition, what) = key.strip_prefix("flood_")?.split_once('_')?;
    let (what, higher) = match what {
        "tried" => ("legit conns tried", true),
        "succeeded" => ("legit conns answered", true),
        "p50_ms" => ("legit setup p50, ms", false),
        "p99_ms" => ("legit setup p99, ms", false),
        "attacker_opened" => ("attacker conns opened", true),
        _ => return None,
    };
    Some((format!("{}: {what}", Condition::from_key(condition)?.label()), higher))
}

/// Whether a flood metric counts connections (shown without decimals).
pub fn is_count(key: &str) -> bool {
    key.starts_with("flood_") && !key.ends_with("_ms")
}

/// How one legitimate connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// `+PONG` came back.
    Answered,
    /// The `-e` end refused the connection.
    Refused,
    /// The tunnel closed the connection cleanly before any reply.
    Closed,
    /// The tunnel reset the connection before any reply.
    Reset,
    /// No reply within [`PATIENCE`].
    TimedOut,
    /// A reply, but not `+PONG`.
    WrongReply,
    /// Any other error.
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
            Outcome::Closed => "closed",
            Outcome::Reset => "reset",
            Outcome::TimedOut => "timed out",
            Outcome::WrongReply => "wrong reply",
            Outcome::Failed => "failed",
        }
    }

    fn of(e: &io::Error) -> Self {
        match e.kind() {
            ErrorKind::ConnectionRefused => Outcome::Refused,
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Outcome::Reset
            }
            ErrorKind::UnexpectedEof => Outcome::Closed,
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Outcome::TimedOut,
            _ => Outcome::Failed,
        }
    }
}

/// One legitimate connection.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When it started, from the start of the measure: failures cluster in time.
    pub at: Duration,
    /// From connect to the first byte of the reply, when there was one.
    pub setup: Option<Duration>,
    /// Answered, or how it failed: a clean close and a reset tell different stories.
    pub outcome: Outcome,
}

/// One path under one condition.
pub struct Flood {
    pub condition: Condition,
    /// How long the legitimate client kept starting connections (the attack lasted as long).
    pub seconds: u64,
    /// Every legitimate connection, in order.
    pub attempts: Vec<Attempt>,
    /// The attacker's connections (all zero on a quiet path).
    pub attacker: Tally,
}

impl Flood {
    pub fn tried(&self) -> usize {
        self.attempts.len()
    }

    pub fn answered(&self) -> usize {
        self.attempts.iter().filter(|a| a.outcome == Outcome::Answered).count()
    }

    /// The `p`th percentile (nearest rank) of the answered connections' setup times, in ms.
    pub fn setup_ms(&self, p: f64) -> Option<f64> {
        let mut times: Vec<f64> = self
            .attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Answered)
            .filter_map(|a| a.setup)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        times.sort_by(f64::total_cmp);
        let rank = ((p / 100.0 * times.len() as f64).ceil() as usize).max(1);
        times.get(rank - 1).copied()
    }

    /// The failed connections, counted by how they failed.
    pub fn failures(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for a in self.attempts.iter().filter(|a| a.outcome != Outcome::Answered) {
            *counts.entry(a.outcome.name()).or_default() += 1;
        }
        counts
    }

    /// Whether issue 11's goal is met: every connection answered, the median setup under 100 ms.
    pub fn meets_goal(&self) -> bool {
        self.tried() > 0
            && self.answered() == self.tried()
            && self.setup_ms(50.0).is_some_and(|ms| ms < GOAL_MEDIAN_MS)
    }

    /// The summary and every attempt, as `[start s, setup ms or null, outcome]`.
    pub fn json(&self) -> Value {
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| json!([a.at.as_secs_f64(), a.setup.map(|s| s.as_secs_f64() * 1e3), a.outcome.name()]))
            .collect();
        json!({ "condition": self.condition.key(), "seconds": self.seconds, "tried": self.tried(),
                "answered": self.answered(), "failures": self.failures(),
                "setup_p50_ms": self.setup_ms(50.0), "setup_p99_ms": self.setup_ms(99.0),
                "goal_met": self.meets_goal(), "attacker": self.attacker.json(), "attempts": attempts })
    }
}

/// Starts a fresh `kind` path in front of the redis-server on `target`, its `-d` end at the
/// daemon's defaults, sets the attacker on it for `condition`, and runs the legitimate client for
/// `seconds`.
///
/// # Errors
/// When the path does not start, or one of its processes exits during the measure.
pub fn measure(kind: Kind, env: &Env, target: u16, condition: Condition, seconds: u64) -> Result<Flood> {
    let mut pair = Pair::start(kind, env, target, Limits::Defaults)?;
    let attacker = match condition {
        Condition::Quiet => None,
        Condition::Burst => Some(Attacker::burst(pair.server_port, BURST)?),
        Condition::Flood => Some(Attacker::flood(pair.server_port, RATE, seconds)?),
    };
    let attempts = legitimate(pair.port, Duration::from_secs(seconds));
    let attacker = attacker.map(Attacker::stop).unwrap_or_default();
    pair.check_running()?;
    Ok(Flood { condition, seconds, attempts, attacker })
}

/// Connects to `port` one connection after another, [`PAUSE`] apart, starting new ones for `lasting`.
fn legitimate(port: u16, lasting: Duration) -> Vec<Attempt> {
    let start = Instant::now();
    let mut attempts = Vec::new();
    while start.elapsed() < lasting {
        let at = start.elapsed();
        let (outcome, setup) = match ping(port) {
            Ok(setup) => (Outcome::Answered, Some(setup)),
            Err((outcome, setup)) => (outcome, setup),
        };
        attempts.push(Attempt { at, setup, outcome });
        sleep(PAUSE);
    }
    attempts
}

/// One redis `PING` on a new connection: the time from connect to the first byte of the reply, or
/// how it failed (with that time if a wrong reply came).
fn ping(port: u16) -> Result<Duration, (Outcome, Option<Duration>)> {
    let failed = |e: io::Error| (Outcome::of(&e), None);
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), PATIENCE)
        .map_err(failed)?;
    let left = PATIENCE.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left)).map_err(failed)?;
    stream.write_all(b"PING\r\n").map_err(failed)?;
    let mut reply = [0; 7];
    match stream.read(&mut reply).map_err(failed)? {
        0 => Err((Outcome::Closed, None)),
        n => {
            let setup = start.elapsed();
            stream.read_exact(&mut reply[n..]).map_err(|e| (Outcome::of(&e), Some(setup)))?;
            if &reply == b"+PONG\r\n" { Ok(setup) } else { Err((Outcome::WrongReply, Some(setup))) }
        }
    }
}
