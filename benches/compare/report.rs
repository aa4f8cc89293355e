//! Samples, their medians, the ratio tables (the native paths, the classic-wire paths against
//! spiped 1.6, and the paths across a WAN), the targets from issues 6, 12 and 16, the flood goal
//! from issue 11, and the JSON record.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value, json};

use crate::flood::{self, Condition, Flood, GOAL_MEDIAN_MS};
use crate::paths::Kind;
use crate::wan;

/// Every sample of one measure, by path, in the order they were taken.
struct Metric {
    key: String,
    samples: BTreeMap<&'static str, Vec<f64>>,
}

/// Everything one run measured.
pub struct Results {
    kinds: Vec<Kind>,
    metrics: Vec<Metric>,
    /// The flood measure's runs, every legitimate connection kept: the goal table and the JSON
    /// need more than the medians.
    floods: Vec<(Kind, Flood)>,
}

/// What a measure's key means: its label, and whether a higher figure is the better one.
fn describe(key: &str) -> (String, bool) {
    if let Some(n) = key.strip_prefix("idle_kib_per_conn_") {
        return (format!("idle memory at {n} conns, KiB/conn"), false);
    }
    if let Some(described) = flood::describe(key).or_else(|| wan::describe(key)) {
        return described;
    }
    let (label, higher) = match key {
        "bulk_up_gbit_s" => ("bulk, client to server, Gbit/s", true),
        "bulk_down_gbit_s" => ("bulk, server to client, Gbit/s", true),
        "cpu_ends_s_per_gib" => ("CPU s per GiB, tunnel ends", false),
        "cpu_machine_s_per_gib" => ("CPU s per GiB, whole machine", false),
        "new_conns_per_s" => ("new connections/s, 50 clients", true),
        "added_p50_us" => ("added GET p50 vs direct, 1 client, us", false),
        _ => return describe_redis(key),
    };
    (label.to_owned(), higher)
}

/// Labels for `<test>_<clients>_<rps|p50_us|p99_us>`.
fn describe_redis(key: &str) -> (String, bool) {
    let mut parts = key.splitn(3, '_');
    let (test, clients, what) =
        (parts.next().unwrap_or(key), parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
    let (what, higher) = match what {
        "rps" => ("requests/s", true),
        "p50_us" => ("p50 us", false),
        "p99_us" => ("p99 us", false),
        other => (other, true),
    };
    (
        format!(
            "redis {} {clients} client{}, {what}",
            test.to_uppercase(),
            if clients == "1" { "" } else { "s" }
        ),
        higher,
    )
}

/// The paths the native table shows, in its column order.
const NATIVE_TABLE: [Kind; 5] = [Kind::Direct, Kind::Ours, Kind::Spiped16, Kind::Stunnel, Kind::Relay];

/// The paths the classic-wire table shows, in its column order.
const CLASSIC_TABLE: [Kind; 4] = [Kind::Spiped16, Kind::OursClassic, Kind::MixedE, Kind::MixedD];

/// The bulk measures, one each way.
const BULK: [&str; 2] = ["bulk_up_gbit_s", "bulk_down_gbit_s"];

/// Whether a measure's key is one of the wan measure's, which have a table of their own.
fn is_wan(key: &str) -> bool {
    key.starts_with("wan_")
}

fn median(samples: &[f64]) -> Option<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

impl Results {
    pub fn new(kinds: &[Kind]) -> Self {
        Self { kinds: kinds.to_vec(), metrics: Vec::new(), floods: Vec::new() }
    }

    /// Records one path's run under one flood condition: its rows in the table, and the run.
    pub fn add_flood(&mut self, kind: Kind, run: Flood) {
        let key = |what: &str| format!("flood_{}_{what}", run.condition.key());
        self.add(&key("tried"), kind, run.tried() as f64);
        self.add(&key("succeeded"), kind, run.answered() as f64);
        for (p, what) in [(50.0, "p50_ms"), (99.0, "p99_ms")] {
            // The row even when nothing was answered, so the rows keep their order.
            let metric = self.metric(&key(what));
            if let Some(ms) = run.setup_ms(p) {
                metric.samples.entry(kind.name()).or_default().push(ms);
            }
        }
        if run.condition != Condition::Quiet {
            self.add(&key("attacker_opened"), kind, run.attacker.opened as f64);
        }
        self.floods.push((kind, run));
    }

    /// Whether the targets of issue 6 have anything to show: some measure besides the flood and the
    /// wan measure ran.
    pub fn has_targets(&self) -> bool {
        self.metrics.iter().any(|m| !m.key.starts_with("flood_") && !is_wan(&m.key))
    }

    /// Records one sample; measures appear in the table in the order first recorded.
    pub fn add(&mut self, key: &str, kind: Kind, value: f64) {
        self.metric(key).samples.entry(kind.name()).or_default().push(value);
    }

    /// A measure's row, made (last in the table) if it is new.
    fn metric(&mut self, key: &str) -> &mut Metric {
        let at = match self.metrics.iter().position(|m| m.key == key) {
            Some(at) => at,
            None => {
                self.metrics.push(Metric { key: key.to_owned(), samples: BTreeMap::new() });
                self.metrics.len() - 1
            }
        };
        &mut self.metrics[at]
    }

    pub fn median(&self, key: &str, kind: Kind) -> Option<f64> {
        let metric = self.metrics.iter().find(|m| m.key == key)?;
        median(metric.samples.get(kind.name())?)
    }

    /// `ours / other` for a measure's medians.
    fn ratio(&self, key: &str, other: Kind) -> Option<f64> {
        self.ratio_of(key, Kind::Ours, other)
    }

    /// `kind / other` for a measure's medians, when it is a number (none of nothing answered).
    fn ratio_of(&self, key: &str, kind: Kind, other: Kind) -> Option<f64> {
        Some(self.median(key, kind)? / self.median(key, other)?).filter(|r| r.is_finite())
    }

    /// Adds the derived measure: each tunnel's 1-client GET p50 minus the direct path's.
    pub fn derive_added_latency(&mut self) {
        let Some(direct) = self.median("get_1_p50_us", Kind::Direct) else { return };
        for kind in self.kinds.clone().into_iter().filter(|k| *k != Kind::Direct) {
            if let Some(p50) = self.median("get_1_p50_us", kind) {
                self.add("added_p50_us", kind, p50 - direct);
            }
        }
    }

    /// The native paths' medians as a table, with spiped-rs's ratios against the others; `None` when
    /// only the wan measure ran.
    pub fn table(&self) -> Option<String> {
        if !self.metrics.iter().any(|m| !is_wan(&m.key)) {
            return None;
        }
        let kinds: Vec<Kind> = self.kinds.iter().copied().filter(|k| NATIVE_TABLE.contains(k)).collect();
        let ratios: Vec<(Kind, Kind, String)> = kinds
            .iter()
            .filter(|k| **k != Kind::Ours)
            .map(|k| (Kind::Ours, *k, format!("rs/{}", k.name().trim_end_matches("-1.6"))))
            .collect();
        Some(self.grid(&kinds, &ratios, |key| !is_wan(key)))
    }

    /// The classic-wire paths' medians, each path's ratio against spiped 1.6 at both ends, and the
    /// classic wire's against spiped-rs's native one; `None` when no classic-wire path of ours ran.
    pub fn classic_table(&self) -> Option<String> {
        let kinds: Vec<Kind> = CLASSIC_TABLE.into_iter().filter(|k| self.kinds.contains(k)).collect();
        if !kinds.iter().any(|k| matches!(k, Kind::OursClassic | Kind::MixedE | Kind::MixedD)) {
            return None;
        }
        let mut ratios: Vec<(Kind, Kind, String)> = [
            (Kind::OursClassic, "classic/1.6"),
            (Kind::MixedE, "mixed-e/1.6"),
            (Kind::MixedD, "mixed-d/1.6"),
        ]
        .into_iter()
        .map(|(kind, heading)| (kind, Kind::Spiped16, heading.to_owned()))
        .collect();
        ratios.push((Kind::OursClassic, Kind::Ours, "classic/rs".to_owned()));
        ratios.retain(|(kind, other, _)| self.kinds.contains(kind) && self.kinds.contains(other));
        Some(self.grid(&kinds, &ratios, |key| !is_wan(key)))
    }

    /// spiped-rs with and without `--metrics` (scraped every second), and the ratio; `None` when the
    /// metrics path did not run.
    pub fn metrics_table(&self) -> Option<String> {
        let kinds = [Kind::Ours, Kind::OursMetrics];
        if !kinds.iter().all(|k| self.kinds.contains(k)) {
            return None;
        }
        Some(
            self.grid(&kinds, &[(Kind::OursMetrics, Kind::Ours, "metrics/rs".to_owned())], |key| {
                !is_wan(key)
            }),
        )
    }

    /// A table of the medians of `kinds`, then the ratio `a / b` for each `(a, b, heading)` of
    /// `ratios`; a row only for the measures whose key `rows` accepts, taken on at least one of `kinds`.
    fn grid(&self, kinds: &[Kind], ratios: &[(Kind, Kind, String)], rows: impl Fn(&str) -> bool) -> String {
        let width = |kind: &Kind| kind.name().len().max(10) + 1;
        let mut out = format!("{:<42}", "measure (median)");
        for kind in kinds {
            write!(out, "{:>w$}", kind.name(), w = width(kind)).unwrap();
        }
        // At least 12 wide, and two spaces more than the heading.
        let ratio_width = |heading: &str| (heading.len() + 2).max(12);
        for (_, _, heading) in ratios {
            write!(out, "{heading:>w$}", w = ratio_width(heading)).unwrap();
        }
        out.push('\n');
        for metric in &self.metrics {
            if !rows(&metric.key) || !kinds.iter().any(|k| metric.samples.contains_key(k.name())) {
                continue;
            }
            write!(out, "{:<42}", describe(&metric.key).0).unwrap();
            for kind in kinds {
                let shown = |v: f64| if flood::is_count(&metric.key) { format!("{v:.0}") } else { figure(v) };
                let median = self.median(&metric.key, *kind).map_or("-".into(), shown);
                write!(out, "{median:>w$}", w = width(kind)).unwrap();
            }
            for (kind, other, heading) in ratios {
                let ratio = self.ratio_of(&metric.key, *kind, *other);
                let shown = ratio.map_or("-".into(), |r| format!("{r:.2}x"));
                write!(out, "{shown:>w$}", w = ratio_width(heading)).unwrap();
            }
            out.push('\n');
        }
        out
    }

    /// The paths across a WAN (issue 16): each one's medians, and its ratios against direct TCP and
    /// against spiped 1.6; `None` when the wan measure did not run.
    pub fn wan_table(&self) -> Option<String> {
        let kinds: Vec<Kind> = self.kinds.iter().copied().filter(|k| k.crosses_wan()).collect();
        if !self.metrics.iter().any(|m| is_wan(&m.key)) {
            return None;
        }
        let short = |kind: Kind| kind.name().trim_start_matches("spiped-").to_owned();
        let mut ratios = Vec::new();
        for other in [Kind::Direct, Kind::Spiped16].into_iter().filter(|k| kinds.contains(k)) {
            for &kind in kinds.iter().filter(|k| **k != other) {
                ratios.push((kind, other, format!("{}/{}", short(kind), short(other))));
            }
        }
        Some(self.grid(&kinds, &ratios, is_wan))
    }

    /// Issue 16's targets, each with the pooled path's ratio ("-" when none ran) beside spiped-rs's
    /// without the pool.
    pub fn wan_targets(&self) -> Vec<Target> {
        let pooled = self.kinds.iter().copied().find(|k| k.pooled());
        let target = |what, keys: &[&str], other, goal, higher| {
            let worst = |kind| self.worst(keys, kind, other, higher);
            Target { what, ours: pooled.and_then(worst), beside: vec![worst(Kind::Ours)], goal, higher }
        };
        let first_reply = ["wan_first_reply_p50_ms"];
        vec![
            target("time to first reply, median, vs direct", &first_reply, Kind::Direct, 0.6, false),
            target("time to first reply, median, vs spiped 1.6", &first_reply, Kind::Spiped16, 0.4, false),
            target(
                "redis -k 0 SET and GET, 50 clients, vs direct",
                &["wan_set_rps", "wan_get_rps"],
                Kind::Direct,
                1.5,
                true,
            ),
        ]
    }

    /// Issue 16's targets, met or not (none can be without a pooled path), beside spiped-rs's ratios.
    pub fn wan_targets_table(&self) -> String {
        targets_table("target (with --pool)", &["spiped-rs, no pool"], &self.wan_targets())
    }

    /// Two lines on the delay link itself, from the direct path: what the client timed from connect
    /// to PONG and what the link timed from accept to the first byte back, against the 2R a direct
    /// connection costs, and how late the link's timers fired. `None` without the direct path's figures.
    pub fn wan_sanity(&self, rtt_ms: u64) -> Option<String> {
        let direct = |key| self.median(key, Kind::Direct).map_or("-".into(), figure);
        self.median("wan_first_reply_p50_ms", Kind::Direct)?;
        Some(format!(
            "delay link on the direct path, against 2R = {} ms (1R handshake + 1R request):\n  \
             connect to PONG {} ms (the client's timing), accept to first byte back {} ms (the link's); \
             timers late p50 {} ms, p99 {} ms, p99 under redis-benchmark -k 0 {} ms",
            2 * rtt_ms,
            direct("wan_first_reply_p50_ms"),
            direct("wan_link_first_reply_p50_ms"),
            direct("wan_link_late_p50_ms"),
            direct("wan_link_late_p99_ms"),
            direct("wan_link_late_load_p99_ms"),
        ))
    }

    /// The worst over `keys` of the ratio `kind / other` (the lowest where higher is better), when
    /// every key has one.
    fn worst(&self, keys: &[&str], kind: Kind, other: Kind, higher: bool) -> Option<f64> {
        let ratios: Option<Vec<f64>> = keys.iter().map(|k| self.ratio_of(k, kind, other)).collect();
        let ratios = ratios.filter(|r| !r.is_empty())?.into_iter();
        Some(if higher { ratios.fold(f64::INFINITY, f64::min) } else { ratios.fold(0.0, f64::max) })
    }

    /// Issue 6's targets, each with spiped-rs's ratio and the same ratio for the unencrypted relay.
    pub fn targets(&self) -> Vec<Target> {
        let idle: Vec<&str> =
            self.metrics.iter().map(|m| m.key.as_str()).filter(|k| k.starts_with("idle_kib")).collect();
        let target = |what, keys: &[&str], other, goal, higher| {
            let worst = |kind| self.worst(keys, kind, other, higher);
            Target { what, ours: worst(Kind::Ours), beside: vec![worst(Kind::Relay)], goal, higher }
        };
        vec![
            target("bulk throughput, both directions, vs spiped 1.6", &BULK, Kind::Spiped16, 6.0, true),
            target("bulk throughput, both directions, vs stunnel", &BULK, Kind::Stunnel, 2.0, true),
            target("new connections/s vs spiped 1.6", &["new_conns_per_s"], Kind::Spiped16, 12.0, true),
            target(
                "redis SET and GET, 50 clients, vs direct",
                &["set_50_rps", "get_50_rps"],
                Kind::Direct,
                0.7,
                true,
            ),
            target(
                "added p50 latency, 1 client, vs spiped 1.6's",
                &["added_p50_us"],
                Kind::Spiped16,
                0.5,
                false,
            ),
            target("idle memory per connection vs spiped 1.6", &idle, Kind::Spiped16, 0.5, false),
        ]
    }

    /// Issue 12's targets for the classic wire, spiped-rs at both ends against spiped 1.6 at both
    /// ends, each beside the same ratio for the two mixed paths (which no target binds: one of their
    /// ends is spiped 1.6's).
    pub fn classic_targets(&self) -> Vec<Target> {
        let target = |what, keys: &[&str], goal| {
            let worst = |kind| self.worst(keys, kind, Kind::Spiped16, true);
            let beside = vec![worst(Kind::MixedE), worst(Kind::MixedD)];
            Target { what, ours: worst(Kind::OursClassic), beside, goal, higher: true }
        };
        vec![
            target("classic-wire bulk, both directions, vs spiped 1.6", &BULK, 3.0),
            target("classic-wire new connections/s vs spiped 1.6", &["new_conns_per_s"], 2.0),
        ]
    }

    /// The targets, met or not, next to what the relay with no encryption reaches on the same ratio:
    /// where the relay misses a goal too, no two-process tunnel meets it on this machine.
    pub fn targets_table(&self) -> String {
        targets_table("target (issue 6)", &["relay (no crypto)"], &self.targets())
    }

    /// Issue 12's targets, met or not, next to the mixed paths' ratios.
    pub fn classic_targets_table(&self) -> String {
        targets_table("target (issue 12)", &["mixed-e", "mixed-d"], &self.classic_targets())
    }

    /// Issue 11's goal for each flood run, met or not, with how the failed connections failed.
    pub fn flood_table(&self) -> String {
        let mut out = format!(
            "goal (issue 11): every legitimate connection answered, median setup < {GOAL_MEDIAN_MS} ms\n\
             {:<16}{:<19}{:>10}{:>11}{:>11}{:>6}   failed\n",
            "condition", "path", "answered", "p50 ms", "p99 ms", "met"
        );
        for condition in Condition::ALL {
            for (kind, run) in self.floods.iter().filter(|(_, r)| r.condition == condition) {
                let ms = |p| run.setup_ms(p).map_or("-".into(), figure);
                let failed: Vec<String> =
                    run.failures().iter().map(|(how, n)| format!("{n} {how}")).collect();
                let row = format!(
                    "{:<16}{:<19}{:>10}{:>11}{:>11}{:>6}   {}",
                    condition.label(),
                    kind.name(),
                    format!("{}/{}", run.answered(), run.tried()),
                    ms(50.0),
                    ms(99.0),
                    if run.meets_goal() { "yes" } else { "no" },
                    failed.join(", ")
                );
                writeln!(out, "{}", row.trim_end()).unwrap();
            }
        }
        out
    }

    /// The whole run as JSON: every sample, the medians, the ratios and the targets.
    pub fn json(&self, about: Value) -> Value {
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|m| {
                let (label, higher) = describe(&m.key);
                let medians: BTreeMap<&str, Option<f64>> =
                    self.kinds.iter().map(|k| (k.name(), self.median(&m.key, *k))).collect();
                let ratios: BTreeMap<String, Option<f64>> = self
                    .kinds
                    .iter()
                    .filter(|k| **k != Kind::Ours)
                    .map(|k| (format!("spiped-rs/{}", k.name()), self.ratio(&m.key, *k)))
                    .collect();
                let vs_spiped: BTreeMap<&str, Option<f64>> = self
                    .kinds
                    .iter()
                    .filter(|k| k.classic_wire() && **k != Kind::Spiped16)
                    .map(|k| (k.name(), self.ratio_of(&m.key, *k, Kind::Spiped16)))
                    .collect();
                json!({ "key": m.key, "label": label, "higher_is_better": higher, "samples": m.samples,
                        "median": medians, "ratio": ratios, "ratio_to_spiped_1_6": vs_spiped })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .into_iter()
            .map(|t| {
                json!({ "target": t.what, "ratio": t.ours, "relay_ratio": t.beside[0], "goal": t.goal,
                             "higher_is_better": t.higher })
            })
            .collect();
        let classic_targets: Vec<Value> = self
            .classic_targets()
            .into_iter()
            .map(|t| {
                json!({ "target": t.what, "path": Kind::OursClassic.name(), "ratio": t.ours,
                        "mixed_e_ratio": t.beside[0], "mixed_d_ratio": t.beside[1], "goal": t.goal,
                        "higher_is_better": t.higher })
            })
            .collect();
        let wan_targets: Vec<Value> = self
            .wan_targets()
            .into_iter()
            .map(|t| {
                json!({ "target": t.what, "pooled_ratio": t.ours, "spiped_rs_ratio": t.beside[0],
                        "goal": t.goal, "higher_is_better": t.higher })
            })
            .collect();
        let floods: Vec<Value> = self
            .floods
            .iter()
            .map(|(kind, run)| {
                let mut value = run.json();
                value["path"] = json!(kind.name());
                value
            })
            .collect();
        json!({ "about": about, "metrics": metrics, "targets": targets,
                "classic_targets": classic_targets, "wan_targets": wan_targets, "flood": floods,
                "flood_goal": { "all_answered": true, "median_setup_ms_below": GOAL_MEDIAN_MS } })
    }
}

/// A targets table headed `title`: each target's measured ratio, its goal, whether it is met, and the
/// same ratio for each of the paths `beside` names, with whether that path would meet it.
fn targets_table(title: &str, beside: &[&str], targets: &[Target]) -> String {
    let mut out = format!("{title:<54}measured    goal   met");
    for heading in beside {
        write!(out, "   {heading:<16}").unwrap();
    }
    out = out.trim_end().to_owned();
    out.push('\n');
    let shown = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
    for t in targets {
        let met = t.ours.map_or("-", |v| if t.meets(v) { "yes" } else { "no" });
        let bound = if t.higher { ">=" } else { "<=" };
        let mut row = format!("{:<52}{:>10} {bound}{:>4}x {met:>5}", t.what, shown(t.ours), t.goal);
        for ratio in &t.beside {
            let other = ratio.map_or("-".into(), |v| {
                format!("{} ({})", shown(Some(v)), if t.meets(v) { "meets" } else { "misses" })
            });
            write!(row, "   {other:<16}").unwrap();
        }
        writeln!(out, "{}", row.trim_end()).unwrap();
    }
    out
}

/// One target of issue 6 or 12: a ratio's goal, what spiped-rs measured on it, and the same ratio
/// for paths to read it against.
pub struct Target {
    /// The target's wording, as in the issue.
    what: &'static str,
    /// spiped-rs's ratio (the worst of the measures the target covers).
    ours: Option<f64>,
    /// The same ratio for the paths the table shows beside: the relay with no encryption for issue
    /// 6, the mixed paths for issue 12.
    beside: Vec<Option<f64>>,
    /// The bound the ratio must reach.
    goal: f64,
    /// Whether the ratio must be at least `goal` (else at most).
    higher: bool,
}

impl Target {
    fn meets(&self, ratio: f64) -> bool {
        if self.higher { ratio >= self.goal } else { ratio <= self.goal }
    }
}

/// A figure with as many decimals as its size deserves.
fn figure(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}
