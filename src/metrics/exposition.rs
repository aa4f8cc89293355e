//! `/metrics`: a [`Snapshot`] as Prometheus metric families, encoded by the `prometheus` crate in the
//! text format every Prometheus (and `promtool check metrics`) reads, with the crate's collector of
//! the process's own figures (open files, resident memory, CPU time).

use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use crate::proto::BACKENDS;
use crate::stats::{BUCKETS, Ending, Failure, HistogramSnapshot, PROTOCOLS, Reload, Snapshot, SpareFailure};
use crate::tunnel::Mode;

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the exposition says about the end besides its counters.
#[derive(Debug, Clone, Copy)]
pub struct End {
    /// `-e` or `-d`.
    pub mode: Mode,
    /// -n, 0 for none.
    pub max_connections: usize,
}

/// Every metric, in the text format.
pub fn render(s: &Snapshot, end: End) -> String {
    let mut families = families(s, end);
    // The process's figures are read from /proc at each scrape; a system without it gives none. The
    // collector is made once: it keeps the CPU time counted so far.
    static PROCESS: OnceLock<ProcessCollector> = OnceLock::new();
    families.extend(PROCESS.get_or_init(ProcessCollector::for_self).collect());
    let mut text = Vec::new();
    // Encoding into memory fails only on families that break the format's rules, which ours keep.
    if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    String::from_utf8(text).unwrap_or_default()
}

/// The end's own metric families.
fn families(s: &Snapshot, end: End) -> Vec<MetricFamily> {
    let mode = match end.mode {
        Mode::Encrypt => "encrypt",
        Mode::Decrypt => "decrypt",
    };
    let mut build = vec![label("version", env!("CARGO_PKG_VERSION")), label("mode", mode)];
    build.extend(BACKENDS.map(|(primitive, backend)| label(primitive, backend)));
    let mut families = vec![
        gauge(
            "spiped_build_info",
            "Version, mode (-e: encrypt, -d: decrypt) and crypto backends; always 1.",
            [(build, 1.0)],
        ),
        counter(
            "spiped_connections_accepted_total",
            "Connections accepted on the source socket.",
            [(Labels::new(), s.total)],
        ),
        gauge("spiped_connections_active", "Connections being served.", [(Labels::new(), as_f64(s.active))]),
        counter(
            "spiped_connections_completed_total",
            "Connections that ended without error: clean (both ends of stream), idle (closed by \
             --idle-timeout) or silent (closed by the peer before it sent anything, as a port check does).",
            Ending::ALL.map(|how| (vec![label("outcome", how.label())], s.ended[how as usize])),
        ),
        counter(
            "spiped_connections_failed_total",
            "Connections that failed, by reason: the handshake (refused: wrong key or garbage; \
             protocol_mismatch; timeout; closed), the target (unreachable, timeout), or the established \
             stream (tampered, truncated, socket_error); evicted and stopped by this end.",
            Failure::ALL.map(|why| (vec![label("reason", why.label())], s.failed(why))),
        ),
        counter(
            "spiped_connections_established_total",
            "Connections whose handshake succeeded, by protocol.",
            PROTOCOLS.iter().zip(s.established).map(|(p, n)| (vec![label("protocol", p.name())], n)),
        ),
        counter(
            "spiped_plaintext_bytes_total",
            "Plaintext bytes carried: sealed (sent encrypted to the peer) and opened (received from it).",
            [(vec![label("direction", "sealed")], s.sealed), (vec![label("direction", "opened")], s.opened)],
        ),
        histogram(
            "spiped_handshake_duration_seconds",
            "Handshakes that succeeded: -d from accept, -e from the connection to the -d end, to the end \
             of the handshake.",
            &s.handshake,
        ),
        histogram(
            "spiped_target_connect_duration_seconds",
            "Connections made to the target (-d: the service; -e: the -d end).",
            &s.target_connect,
        ),
        gauge(
            "spiped_connection_limit",
            "The -n limit on simultaneous connections; 0 for none.",
            [(Labels::new(), as_f64(end.max_connections as u64))],
        ),
        counter(
            "spiped_connection_limit_hits_total",
            "Times the -n limit was reached: every slot taken, so -e stops accepting (new connections wait \
             in the backlog) and -d holds an authenticated connection until a slot frees.",
            [(Labels::new(), s.limit_hits)],
        ),
        gauge(
            "spiped_key_info",
            "The keys in force, by fingerprint (safe to show; it reveals nothing about the key); always 1.",
            s.keys.iter().map(|(key, _)| (vec![label("fingerprint", key)], 1.0)),
        ),
        gauge(
            "spiped_parked_connections",
            "Parked connections (authenticated, the target not yet contacted): on -d, those -e ends with \
             --pool keep here; on -e, its spares ready.",
            [(Labels::new(), as_f64(s.parked))],
        ),
        counter(
            "spiped_pool_clients_total",
            "-e --pool: clients served from a spare (taken), and clients that found none ready, or the \
             pool off, and connected as without a pool (missed).",
            [(vec![label("spare", "taken")], s.pool.taken), (vec![label("spare", "missed")], s.pool.missed)],
        ),
        counter(
            "spiped_pool_spare_failures_total",
            "-e --pool: spares that could not be made, by reason: connect (the -d end unreachable), \
             handshake (refused, closed or timed out), refused (the -d end full or stopping), \
             unanswered (closed unanswered: a -d end that predates parked connections).",
            SpareFailure::ALL
                .iter()
                .map(|&reason| (vec![label("reason", reason.label())], s.pool.failed[reason.index()])),
        ),
        counter(
            "spiped_reloads_total",
            "Reloads (SIGHUP) attempted since start.",
            [(Labels::new(), s.reload.map_or(0, |r| r.count))],
        ),
    ];
    if end.mode == Mode::Decrypt {
        families.push(counter(
            "spiped_key_connections_total",
            "Connections each key in force authenticated while in force: during a rotation, whether anyone \
             still uses the old key.",
            s.keys.iter().map(|(key, used)| (vec![label("fingerprint", key)], *used)),
        ));
    }
    if let Some(reload) = s.reload {
        families.push(gauge(
            "spiped_last_reload_success",
            "Whether the last reload put its keys in force (1) or kept the old ones (0).",
            [(Labels::new(), if reload.outcome == Reload::Ok { 1.0 } else { 0.0 })],
        ));
        let at = reload.at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        families.push(gauge(
            "spiped_last_reload_timestamp_seconds",
            "When the last reload ended, in seconds since the Unix epoch.",
            [(Labels::new(), at)],
        ));
    }
    families
}

/// A sample's labels, as name and value.
type Labels = Vec<(&'static str, String)>;

fn label(name: &'static str, value: impl ToString) -> (&'static str, String) {
    (name, value.to_string())
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn metric(labels: Labels) -> Metric {
    let mut metric = Metric::default();
    metric.set_label(
        labels
            .into_iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.into());
                pair.set_value(value);
                pair
            })
            .collect(),
    );
    metric
}

fn counter(name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, u64)>) -> MetricFamily {
    simple(name, help, MetricType::COUNTER, samples.into_iter().map(|(labels, n)| (labels, as_f64(n))))
}

fn gauge(name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) -> MetricFamily {
    simple(name, help, MetricType::GAUGE, samples)
}

/// A counter or gauge family: one value per sample.
fn simple(
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, f64)>,
) -> MetricFamily {
    let metrics = samples
        .into_iter()
        .map(|(labels, value)| {
            let mut m = metric(labels);
            if kind == MetricType::COUNTER {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            } else {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
            m
        })
        .collect();
    family(name, help, kind, metrics)
}

fn histogram(name: &str, help: &str, h: &HistogramSnapshot) -> MetricFamily {
    let mut histogram = Histogram::default();
    histogram.set_sample_count(h.count);
    histogram.set_sample_sum(h.sum);
    histogram.set_bucket(
        BUCKETS
            .iter()
            .zip(h.cumulative)
            .map(|(&bound, count)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(bound);
                bucket.set_cumulative_count(count);
                bucket
            })
            .collect(),
    );
    let mut m = metric(Labels::new());
    m.set_histogram(histogram);
    family(name, help, MetricType::HISTOGRAM, vec![m])
}

/// A count as the format's float: exact below 2^53, far beyond any count here.
#[allow(clippy::cast_precision_loss)]
fn as_f64(n: u64) -> f64 {
    n as f64
}
