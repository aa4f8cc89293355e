//! The command line: spiped 1.6's options, one for one, parsed without any I/O. [`crate::config`] turns
//! the parsed [`Args`] into the runtime configuration.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, ArgGroup, Parser};

/// spiped's usage text, kept word for word so scripts and fingers that know it still fit.
pub const USAGE: &str = "spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-b <bind address>] [-DFj] [-f | -g] [-n <max # connections>]
    [-o <connection timeout>] [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u {<username> | <:groupname> | <username:groupname>}]
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
    group(ArgGroup::new("mode").required(true).args(["encrypt", "decrypt"])),
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
    pub source: String,

    /// Address to connect to, in the same forms; a host name is re-resolved every -r seconds.
    #[arg(short = 't', value_name = "target socket")]
    pub target: String,

    /// Shared key file (its SHA-256 is the key; at least 32 bytes), or - to read it from standard input.
    #[arg(short = 'k', value_name = "key file")]
    pub key_file: PathBuf,

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

    /// Accepted for compatibility. The native protocol always performs an X25519 exchange, so
    /// connections always have forward secrecy; -f does not turn it off.
    #[arg(short = 'f', conflicts_with = "require_pfs")]
    pub fast: bool,

    /// Accepted for compatibility: forward secrecy is always required, and always present.
    #[arg(short = 'g')]
    pub require_pfs: bool,

    /// Most simultaneous connections; 0 for no limit. At the limit, new connections wait in the backlog.
    #[arg(short = 'n', value_name = "max # connections", default_value_t = 100)]
    pub max_connections: usize,

    /// Seconds allowed for connecting to the target and for the handshake.
    #[arg(short = 'o', value_name = "connection timeout", default_value = "5", value_parser = positive_seconds)]
    pub timeout: Duration,

    /// Pid file, written when daemonized (default: <source socket>.pid).
    #[arg(short = 'p', value_name = "pidfile")]
    pub pid_file: Option<PathBuf>,

    /// Seconds between re-resolutions of a target host name (default 60).
    #[arg(short = 'r', value_name = "rtime", value_parser = resolve_seconds, conflicts_with = "no_reresolve")]
    pub resolve_interval: Option<Duration>,

    /// Resolve the target once at start, never again.
    #[arg(short = 'R')]
    pub no_reresolve: bool,

    /// After daemonizing, send warnings to syslog instead of standard error.
    #[arg(long = "syslog")]
    pub syslog: bool,

    /// After binding and reading the key, run as this user, :group, or user:group.
    #[arg(short = 'u', value_name = "user:group", value_parser = user_group)]
    pub user: Option<UserGroup>,

    /// Log level: error, warn, info, debug or trace (RUST_LOG, when set, takes precedence).
    #[arg(long = "log-level", value_name = "level", default_value = "info")]
    pub log_level: String,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: (),
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

    /// How often to re-resolve the target; `None` with -R.
    pub fn reresolve(&self) -> Option<Duration> {
        if self.no_reresolve { None } else { Some(self.resolve_interval.unwrap_or(DEFAULT_RESOLVE_INTERVAL)) }
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("`{s}` is not a usable number of seconds"));
    }
    Ok(v)
}

fn positive_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        v if v > 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err("the timeout must be greater than 0".into()),
    }
}

/// `-r 0` means the default, as in spiped.
fn resolve_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        0.0 => Ok(DEFAULT_RESOLVE_INTERVAL),
        v => Ok(Duration::from_secs_f64(v)),
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
        assert_eq!((a.source.as_str(), a.target.as_str()), ("[127.0.0.1]:8000", "[127.0.0.1]:6379"));
        assert_eq!(a.key_file, PathBuf::from("key"));
    }

    #[test]
    fn key_from_stdin() {
        let a =
            Args::try_parse_from_args(["spiped", "-d", "-s", "/run/s", "-t", "/run/t", "-k", "-"]).unwrap();
        assert_eq!(a.key_file, PathBuf::from("-"));
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
    fn max_connections() {
        assert_eq!(ok(&["-e"]).max_connections, 100);
        assert_eq!(ok(&["-e", "-n", "0"]).max_connections, 0);
        assert_eq!(ok(&["-e", "-n", "5000"]).max_connections, 5000);
        refused(&["-e", "-n", "-1"]);
        refused(&["-e", "-n", "many"]);
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
    fn unknown_options_are_refused() {
        refused(&["-e", "-x"]);
        refused(&["-e", "extra-positional"]);
    }
}
