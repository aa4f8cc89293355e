//! The command line: spiped 1.6's options, one for one, parsed without any I/O. [`crate::config`] turns
//! the parsed [`Args`] into the runtime configuration.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, ArgGroup, Parser, ValueEnum};

use crate::proto::Protocol;
use crate::proto::classic::ForwardSecrecy;

/// spiped's usage text, kept word for word so scripts and fingers that know it still fit.
pub const USAGE: &str = "spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-b <bind address>] [-DFj] [-f | -g] [-n <max # connections>]
    [-o <connection timeout>] [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u {<username> | <:groupname> | <username:groupname>}] [--log-format {text | json}]
    [--protocol {native | classic}] [--proxy-protocol] [--idle-timeout <seconds>]
       spiped --keygen <key file>
       spiped --fingerprint -k <key file> [-k <key file> ...]
       spiped -v";

/// Parsed command-line arguments.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "spiped",
    version,
    about = "Secure pipe daemon: forwards connections from a source socket to a target socket, \
             encrypting and authenticating the traffic between an -e end and a -d end with a shared key.",
    override_usage = USAGE,
    disable_version_flag = true,
    group(ArgGroup::new("mode").required(true).args(["encrypt", "decrypt", "fingerprint", "keygen"])),
)]
pub struct Args {
    /// Encrypt: take plaintext connections on the source and make encrypted connections to the target.
    #[arg(short = 'e')]
    pub encrypt: bool,

    /// Decrypt: take encrypted connections on the source and make plaintext connections to the target.
    #[arg(short = 'd')]
    pub decrypt: bool,

    /// Address to listen on: `/absolute/unix/path`, `[1.2.3.4]:port`, `[v6::addr]:port` or `host.name:port`.
    #[arg(
        short = 's',
        value_name = "source socket",
        help = "Address to listen on: /absolute/unix/path, [1.2.3.4]:port, [v6::addr]:port or host.name:port"
    )]
    #[arg(required_unless_present_any = ["fingerprint", "keygen"])]
    pub source: Option<String>,

    /// Address to connect to, in the same forms; a host name is re-resolved every -r seconds.
    #[arg(short = 't', value_name = "target socket", required_unless_present_any = ["fingerprint", "keygen"])]
    pub target: Option<String>,

    /// Shared key file (its SHA-256 is the key; make it 32 random bytes: a shorter one is accepted with a
    /// warning, an empty one refused), or - to read it from standard input. A -d end may be given
    /// several, and accepts a peer holding any of them.
    #[arg(short = 'k', value_name = "key file", action = ArgAction::Append, required_unless_present = "keygen")]
    pub key_files: Vec<PathBuf>,

    /// Local address to bind outgoing connections to.
    #[arg(short = 'b', value_name = "bind address")]
    pub bind: Option<String>,

    /// Wait for DNS: daemonize first, then retry name lookups until they succeed.
    #[arg(short = 'D')]
    pub wait_for_dns: bool,

    /// Run in the foreground: do not daemonize.
    #[arg(short = 'F')]
    pub foreground: bool,

    /// Disable TCP keepalives (on by default).
    #[arg(short = 'j')]
    pub no_keepalive: bool,

    /// Classic connections: skip the Diffie-Hellman exchange (send y = 1), as spiped 1.6's -f: faster,
    /// but no forward secrecy. Native connections always have forward secrecy; -f changes nothing there.
    #[arg(short = 'f', conflicts_with = "require_pfs")]
    pub fast: bool,

    /// Classic connections: refuse a peer that skips the Diffie-Hellman exchange (one using -f), as
    /// spiped 1.6's -g. Native connections always have forward secrecy, so they always satisfy -g.
    #[arg(short = 'g')]
    pub require_pfs: bool,

    /// Most simultaneous connections (at most 524288); 0 for no limit. On -e, at the limit new clients
    /// wait in the backlog. On -d only authenticated connections count: at the limit they wait after
    /// their handshake, and peers that have not proved the key are held apart (3 s each at most).
    #[arg(short = 'n', value_name = "max # connections", default_value_t = 100, value_parser = connections)]
    pub max_connections: usize,

    /// Seconds allowed for connecting to the target and for the handshake (at least 0.01); on -d the
    /// handshake gets at most 3.
    #[arg(short = 'o', value_name = "connection timeout", default_value = "5", value_parser = timeout_seconds)]
    pub timeout: Duration,

    /// Pid file, written when daemonized (default: <source socket>.pid).
    #[arg(short = 'p', value_name = "pidfile")]
    pub pid_file: Option<PathBuf>,

    /// Seconds between re-resolutions of a target host name: at least 1; 0 means the default, 60.
    #[arg(short = 'r', value_name = "rtime", value_parser = resolve_seconds, conflicts_with = "no_reresolve")]
    pub resolve_interval: Option<Duration>,

    /// Resolve the target once at start, never again.
    #[arg(short = 'R')]
    pub no_reresolve: bool,

    /// Send log lines to syslog (daemon facility) instead of standard error, from start-up, also with -F.
    #[arg(long = "syslog")]
    pub syslog: bool,

    /// After binding and reading the key, run as this user, :group, or user:group.
    #[arg(short = 'u', value_name = "user:group", value_parser = user_group)]
    pub user: Option<UserGroup>,

    /// Wire protocol. -e speaks native unless told classic (for a -d end still on spiped 1.x); -d
    /// accepts both on the same socket unless told to accept only one.
    #[arg(long = "protocol", value_name = "protocol", value_enum)]
    pub protocol: Option<ProtocolArg>,

    /// -d only: start each connection to the target with a PROXY protocol version 2 header (HAProxy's
    /// binary format) giving the address of the peer that connected here and this end's address of
    /// that connection, so a PROXY-aware service (HAProxy's accept-proxy, nginx's proxy_protocol) sees
    /// the client's -e end rather than this one. A unix-socket source sends the LOCAL command (no
    /// address). The service must then take only PROXY connections, and only from this end.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,

    /// Seconds a connection may carry no data either way before this end closes it, cleanly: its
    /// client and its service each see an end of stream, not a reset. 0 (the default, as spiped) for no
    /// limit; otherwise at least 0.01. Each end enforces its own.
    #[arg(long = "idle-timeout", value_name = "seconds", default_value = "0", value_parser = idle_seconds)]
    pub idle_timeout: Duration,

    /// -e only: keep this many spare connections to the -d end, connected and authenticated (parked
    /// there, the service not yet contacted), so that a new client's first bytes leave at once: across
    /// a network, its first reply comes one round trip sooner than with a direct connection. 0 (the
    /// default) for none. The -d end must be spiped-rs with parked connections (this release or later);
    /// against an older one the pool turns itself off, says so, and tries again every --pool-idle.
    #[arg(long = "pool", value_name = "conns", default_value_t = 0)]
    pub pool: usize,

    /// -e only: seconds a spare is kept before it is retired and replaced (default 60). Keep it below
    /// the -d end's --park-timeout.
    #[arg(long = "pool-idle", value_name = "seconds", value_parser = timeout_seconds)]
    pub pool_idle: Option<Duration>,

    /// -d only: the most connections an -e end with --pool may keep parked here at once (connected and
    /// authenticated, the target not yet contacted). They count apart from -n; one beyond it is
    /// refused, and the -e end connects per client instead.
    /// (Default 256.)
    #[arg(long = "max-parked", value_name = "conns")]
    pub max_parked: Option<usize>,

    /// -d only: seconds a parked connection may wait for a client before this end retires it. Longer
    /// than an -e end keeps a spare, so that spares are retired at the -e end first. (Default 120.)
    #[arg(long = "park-timeout", value_name = "seconds", value_parser = timeout_seconds)]
    pub park_timeout: Option<Duration>,

    /// Serve metrics for Prometheus at /metrics, and at /status a JSON summary whose status is 503 when
    /// the target does not accept a connection, on this address (`[1.2.3.4]:port`, or a unix socket
    /// path). Off by default. Anyone who can connect may read them (no key material is ever shown):
    /// bind it to loopback or a private address.
    #[arg(
        long = "metrics",
        value_name = "address",
        help = "Serve Prometheus metrics at /metrics, and at /status a JSON summary whose status is 503 \
                when the target does not accept a connection, on this address ([1.2.3.4]:port, or a unix \
                socket path). Off by default. Anyone who can connect may read them (no key material is \
                ever shown): bind it to loopback or a private address."
    )]
    pub metrics: Option<String>,

    /// Log level (RUST_LOG, when set, takes precedence).
    #[arg(long = "log-level", value_name = "level", default_value = "info", value_parser = LOG_LEVELS)]
    pub log_level: String,

    /// Log line format: text, or one JSON object per line for log shippers.
    #[arg(long = "log-format", value_name = "format", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Print the fingerprint of each -k key file and exit: a short name for a key, safe to show, that
    /// logs and status lines use.
    #[arg(long = "fingerprint")]
    pub fingerprint: bool,

    /// Write a new key file (32 random bytes from the operating system, mode 0600; an existing file is
    /// never overwritten), print its fingerprint and exit.
    #[arg(long = "keygen", value_name = "key file")]
    pub keygen: Option<PathBuf>,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: (),
}

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run an end (-e or -d).
    Run,
    /// --fingerprint.
    Fingerprint,
    /// --keygen.
    Keygen,
}

/// The `--protocol` argument: one of [`Protocol`]'s values, as the command line spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// spiped-rs's own protocol: what -e and spipe speak unless told classic.
    Native,
    /// spiped 1.x's, to talk to classic spiped peers.
    Classic,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Self {
        match arg {
            ProtocolArg::Native => Protocol::Native,
            ProtocolArg::Classic => Protocol::Classic,
        }
    }
}

/// The `--log-format` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time LEVEL message key=value ...`.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormat> for crate::logging::Format {
    fn from(arg: LogFormat) -> Self {
        match arg {
            LogFormat::Text => crate::logging::Format::Text,
            LogFormat::Json => crate::logging::Format::Json,
        }
    }
}

/// The `-u` argument: who to become after start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroup {
    /// User name or numeric id, if given.
    pub user: Option<String>,
    /// Group name or numeric id, if given.
    pub group: Option<String>,
}

/// Default for `-r`, as spiped.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(60);

/// Shortest `-r` accepted. A re-resolution is a blocking name lookup that itself takes milliseconds
/// and sometimes seconds, and DNS records carry their lifetimes in whole seconds, so looking up more
/// than once a second can only repeat the last answer while keeping the resolver and a core busy (a
/// period of a microsecond did exactly that); a period that rounds to zero nanoseconds made the
/// re-resolving task panic, so the target silently stopped being re-resolved.
pub const MIN_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest `-o` accepted: below it a timeout is effectively zero. The runtime's timer counts whole
/// milliseconds, and connecting to a target and completing a handshake take a round trip or two plus
/// scheduling, which on a loaded machine exceed a few milliseconds even on loopback, so a smaller
/// timeout would fail connections for no fault of the peer.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);

/// `--max-parked` unless given: room for the pools of a few dozen `-e` ends.
pub const DEFAULT_MAX_PARKED: usize = 256;

/// `--pool-idle` unless given: half the `-d` end's default `--park-timeout`.
pub const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(60);

/// `--park-timeout` unless given.
pub const DEFAULT_PARK_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest number of seconds `-o` and `-r` take, about 31 years: large enough to mean "never", small
/// enough that adding it to the clock cannot overflow.
pub const MAX_SECONDS: f64 = 1e9;

/// Most `-n` accepted. Each connection holds two descriptors (the accepted socket and the one to the
/// target), and Linux's default `fs.nr_open`, the ceiling any process's descriptor limit can be raised
/// to, is 2^20, so no process could ever hold more than 2^19 connections; the runtime's semaphore
/// cannot even represent counts from 2^61 (where a larger `-n` used to panic).
pub const MAX_CONNECTIONS: usize = 1 << 19;

// The connection limit is a tokio semaphore's permit count, which has its own ceiling.
const _: () = assert!(MAX_CONNECTIONS <= tokio::sync::Semaphore::MAX_PERMITS);

/// What `--log-level` accepts: the levels of `tracing`, listed by `-h`.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

impl Args {
    /// Parses `argv` (program name first).
    ///
    /// # Errors
    /// clap's error, which knows how to print itself (help and version are "errors" too).
    pub fn try_parse_from_args<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(argv)
    }

    /// What to do: run an end, or one of the key commands.
    pub fn action(&self) -> Action {
        if self.fingerprint {
            Action::Fingerprint
        } else if self.keygen.is_some() {
            Action::Keygen
        } else {
            Action::Run
        }
    }

    /// How often to re-resolve the target; `None` with -R.
    pub fn reresolve(&self) -> Option<Duration> {
        if self.no_reresolve { None } else { Some(self.resolve_interval.unwrap_or(DEFAULT_RESOLVE_INTERVAL)) }
    }
}

/// What -f and -g ask of classic connections, in spiped 1.6's meaning (they cannot be given together).
pub fn forward_secrecy(fast: bool, require_pfs: bool) -> ForwardSecrecy {
    match (fast, require_pfs) {
        (true, _) => ForwardSecrecy::Skip,
        (false, true) => ForwardSecrecy::Require,
        (false, false) => ForwardSecrecy::Offer,
    }
}

/// The first line of clap's message, without its `error: `, plus the accepted values when clap knows them (its own later
/// lines, which list them, are not printed).
pub fn clap_reason(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) if e.kind() == ErrorKind::InvalidValue => {
            format!("{first}; use one of: {}", valid.join(", "))
        }
        _ => match e.get(ContextKind::InvalidArg) {
            // Clap lists the missing arguments on the lines after the first.
            Some(ContextValue::Strings(missing)) if e.kind() == ErrorKind::MissingRequiredArgument => {
                format!("{first} {}", missing.join(", "))
            }
            _ => first,
        },
    }
}

/// A number of seconds between 0 and [`MAX_SECONDS`]; refuses NaN, infinities and negatives.
fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(format!("`{s}` is not a usable number of seconds (0 to {MAX_SECONDS})"));
    }
    Ok(v)
}

/// `-o`: at least [`MIN_TIMEOUT`].
pub(crate) fn timeout_seconds(s: &str) -> Result<Duration, String> {
    let v = seconds(s)?;
    if v < MIN_TIMEOUT.as_secs_f64() {
        return Err(format!("the timeout must be at least {} s", MIN_TIMEOUT.as_secs_f64()));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `--idle-timeout`: 0 for none, as spiped (which has no idle timeout); otherwise at least
/// [`MIN_TIMEOUT`], as -o, since a connection idle for less than that is merely between two writes.
fn idle_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        0.0 => Ok(Duration::ZERO),
        v if v < MIN_TIMEOUT.as_secs_f64() => {
            Err(format!("the idle timeout must be at least {} s, or 0 for none", MIN_TIMEOUT.as_secs_f64()))
        }
        v => Ok(Duration::from_secs_f64(v)),
    }
}

/// `-r`: at least [`MIN_RESOLVE_INTERVAL`]; 0 means the default, as in spiped.
fn resolve_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        0.0 => Ok(DEFAULT_RESOLVE_INTERVAL),
        v if v < MIN_RESOLVE_INTERVAL.as_secs_f64() => Err(format!(
            "the re-resolution period must be at least {} s (0 means the default, {} s)",
            MIN_RESOLVE_INTERVAL.as_secs(),
            DEFAULT_RESOLVE_INTERVAL.as_secs()
        )),
        v => Ok(Duration::from_secs_f64(v)),
    }
}

/// `-n`: 0 (no limit) to [`MAX_CONNECTIONS`].
fn connections(s: &str) -> Result<usize, String> {
    let too_many = || {
        format!("at most {MAX_CONNECTIONS} connections are possible (two descriptors each); 0 means no limit")
    };
    match s.trim().parse::<usize>() {
        Ok(n) if n <= MAX_CONNECTIONS => Ok(n),
        Ok(_) => Err(too_many()),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(too_many()),
        Err(_) => Err(format!("`{s}` is not a number of connections")),
    }
}

fn user_group(s: &str) -> Result<UserGroup, String> {
    let (user, group) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let nonempty = |x: &str| (!x.is_empty()).then(|| x.to_string());
    let parsed = UserGroup { user: nonempty(user), group: group.and_then(nonempty) };
    if parsed.user.is_none() && parsed.group.is_none() || group == Some("") {
        return Err(format!("`{s}` is not <username>, <:groupname> or <username:groupname>"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [&str; 7] = ["spiped", "-s", "[127.0.0.1]:8000", "-t", "[127.0.0.1]:6379", "-k", "key"];

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from_args(BASE.iter().chain(extra))
    }

    fn ok(extra: &[&str]) -> Args {
        parse(extra).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
    }

    fn refused(extra: &[&str]) {
        assert!(parse(extra).is_err(), "{extra:?} should be refused");
    }

    #[test]
    fn mode_e_or_d_exactly_one() {
        assert!(ok(&["-e"]).encrypt);
        assert!(ok(&["-d"]).decrypt);
        refused(&[]);
        refused(&["-e", "-d"]);
        refused(&["-e", "-e"]);
    }

    #[test]
    fn source_target_and_key_are_required() {
        assert!(Args::try_parse_from_args(["spiped", "-e", "-t", "a:1", "-k", "k"]).is_err());
        assert!(Args::try_parse_from_args(["spiped", "-e", "-s", "a:1", "-k", "k"]).is_err());
        assert!(Args::try_parse_from_args(["spiped", "-e", "-s", "a:1", "-t", "b:2"]).is_err());
        let a = ok(&["-e"]);
        assert_eq!(
            (a.source.as_deref(), a.target.as_deref()),
            (Some("[127.0.0.1]:8000"), Some("[127.0.0.1]:6379"))
        );
        assert_eq!(a.key_files, [PathBuf::from("key")]);
    }

    #[test]
    fn key_from_stdin() {
        let a =
            Args::try_parse_from_args(["spiped", "-d", "-s", "/run/s", "-t", "/run/t", "-k", "-"]).unwrap();
        assert_eq!(a.key_files, [PathBuf::from("-")]);
    }

    #[test]
    fn bind_address() {
        assert_eq!(ok(&["-e", "-b", "[10.0.0.1]:0"]).bind.as_deref(), Some("[10.0.0.1]:0"));
        refused(&["-e", "-b", "x:1", "-b", "y:1"]);
    }

    #[test]
    fn flags_d_f_j_and_syslog() {
        let a = ok(&["-e", "-DFj", "--syslog"]);
        assert!(a.wait_for_dns && a.foreground && a.no_keepalive && a.syslog);
        let a = ok(&["-e"]);
        assert!(!a.wait_for_dns && !a.foreground && !a.no_keepalive && !a.syslog);
    }

    #[test]
    fn f_and_g_are_accepted_but_not_together() {
        assert!(ok(&["-e", "-f"]).fast);
        assert!(ok(&["-e", "-g"]).require_pfs);
        refused(&["-e", "-f", "-g"]);
    }

    #[test]
    fn protocol_is_native_or_classic_and_unset_by_default() {
        assert_eq!(ok(&["-e"]).protocol, None);
        assert_eq!(ok(&["-d"]).protocol, None);
        for (mode, value, want) in [
            ("-e", "native", ProtocolArg::Native),
            ("-e", "classic", ProtocolArg::Classic),
            ("-d", "native", ProtocolArg::Native),
            ("-d", "classic", ProtocolArg::Classic),
        ] {
            assert_eq!(ok(&[mode, "--protocol", value]).protocol, Some(want), "{mode} {value}");
        }
        assert_eq!(Protocol::from(ProtocolArg::Native), Protocol::Native);
        assert_eq!(Protocol::from(ProtocolArg::Classic), Protocol::Classic);
        for bad in ["bogus", "", "Classic", "both", "1"] {
            let err = parse(&["-e", "--protocol", bad]).expect_err(bad);
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad}");
        }
        refused(&["-d", "--protocol", "native", "--protocol", "classic"]);
        refused(&["-d", "--protocol"]);
    }

    #[test]
    fn f_and_g_combine_with_either_protocol() {
        for mode in ["-e", "-d"] {
            for protocol in ["native", "classic"] {
                assert!(ok(&[mode, "--protocol", protocol, "-f"]).fast, "{mode} {protocol}");
                assert!(ok(&[mode, "--protocol", protocol, "-g"]).require_pfs, "{mode} {protocol}");
                refused(&[mode, "--protocol", protocol, "-f", "-g"]);
            }
        }
    }

    #[test]
    fn max_connections() {
        assert_eq!(ok(&["-e"]).max_connections, 100);
        assert_eq!(ok(&["-e", "-n", "0"]).max_connections, 0);
        assert_eq!(ok(&["-e", "-n", "5000"]).max_connections, 5000);
        refused(&["-e", "-n", "-1"]);
        refused(&["-e", "-n", "many"]);
    }

    /// `-n 2305843009213693952` (2^61) used to panic in the runtime's semaphore.
    #[test]
    fn max_connections_beyond_what_a_process_can_hold_is_refused() {
        assert_eq!(ok(&["-e", "-n", "524288"]).max_connections, MAX_CONNECTIONS);
        for n in ["524289", "2305843009213693952", "18446744073709551615", "99999999999999999999999"] {
            let err = parse(&["-e", "-n", n]).expect_err(n).to_string();
            assert!(err.contains("at most 524288 connections"), "{n}: {err}");
        }
    }

    #[test]
    fn timeout_is_positive_seconds() {
        assert_eq!(ok(&["-e"]).timeout, Duration::from_secs(5));
        assert_eq!(ok(&["-e", "-o", "0.25"]).timeout, Duration::from_millis(250));
        refused(&["-e", "-o", "0"]);
        refused(&["-e", "-o", "-3"]);
        refused(&["-e", "-o", "inf"]);
        refused(&["-e", "-o", "soon"]);
    }

    #[test]
    fn a_timeout_of_effectively_zero_is_refused() {
        assert_eq!(ok(&["-e", "-o", "0.01"]).timeout, MIN_TIMEOUT);
        for o in ["0.009", "1e-300", "5e-324"] {
            let err = parse(&["-e", "-o", o]).expect_err(o).to_string();
            assert!(err.contains("the timeout must be at least 0.01 s"), "{o}: {err}");
        }
    }

    #[test]
    fn a_timeout_that_overflows_or_is_not_a_number_is_refused() {
        assert_eq!(ok(&["-e", "-o", "1e9"]).timeout, Duration::from_secs(1_000_000_000));
        for o in ["1000000001", "1e300", "1e309", "nan", "NaN", "inf", "infinity"] {
            let err = parse(&["-e", "-o", o]).expect_err(o).to_string();
            assert!(err.contains("is not a usable number of seconds"), "{o}: {err}");
        }
    }

    #[test]
    fn idle_timeout_is_off_unless_given_seconds_on_either_end() {
        for mode in ["-e", "-d"] {
            assert_eq!(ok(&[mode]).idle_timeout, Duration::ZERO, "{mode}: off by default");
            assert_eq!(ok(&[mode, "--idle-timeout", "0"]).idle_timeout, Duration::ZERO, "{mode}");
            assert_eq!(ok(&[mode, "--idle-timeout", "300"]).idle_timeout, Duration::from_secs(300));
            assert_eq!(ok(&[mode, "--idle-timeout", "0.5"]).idle_timeout, Duration::from_millis(500));
        }
        assert_eq!(ok(&["-e", "--idle-timeout", "0.01"]).idle_timeout, MIN_TIMEOUT);
        assert_eq!(ok(&["-e", "--idle-timeout", "1e9"]).idle_timeout, Duration::from_secs(1_000_000_000));
        for t in ["0.009", "5e-324"] {
            let err = parse(&["-e", "--idle-timeout", t]).expect_err(t).to_string();
            assert!(err.contains("the idle timeout must be at least 0.01 s, or 0 for none"), "{t}: {err}");
        }
        for t in ["-1", "nan", "inf", "1e10", "soon"] {
            let err = parse(&["-e", "--idle-timeout", t]).expect_err(t).to_string();
            assert!(err.contains("seconds"), "{t}: {err}");
        }
        refused(&["-e", "--idle-timeout"]);
        assert!(USAGE.contains("[--idle-timeout <seconds>]"), "{USAGE}");
    }

    #[test]
    fn pid_file() {
        assert_eq!(ok(&["-e", "-p", "/run/x.pid"]).pid_file, Some(PathBuf::from("/run/x.pid")));
        assert_eq!(ok(&["-e"]).pid_file, None);
    }

    #[test]
    fn reresolve_interval_or_never() {
        assert_eq!(ok(&["-e"]).reresolve(), Some(Duration::from_secs(60)));
        assert_eq!(ok(&["-e", "-r", "10"]).reresolve(), Some(Duration::from_secs(10)));
        assert_eq!(ok(&["-e", "-r", "0"]).reresolve(), Some(Duration::from_secs(60)));
        assert_eq!(ok(&["-e", "-R"]).reresolve(), None);
        refused(&["-e", "-r", "10", "-R"]);
        refused(&["-e", "-r", "-1"]);
    }

    /// `-r 1e-10` used to panic the re-resolving task (a zero period), and `-r 1e-6` kept a core busy.
    #[test]
    fn a_reresolution_period_under_a_second_is_refused() {
        assert_eq!(ok(&["-e", "-r", "1"]).reresolve(), Some(MIN_RESOLVE_INTERVAL));
        for r in ["0.999", "1e-6", "1e-10", "5e-324"] {
            let err = parse(&["-e", "-r", r]).expect_err(r).to_string();
            assert!(err.contains("re-resolution period must be at least 1 s"), "{r}: {err}");
        }
        for r in ["nan", "inf", "1e10"] {
            refused(&["-e", "-r", r]);
        }
    }

    #[test]
    fn log_level_is_one_of_the_five() {
        assert_eq!(ok(&["-e"]).log_level, "info");
        for level in LOG_LEVELS {
            assert_eq!(ok(&["-e", "--log-level", level]).log_level, level);
        }
        for bad in ["bogus", "", "warning", "spiped=debug"] {
            let err = parse(&["-e", "--log-level", bad]).expect_err(bad);
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad}");
        }
    }

    #[test]
    fn help_lists_the_log_levels_and_the_limits() {
        use clap::CommandFactory;
        // Words only: clap wraps the help to the terminal's width.
        let help = Args::command().render_help().to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains("[possible values: error, warn, info, debug, trace]"), "{help}");
        // The limits are written out in the help texts; they must say what the parsers enforce.
        assert!(help.contains(&format!("(at most {MAX_CONNECTIONS})")), "{help}");
        assert!(help.contains(&format!("(at least {})", MIN_TIMEOUT.as_secs_f64())), "{help}");
        assert!(help.contains(&format!("at least {};", MIN_RESOLVE_INTERVAL.as_secs())), "{help}");
        assert!(help.contains(&format!("the default, {}", DEFAULT_RESOLVE_INTERVAL.as_secs())), "{help}");
        assert!(help.contains("--protocol <protocol>"), "{help}");
        assert!(help.contains("[possible values: native, classic]"), "{help}");
    }

    #[test]
    fn usage_names_the_protocol_option() {
        assert!(USAGE.contains("[--protocol {native | classic}]"), "{USAGE}");
    }

    #[test]
    fn proxy_protocol_is_off_unless_asked() {
        assert!(!ok(&["-d"]).proxy_protocol);
        assert!(ok(&["-d", "--proxy-protocol"]).proxy_protocol);
        refused(&["-d", "--proxy-protocol=yes"]);
    }

    #[test]
    fn user_and_group() {
        let ug = |u: Option<&str>, g: Option<&str>| {
            Some(UserGroup { user: u.map(String::from), group: g.map(String::from) })
        };
        assert_eq!(ok(&["-e", "-u", "nobody"]).user, ug(Some("nobody"), None));
        assert_eq!(ok(&["-e", "-u", ":nogroup"]).user, ug(None, Some("nogroup")));
        assert_eq!(ok(&["-e", "-u", "nobody:nogroup"]).user, ug(Some("nobody"), Some("nogroup")));
        refused(&["-e", "-u", ":"]);
        refused(&["-e", "-u", "nobody:"]);
        refused(&["-e", "-u", ""]);
    }

    #[test]
    fn version_flag_is_lower_case_v() {
        let err = Args::try_parse_from_args(["spiped", "-v"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn several_key_files_in_order() {
        let a = ok(&["-d", "-k", "new"]);
        assert_eq!(a.key_files, [PathBuf::from("key"), PathBuf::from("new")]);
        assert_eq!(a.action(), Action::Run);
    }

    #[test]
    fn fingerprint_needs_only_key_files() {
        let a = Args::try_parse_from_args(["spiped", "--fingerprint", "-k", "a", "-k", "b"]).unwrap();
        assert_eq!((a.action(), a.key_files.len()), (Action::Fingerprint, 2));
        assert!(Args::try_parse_from_args(["spiped", "--fingerprint"]).is_err());
        assert!(Args::try_parse_from_args(["spiped", "--fingerprint", "-e", "-k", "a"]).is_err());
    }

    #[test]
    fn keygen_takes_the_new_file_alone() {
        let a = Args::try_parse_from_args(["spiped", "--keygen", "new.key"]).unwrap();
        assert_eq!((a.action(), a.keygen), (Action::Keygen, Some(PathBuf::from("new.key"))));
        assert!(Args::try_parse_from_args(["spiped", "--keygen"]).is_err());
        assert!(
            Args::try_parse_from_args(["spiped", "--keygen", "x", "-d", "-s", "/s", "-t", "/t", "-k", "k"])
                .is_err()
        );
    }

    #[test]
    fn a_missing_argument_is_named_on_the_one_line() {
        let refused =
            Args::try_parse_from_args(["spiped", "-e", "-s", "[127.0.0.1]:1", "-k", "k"]).unwrap_err();
        let reason = clap_reason(&refused);
        assert_eq!(reason, "the following required arguments were not provided: -t <target socket>");
    }

    #[test]
    fn unknown_options_are_refused() {
        refused(&["-e", "-x"]);
        refused(&["-e", "extra-positional"]);
    }
}
