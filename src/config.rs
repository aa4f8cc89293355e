//! From [`Args`] to what the daemon runs with: the only place a flag becomes a value. Resolving
//! addresses and reading the key happen here, before the runtime starts.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Args, UserGroup};
use crate::keys::{KeyError, KeySet};
use crate::proto::classic::ForwardSecrecy;
use crate::proto::{Protocol, Protocols};
use crate::tunnel::Mode;
use crate::tunnel::addr::{Addr, AddrError, SocketSpec};

/// The daemon's settings.
#[derive(Debug)]
pub struct Config {
    /// -e or -d.
    pub mode: Mode,
    /// The wire protocols connections may use (--protocol): a site migrating from spiped 1.x runs -d
    /// ends that take both, then moves its -e ends from classic to native one by one.
    pub protocols: Protocols,
    /// What -f and -g ask of classic connections; native connections always have forward secrecy.
    pub classic: ForwardSecrecy,
    /// The source address as written, for logs and the default pid file.
    pub source_spec: SocketSpec,
    /// The target address as written; a host name is re-resolved.
    pub target_spec: SocketSpec,
    /// The key files (or `-`), in order: one on -e, one or more on -d, re-read at each reload.
    pub key_files: Vec<PathBuf>,
    /// -b.
    pub bind_spec: Option<SocketSpec>,
    /// -D.
    pub wait_for_dns: bool,
    /// -F.
    pub foreground: bool,
    /// Not -j.
    pub keepalive: bool,
    /// -n; 0 is no limit.
    pub max_connections: usize,
    /// -o.
    pub timeout: Duration,
    /// How long a connection may be idle before this end closes it (`--idle-timeout`); `None`, as in
    /// spiped, keeps idle connections for as long as their peers do.
    pub idle_timeout: Option<Duration>,
    /// --pool (`-e`): spares to keep; 0 for none.
    pub pool: usize,
    /// --pool-idle (`-e`).
    pub pool_idle: Duration,
    /// --max-parked (`-d`).
    pub max_parked: usize,
    /// --park-timeout (`-d`).
    pub park_timeout: Duration,
    /// Where the pid goes when daemonized: -p, or `<source>.pid`.
    pub pid_file: PathBuf,
    /// -r / -R.
    pub reresolve: Option<Duration>,
    /// --syslog.
    pub syslog: bool,
    /// -u.
    pub user: Option<UserGroup>,
    /// --log-level.
    pub log_level: String,
    /// --proxy-protocol (`-d` only): the target learns who connected from a PROXY v2 header.
    pub proxy_protocol: bool,
    /// --metrics: where to serve `/metrics` and `/status`.
    pub metrics_spec: Option<SocketSpec>,
}

/// What --protocol (or its absence) means for `mode`: -e speaks native by default, -d accepts both.
pub fn protocols_for(mode: Mode, protocol: Option<Protocol>) -> Protocols {
    match (mode, protocol) {
        (_, Some(protocol)) => Protocols::Only(protocol),
        (Mode::Encrypt, None) => Protocols::Only(Protocol::Native),
        (Mode::Decrypt, None) => Protocols::Both,
    }
}

/// The addresses and key, resolved and read.
#[derive(Debug)]
pub struct Resolved {
    /// The source address to listen on.
    pub source: Addr,
    /// The target's addresses, in order.
    pub target: Vec<Addr>,
    /// -b, resolved.
    pub bind: Option<Addr>,
    /// --metrics, resolved.
    pub metrics: Option<Addr>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An address given with a flag cannot be used there; the message names the flag.
    #[error("{flag} {source}")]
    Flag {
        /// `-s`, `-t`, `-b` or `--metrics`.
        flag: &'static str,
        /// What is wrong with the address.
        source: AddrError,
    },
    /// An address does not resolve.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// The key cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// -b names a unix path, or the source a name with several addresses.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Checks the arguments' addresses (syntax only, no lookup) and builds the settings. The source and
    /// target are refused when they could never work: port 0 (the source would listen where no peer
    /// knows, the target cannot be connected to) or a unix path longer than the platform allows. -b
    /// keeps port 0, which there means "any local port".
    ///
    /// -f where no connection can be classic (-e by default, or `--protocol native`) is accepted, as
    /// spiped 1.6 scripts carry it, with a notice at start-up that it changes nothing.
    ///
    /// # Errors
    /// [`ConfigError::Flag`] for such an address; [`ConfigError::Invalid`] for a unix path with -b.
    pub fn from_args(args: &Args) -> Result<Self, ConfigError> {
        let flag = |flag| move |source| ConfigError::Flag { flag, source };
        let source = args.source.as_deref().expect("clap requires -s to run an end");
        let target = args.target.as_deref().expect("clap requires -t to run an end");
        let source_spec = SocketSpec::parse_endpoint(source).map_err(flag("-s"))?;
        let target_spec = SocketSpec::parse_endpoint(target).map_err(flag("-t"))?;
        let bind_spec = args.bind.as_deref().map(SocketSpec::parse).transpose().map_err(flag("-b"))?;
        let metrics_spec =
            args.metrics.as_deref().map(SocketSpec::parse_endpoint).transpose().map_err(flag("--metrics"))?;
        if let Some(SocketSpec::Unix(_)) = bind_spec {
            return Err(ConfigError::Invalid(
                "-b takes an IP address and port, not a unix socket path".into(),
            ));
        }
        let mode = if args.encrypt { Mode::Encrypt } else { Mode::Decrypt };
        if mode == Mode::Encrypt && args.key_files.len() > 1 {
            return Err(ConfigError::Invalid(
                "-e uses one key: give -k once (a -d end may hold several, to accept either during a rotation)"
                    .into(),
            ));
        }
        if args.key_files.len() > 1 && args.key_files.iter().any(|k| k.as_os_str() == "-") {
            return Err(ConfigError::Invalid("-k - (standard input) cannot be one of several keys".into()));
        }
        if mode == Mode::Encrypt && args.proxy_protocol {
            return Err(ConfigError::Invalid(
                "--proxy-protocol is for a -d end, whose target is the service; an -e end's target is a -d end"
                    .into(),
            ));
        }
        if mode == Mode::Encrypt && (args.max_parked.is_some() || args.park_timeout.is_some()) {
            return Err(ConfigError::Invalid(
                "--max-parked and --park-timeout are for a -d end, which holds the connections -e ends park"
                    .into(),
            ));
        }
        if mode == Mode::Decrypt && (args.pool > 0 || args.pool_idle.is_some()) {
            return Err(ConfigError::Invalid(
                "--pool and --pool-idle are for an -e end, which keeps spare connections to its -d end"
                    .into(),
            ));
        }
        if args.pool > 0 && args.protocol == Some(crate::cli::ProtocolArg::Classic) {
            return Err(ConfigError::Invalid(
                "--pool needs the native protocol: classic spiped cannot park connections".into(),
            ));
        }
        let protocols = protocols_for(mode, args.protocol.map(Protocol::from));
        if args.fast && !protocols.allows(Protocol::Classic) {
            tracing::info!(
                "-f changes nothing here: native connections always have forward secrecy \
                 (it applies to classic ones only)"
            );
        }
        Ok(Config {
            mode,
            protocols,
            classic: crate::cli::forward_secrecy(args.fast, args.require_pfs),
            pid_file: args.pid_file.clone().unwrap_or_else(|| PathBuf::from(format!("{source}.pid"))),
            source_spec,
            target_spec,
            key_files: args.key_files.clone(),
            bind_spec,
            wait_for_dns: args.wait_for_dns,
            foreground: args.foreground,
            keepalive: !args.no_keepalive,
            max_connections: args.max_connections,
            timeout: args.timeout,
            idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
            pool: args.pool,
            pool_idle: args.pool_idle.unwrap_or(crate::cli::DEFAULT_POOL_IDLE),
            max_parked: args.max_parked.unwrap_or(crate::cli::DEFAULT_MAX_PARKED),
            park_timeout: args.park_timeout.unwrap_or(crate::cli::DEFAULT_PARK_TIMEOUT),
            reresolve: args.reresolve(),
            syslog: args.syslog,
            user: args.user.clone(),
            log_level: args.log_level.clone(),
            proxy_protocol: args.proxy_protocol,
            metrics_spec,
        })
    }

    /// Resolves the source, target and bind addresses, once; with -D, retries every second until the
    /// lookups succeed.
    ///
    /// # Errors
    /// [`ConfigError::Addr`] when a lookup fails without -D.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        let source = self.retry(|| self.source_spec.resolve_blocking())?.swap_remove(0);
        let target = self.retry(|| self.target_spec.resolve_blocking())?;
        let bind = match &self.bind_spec {
            Some(spec) => Some(self.retry(|| spec.resolve_blocking())?.swap_remove(0)),
            None => None,
        };
        let metrics = match &self.metrics_spec {
            Some(spec) => Some(self.retry(|| spec.resolve_blocking())?.swap_remove(0)),
            None => None,
        };
        Ok(Resolved { source, target, bind, metrics })
    }

    /// Reads the key files, logging a warning for each that is readable by others or shorter than 32
    /// bytes, and for a key given twice. An `-e` end must end up with exactly one key.
    ///
    /// # Errors
    /// [`ConfigError::Key`] for the first file that cannot be used.
    pub fn load_keys(&self) -> Result<KeySet, ConfigError> {
        let (set, warnings) = KeySet::load_for(&self.key_files, self.mode == Mode::Encrypt)?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        Ok(set)
    }

    fn retry<T>(&self, mut lookup: impl FnMut() -> Result<T, AddrError>) -> Result<T, AddrError> {
        loop {
            match lookup() {
                Ok(found) => return Ok(found),
                Err(e) if self.wait_for_dns => {
                    tracing::debug!("{e}; retrying in 1 s (-D)");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(extra: &[&str]) -> Result<Config, ConfigError> {
        let base = ["spiped", "-e", "-s", "[127.0.0.1]:8000", "-t", "localhost:6379", "-k", "k"];
        Config::from_args(&Args::try_parse_from(base.iter().chain(extra)).unwrap())
    }

    #[test]
    fn pid_file_defaults_to_source_dot_pid() {
        assert_eq!(config(&[]).unwrap().pid_file, PathBuf::from("[127.0.0.1]:8000.pid"));
        assert_eq!(config(&["-p", "/run/p"]).unwrap().pid_file, PathBuf::from("/run/p"));
    }

    #[test]
    fn e_speaks_native_unless_told_classic() {
        assert_eq!(config(&[]).unwrap().protocols, Protocols::Only(Protocol::Native));
        assert_eq!(config(&["--protocol", "native"]).unwrap().protocols, Protocols::Only(Protocol::Native));
        assert_eq!(config(&["--protocol", "classic"]).unwrap().protocols, Protocols::Only(Protocol::Classic));
    }

    #[test]
    fn d_accepts_both_unless_told_one() {
        let d = |extra: &[&str]| {
            let base = ["spiped", "-d", "-s", "[127.0.0.1]:8000", "-t", "[127.0.0.1]:6379", "-k", "k"];
            Config::from_args(&Args::try_parse_from(base.iter().chain(extra)).unwrap()).unwrap().protocols
        };
        assert_eq!(d(&[]), Protocols::Both);
        assert!(Protocols::Both.allows(Protocol::Native) && Protocols::Both.allows(Protocol::Classic));
        assert_eq!(d(&["--protocol", "native"]), Protocols::Only(Protocol::Native));
        assert_eq!(d(&["--protocol", "classic"]), Protocols::Only(Protocol::Classic));
        assert!(!d(&["--protocol", "native"]).allows(Protocol::Classic));
        assert!(!d(&["--protocol", "classic"]).allows(Protocol::Native));
    }

    #[test]
    fn f_and_g_become_the_classic_options() {
        assert_eq!(config(&[]).unwrap().classic, ForwardSecrecy::Offer);
        assert_eq!(config(&["-f"]).unwrap().classic, ForwardSecrecy::Skip);
        assert_eq!(config(&["-g"]).unwrap().classic, ForwardSecrecy::Require);
        assert_eq!(config(&["--protocol", "classic", "-f"]).unwrap().classic, ForwardSecrecy::Skip);
    }

    #[test]
    fn idle_timeout_zero_or_absent_is_none() {
        assert_eq!(config(&[]).unwrap().idle_timeout, None);
        assert_eq!(config(&["--idle-timeout", "0"]).unwrap().idle_timeout, None);
        assert_eq!(config(&["--idle-timeout", "90"]).unwrap().idle_timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn keepalive_is_on_unless_j() {
        assert!(config(&[]).unwrap().keepalive);
        assert!(!config(&["-j"]).unwrap().keepalive);
    }

    #[test]
    fn proxy_protocol_is_for_a_d_end() {
        let err = config(&["--proxy-protocol"]).expect_err("-e --proxy-protocol");
        assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
        assert!(err.to_string().starts_with("--proxy-protocol is for a -d end"), "{err}");
        let d = |extra: &[&str]| {
            let base = ["spiped", "-d", "-s", "[127.0.0.1]:8000", "-t", "[127.0.0.1]:6379", "-k", "k"];
            Config::from_args(&Args::try_parse_from(base.iter().chain(extra)).unwrap())
                .unwrap()
                .proxy_protocol
        };
        assert!(d(&["--proxy-protocol"]));
        assert!(!d(&[]));
    }

    #[test]
    fn bind_must_be_an_ip_address() {
        assert!(matches!(config(&["-b", "/tmp/x"]), Err(ConfigError::Invalid(_))));
        assert!(config(&["-b", "[127.0.0.1]:0"]).is_ok());
    }

    #[test]
    fn source_and_target_refuse_port_zero_but_bind_takes_it() {
        let base = ["spiped", "-e", "-k", "k"];
        let with = |s: &str, t: &str| {
            Config::from_args(&Args::try_parse_from(base.iter().chain(&["-s", s, "-t", t])).unwrap())
        };
        for (s, t, flag) in [
            ("[127.0.0.1]:0", "[127.0.0.1]:1", "-s"),
            ("[127.0.0.1]:1", "[127.0.0.1]:0", "-t"),
            ("[127.0.0.1]:1", "localhost:0", "-t"),
        ] {
            match with(s, t) {
                Err(e @ ConfigError::Flag { source: AddrError::PortZero(_), .. }) => {
                    let message = e.to_string();
                    assert!(message.starts_with(&format!("{flag} `")), "{message}");
                    assert!(message.contains("has port 0"), "{message}");
                }
                other => panic!("-s {s} -t {t}: {other:?}"),
            }
        }
        assert!(config(&["-b", "[127.0.0.1]:0"]).is_ok());
    }

    #[test]
    fn unix_paths_too_long_for_the_platform_are_refused() {
        use crate::tunnel::addr::MAX_UNIX_PATH_LEN;
        let longest = format!("/{}", "p".repeat(MAX_UNIX_PATH_LEN - 1));
        let too_long = format!("{longest}p");
        let args = |s: &str, t: &str| Args::try_parse_from(["spiped", "-d", "-s", s, "-t", t, "-k", "k"]);
        assert!(Config::from_args(&args(&longest, &longest).unwrap()).is_ok());
        for (s, t, flag) in [(&too_long, &longest, "-s"), (&longest, &too_long, "-t")] {
            let err = Config::from_args(&args(s, t).unwrap()).expect_err(flag);
            let message = err.to_string();
            assert!(message.starts_with(flag), "{message}");
            assert!(message.contains(&format!("is {} bytes long", MAX_UNIX_PATH_LEN + 1)), "{message}");
            assert!(message.contains(&format!("at most {MAX_UNIX_PATH_LEN}")), "{message}");
        }
    }

    #[test]
    fn a_malformed_address_names_its_flag() {
        let err = config(&["-b", "nonsense"]).expect_err("-b nonsense");
        assert!(err.to_string().starts_with("-b `nonsense` is not a socket address"), "{err}");
    }

    #[test]
    fn addresses_resolve_once() {
        let r = config(&[]).unwrap().resolve().unwrap();
        assert_eq!(r.source, Addr::Tcp("127.0.0.1:8000".parse().unwrap()));
        assert!(r.target.iter().all(|a| matches!(a, Addr::Tcp(s) if s.port() == 6379)));
    }
}
