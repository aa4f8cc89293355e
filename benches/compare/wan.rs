//! The wan measure (issue 16): each path with a delay link (delay.rs) where the network is, between
//! its client side and its server side, measured as a client that connects per request feels it:
//! the time from connect to the first reply of one new connection (a redis `PING`), one connection
//! after another, and redis-benchmark's request rate with a new connection per request (`-k 0`,
//! 50 clients, SET and GET).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::measure::redis;
use crate::paths::{Kind, Pair};
use crate::report::Results;

/// The round-trip time the measure runs at unless told otherwise, in milliseconds: the R.
pub const RTT_MS: u64 = 20;

/// Clients redis-benchmark runs at once, each opening a connection per request.
const CLIENTS: u32 = 50;

/// How long one connection waits for its reply before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(10);

/// A redis `PING` as the protocol frames it, and the reply it must get.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

/// The label of a `wan_` metric key, and whether higher is better.
pub fn describe(key: &str) -> Option<(String, bool)> {
    let (label, higher) = match key.strip_prefix("wan_")? {
        "first_reply_p50_ms" => ("connect to first reply, p50 ms", false),
        "first_reply_p99_ms" => ("connect to first reply, p99 ms", false),
        "set_rps" => ("redis SET -k 0, 50 clients, requests/s", true),
        "get_rps" => ("redis GET -k 0, 50 clients, requests/s", true),
        "link_first_reply_p50_ms" => ("link: accept to first byte back, p50 ms", false),
        "link_late_p50_ms" => ("link: timers late, p50 ms", false),
        "link_late_p99_ms" => ("link: timers late, p99 ms", false),
        "link_late_load_p99_ms" => ("link: late under -k 0, p99 ms", false),
        _ => return None,
    };
    Some((label.to_owned(), higher))
}

/// Takes the measure once on `pair` (started with a delay link): `connections` new connections one
/// after another, then redis-benchmark `-k 0` with `requests` of each of SET and GET; records each
/// figure as one sample of `kind`'s.
///
/// # Errors
/// When a connection fails or gets another reply, or redis-benchmark fails.
pub fn measure(
    pair: &Pair,
    kind: Kind,
    connections: usize,
    requests: u32,
    results: &mut Results,
) -> Result<()> {
    let link = pair.link.as_ref().context("the path has no delay link")?;
    link.take_stats();
    let mut times = Vec::with_capacity(connections);
    for i in 0..connections {
        times.push(first_reply(pair.port).with_context(|| format!("connection {} of {connections}", i + 1))?);
    }
    let seen = link.take_stats();
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let times: Vec<f64> = times.iter().map(ms).collect();
    let link_first: Vec<f64> = seen.first_reply.iter().map(ms).collect();
    let late: Vec<f64> = seen.lateness.iter().map(ms).collect();
    let percentiles = [
        ("wan_first_reply_p50_ms", &times, 50.0),
        ("wan_first_reply_p99_ms", &times, 99.0),
        ("wan_link_first_reply_p50_ms", &link_first, 50.0),
        ("wan_link_late_p50_ms", &late, 50.0),
        ("wan_link_late_p99_ms", &late, 99.0),
    ]
    .map(|(key, values, p)| Ok((key, percentile(values, p).context("the link saw no connection")?)))
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let (client, link_side) = percentiles.split_at(2);
    client.iter().for_each(|(key, value)| results.add(key, kind, *value));
    for r in redis(pair, CLIENTS, requests, "set,get", &["-k", "0"])? {
        results.add(&format!("wan_{}_rps", r.test), kind, r.rps);
    }
    // The link's own figures after the client's, so the table shows them last.
    link_side.iter().for_each(|(key, value)| results.add(key, kind, *value));
    let late: Vec<f64> = link.take_stats().lateness.iter().map(ms).collect();
    if let Some(p99) = percentile(&late, 99.0) {
        results.add("wan_link_late_load_p99_ms", kind, p99);
    }
    Ok(())
}

/// One new connection through the path: connect, send a `PING`, and the time until `+PONG` is read.
fn first_reply(port: u16) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(PING)?;
    let mut reply = Vec::new();
    let mut buf = [0; 64];
    while !reply.ends_with(b"\r\n") {
        let n = stream.read(&mut buf).context("waiting for the reply")?;
        if n == 0 {
            bail!("closed after {:?} of the reply", String::from_utf8_lossy(&reply));
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let took = started.elapsed();
    if reply != PONG {
        bail!("replied {:?}", String::from_utf8_lossy(&reply));
    }
    Ok(took)
}

/// The nearest-rank `p`th percentile, none of nothing.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}
