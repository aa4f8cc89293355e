//! Against the previous protocol version (issue 16): spiped built from the last commit before parked
//! connections (scripts/build-previous). Its `-d` end still serves a current `-e` end, a current `-d` end
//! serves its `-e` end, and a current `-e` end with `--pool` against its `-d` end says once that the
//! `-d` end cannot park, then serves every client without a pool while it probes the `-d` end again now
//! and then; no park request reaches the target.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use support::previous::previous_cmd;
use support::*;

/// What the `-e` end logs, at WARN, when the `-d` end turns out to predate parked connections, with
/// its `--pool-idle` as Rust's Debug prints a Duration (src/tunnel/pool.rs; 3 is its limit of park
/// requests closed unanswered in a row).
fn fallback_warning(pool_idle: &str) -> String {
    format!(
        "--pool: the -d end closed 3 connections it was asked to park without answering: it predates \
         parked connections (upgrade it to use --pool); connecting per client instead, and trying again \
         every {pool_idle}"
    )
}

/// What the previous `-d` end logs for a park request: record type 0x02 is unknown to it.
const PREVIOUS_REFUSAL: &str = "handshake failed: record of unknown type 0x02";

/// Clients in each of the two waves of the `--pool` test: one as its `-e` end starts, one after its
/// fallback.
const WAVE: usize = 20;

/// Which binary runs an end.
#[derive(Clone, Copy, Debug)]
enum Version {
    /// The binary under test.
    Current,
    /// The previous protocol version's.
    Previous,
}

/// An `-e`/`-d` pair in front of `target`, each end of the given version, with its key and logs in
/// `dir`; `e_extra` goes to the `-e` end. Returns both ends and the `-e` end's address for clients
/// (`host:port`).
fn pair(
    dir: &Path,
    target: &str,
    (d_version, e_version): (Version, Version),
    e_extra: &[&str],
) -> (Spiped, Spiped, String) {
    let key = key_file(dir, "k");
    let key = key.to_str().unwrap();
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let e_source = format!("[127.0.0.1]:{}", free_port());
    let start = |name: &str, version, args: &[&str]| {
        let cmd = match version {
            Version::Current => SpipedCmd::new(dir, name),
            Version::Previous => previous_cmd(dir, name),
        };
        cmd.args(args).start()
    };
    let d = start("d", d_version, &["-d", "-s", &d_source, "-t", target, "-k", key]);
    let e_args = [&["-e", "-s", &e_source, "-t", &d_source, "-k", key][..], e_extra].concat();
    let e = start("e", e_version, &e_args);
    (d, e, plain_addr(&e_source))
}

/// redis-cli through `addr` (`host:port`) with `args`, its answer trimmed.
fn redis_via(addr: &str, args: &[&str]) -> String {
    let port = addr.rsplit_once(':').expect("host:port").1;
    redis_cli(&[&["-p", port][..], args].concat()).trim().to_string()
}

/// Redis PING/SET/GET, and 1 MiB each way through an echo service, byte for byte, through pairs of
/// the given versions.
fn serves_redis_and_bytes(name: &str, versions: (Version, Version)) {
    let dir = scratch(&format!("{name}-redis"));
    let redis = Redis::start(&dir, false);
    let (_d, _e, addr) = pair(&dir, &format!("[127.0.0.1]:{}", redis.port), versions, &[]);
    assert_eq!(redis_via(&addr, &["ping"]), "PONG", "{versions:?}");
    assert_eq!(redis_via(&addr, &["set", "compatible", "yes"]), "OK", "{versions:?}");
    assert_eq!(redis_via(&addr, &["get", "compatible"]), "yes", "{versions:?}");

    let dir = scratch(&format!("{name}-echo"));
    let (_d, _e, addr) = pair(&dir, &format!("[127.0.0.1]:{}", echo_server()), versions, &[]);
    let data = pattern(16, 1 << 20);
    let got = echo_through(TcpStream::connect(&addr).unwrap(), &data);
    assert_eq!(
        (got.len(), digest(&got)),
        (data.len(), digest(&data)),
        "{versions:?}: 1 MiB back byte for byte"
    );
}

#[test]
fn a_previous_d_end_serves_a_current_e_end() {
    serves_redis_and_bytes("previous-d", (Version::Previous, Version::Current));
}

#[test]
fn a_current_d_end_serves_a_previous_e_end() {
    serves_redis_and_bytes("previous-e", (Version::Current, Version::Previous));
}

/// The value of the sample `name` (with its labels) in the metrics served at `addr`.
///
/// # Panics
/// When the page cannot be fetched or has no such sample.
fn sample(addr: &str, name: &str) -> f64 {
    let page = support::http::get(addr, "/metrics").expect("the end serves its metrics").body;
    let value = page.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
    value.unwrap_or_else(|| panic!("no {name} in:\n{page}"))
}

/// `WAVE` clients at once through `addr`, each a new connection with a PING; every one must get PONG.
fn ping_wave(addr: &str, wave: &str) {
    let clients: Vec<_> = (0..WAVE)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || redis_via(&addr, &["ping"]))
        })
        .collect();
    let answers: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let wrong: Vec<&String> = answers.iter().filter(|a| *a != "PONG").collect();
    assert!(wrong.is_empty(), "{wave}: {} of {WAVE} clients were not answered PONG: {wrong:?}", wrong.len());
}

#[test]
fn a_current_e_end_with_a_pool_falls_back_against_a_previous_d_end_and_says_so_once() {
    let dir = scratch("previous-pool");
    let redis = Redis::start(&dir, false);
    // Counts itself: each query of the count is one connection more.
    let received_before = redis.connections_received();
    let metrics = format!("127.0.0.1:{}", free_port());
    // A short --pool-idle, so that the -e end probes the -d end again (a park request each time) while
    // the test runs.
    let (d, e, addr) = pair(
        &dir,
        &format!("[127.0.0.1]:{}", redis.port),
        (Version::Previous, Version::Current),
        &["--pool", "4", "--pool-idle", "0.25", "--metrics", &metrics],
    );

    // The first wave may come before the -e end has found out (on loopback it usually has by then);
    // either way, every client is served.
    ping_wave(&addr, "as the -e end starts");
    wait_for_log(&e, &fallback_warning("250ms"));
    ping_wave(&addr, "after the fallback");
    // Then a probe, a park request the -d end refuses. The count now may leave out up to 3 made before
    // the fallback (one per spare wanted, beside the 3rd refusal), so 4 more hold at least one probe
    // made after it.
    let unanswered = r#"spiped_pool_spare_failures_total{reason="unanswered"}"#;
    let so_far = sample(&metrics, unanswered);
    let wanted = so_far + 4.0;
    eventually("a probe refused after the fallback", Duration::from_secs(20), || {
        let refused = d.log_text().lines().filter(|l| l.contains(PREVIOUS_REFUSAL)).count() as f64;
        let counted = sample(&metrics, unanswered);
        match refused >= wanted && counted >= wanted {
            true => Ok(()),
            false => Err(format!("{refused} refused in the -d end's log, {counted} counted unanswered")),
        }
    });

    // No spare was ever parked, so every client was served without one, and counted so.
    let taken = sample(&metrics, r#"spiped_pool_clients_total{spare="taken"}"#);
    let missed = sample(&metrics, r#"spiped_pool_clients_total{spare="missed"}"#);
    assert_eq!((taken, missed), (0.0, 2.0 * WAVE as f64), "(taken, missed)");
    // Said once, not at every probe.
    let log = e.log_text();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(&fallback_warning("250ms"))).collect();
    assert_eq!(warnings.len(), 1, "the fallback is said once:\n{log}");
    assert!(warnings[0].contains(" WARN "), "at WARN: {}", warnings[0]);
    // Redis saw the clients and this query, and not one connection for a park request.
    let received = redis.connections_received() - received_before;
    assert_eq!(
        received,
        2 * WAVE as u64 + 1,
        "connections Redis received: the clients' and this query's; the -d end's log:\n{}",
        d.log_text()
    );
}

/// What the `-e` end logs when a probe finds the `-d` end parking again (src/tunnel/pool.rs).
const BACK_ON: &str = "--pool: the -d end parks connections now; spares back in use";

#[test]
fn a_pool_turned_off_by_a_previous_d_end_comes_back_once_that_end_is_upgraded() {
    let dir = scratch("previous-upgrade");
    let redis = Redis::start(&dir, false);
    let key = key_file(&dir, "k");
    let key = key.to_str().unwrap();
    let target = format!("[127.0.0.1]:{}", redis.port);
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let e_source = format!("[127.0.0.1]:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let d_args = ["-d", "-s", &d_source, "-t", &target, "-k", key];
    let mut d = previous_cmd(&dir, "d-previous").args(d_args).start();
    let e = SpipedCmd::new(&dir, "e")
        .args(["-e", "-s", &e_source, "-t", &d_source, "-k", key, "--pool", "3", "--pool-idle", "0.25"])
        .args(["--metrics", &metrics])
        .start();
    let addr = plain_addr(&e_source);
    wait_for_log(&e, &fallback_warning("250ms"));
    assert_eq!(redis_via(&addr, &["ping"]), "PONG", "served without the pool");

    // The -d end is upgraded in place: stopped, and the current release started on its address.
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_gone(Duration::from_secs(20));
    let _d = SpipedCmd::new(&dir, "d-current").args(d_args).start();
    wait_for_log(&e, BACK_ON);
    eventually("clients served from spares again", Duration::from_secs(30), || {
        assert_eq!(redis_via(&addr, &["ping"]), "PONG");
        match sample(&metrics, r#"spiped_pool_clients_total{spare="taken"}"#) {
            taken if taken > 0.0 => Ok(()),
            _ => Err("no client has taken a spare yet"),
        }
    });
}
