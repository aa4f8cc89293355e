//! Socket addresses as spiped writes them (`/unix/path`, `[1.2.3.4]:port`, `[v6::addr]:port`,
//! `host.name:port`), their resolution, and the target's periodic re-resolution.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest unix socket path the platform can bind or connect to, in bytes. A path travels in
/// `sockaddr_un`'s fixed `sun_path` array, NUL included: 108 bytes on Linux, 104 on the BSDs and
/// macOS. std does not expose the array's size (and this crate does not link `libc` for it), so it
/// is written here; a unit test binds a path of exactly this length and fails one byte longer.
pub const MAX_UNIX_PATH_LEN: usize =
    if cfg!(any(target_os = "linux", target_os = "android")) { 108 - 1 } else { 104 - 1 };

/// An address as written on the command line, parsed but not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSpec {
    /// A unix-domain socket path (absolute).
    Unix(PathBuf),
    /// A literal IP address and port: resolving it needs no lookup.
    Ip(SocketAddr),
    /// A host name and port: resolved with the system resolver, possibly to several addresses.
    Name {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A resolved address to bind or connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A unix-domain socket path.
    Unix(PathBuf),
    /// An IP socket address.
    Tcp(SocketAddr),
}

/// Why an address could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// The text is none of the accepted forms.
    #[error(
        "`{0}` is not a socket address: use /absolute/path, [1.2.3.4]:port, [v6::addr]:port or host.name:port"
    )]
    Syntax(String),
    /// The name did not resolve.
    #[error("cannot resolve {spec}: {source}")]
    Resolve {
        /// The address as written.
        spec: String,
        /// What the resolver said.
        source: std::io::Error,
    },
    /// The name resolved to nothing.
    #[error("{0} resolved to no addresses")]
    NoAddresses(String),
    /// Port 0 where a fixed port is needed: listening there gets a port the system picks, which no
    /// peer knows, and nothing can be reached at it.
    #[error("`{0}` has port 0: a listener there gets a port no peer knows, and nothing can be reached at it")]
    PortZero(String),
    /// A unix socket path longer than the platform's `sun_path` holds: binding or connecting would
    /// fail, so it is refused before anything starts.
    #[error("unix socket path `{path}` is {len} bytes long; this system allows at most {MAX_UNIX_PATH_LEN}")]
    PathTooLong {
        /// The path as written.
        path: String,
        /// Its length in bytes.
        len: usize,
    },
}

impl SocketSpec {
    /// Parses one of spiped's address forms.
    ///
    /// # Errors
    /// [`AddrError::Syntax`] when the text fits none of them.
    pub fn parse(text: &str) -> Result<Self, AddrError> {
        let bad = || AddrError::Syntax(text.to_string());
        if text.starts_with('/') {
            return Ok(SocketSpec::Unix(PathBuf::from(text)));
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            return Ok(SocketSpec::Ip(SocketAddr::new(ip, port.parse().map_err(|_| bad())?)));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains([':', '[', ']', '/']) || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketSpec::Ip(SocketAddr::new(ip, port))),
            Err(_) => Ok(SocketSpec::Name { host: host.to_string(), port }),
        }
    }

    /// Parses an address to listen on or connect to (-s, -t): as [`SocketSpec::parse`], and refuses what
    /// could never work there, which -b's "any local port" does not share.
    ///
    /// # Errors
    /// [`AddrError::Syntax`], [`AddrError::PortZero`] or [`AddrError::PathTooLong`].
    pub fn parse_endpoint(text: &str) -> Result<Self, AddrError> {
        let spec = Self::parse(text)?;
        match &spec {
            SocketSpec::Unix(path) if path.as_os_str().len() > MAX_UNIX_PATH_LEN => {
                Err(AddrError::PathTooLong { path: text.to_string(), len: path.as_os_str().len() })
            }
            SocketSpec::Ip(addr) if addr.port() == 0 => Err(AddrError::PortZero(text.to_string())),
            SocketSpec::Name { port: 0, .. } => Err(AddrError::PortZero(text.to_string())),
            _ => Ok(spec),
        }
    }

    /// Whether resolving this address needs the resolver (and so may change over time).
    pub fn is_name(&self) -> bool {
        matches!(self, SocketSpec::Name { .. })
    }

    /// Resolves to every address, in the resolver's order. Blocks on a name lookup: call it before the
    /// runtime starts, or through [`SocketSpec::resolve`].
    ///
    /// # Errors
    /// [`AddrError::Resolve`] or [`AddrError::NoAddresses`].
    pub fn resolve_blocking(&self) -> Result<Vec<Addr>, AddrError> {
        match self {
            SocketSpec::Unix(path) => Ok(vec![Addr::Unix(path.clone())]),
            SocketSpec::Ip(addr) => Ok(vec![Addr::Tcp(*addr)]),
            SocketSpec::Name { host, port } => {
                let found: Vec<Addr> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(|source| AddrError::Resolve { spec: self.to_string(), source })?
                    .map(Addr::Tcp)
                    .collect();
                if found.is_empty() { Err(AddrError::NoAddresses(self.to_string())) } else { Ok(found) }
            }
        }
    }

    /// [`SocketSpec::resolve_blocking`] on a thread where blocking is allowed.
    ///
    /// # Errors
    /// As [`SocketSpec::resolve_blocking`].
    pub async fn resolve(&self) -> Result<Vec<Addr>, AddrError> {
        let spec = self.clone();
        tokio::task::spawn_blocking(move || spec.resolve_blocking()).await.unwrap_or_else(|join| {
            Err(AddrError::Resolve { spec: self.to_string(), source: std::io::Error::other(join) })
        })
    }
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketSpec::Unix(path) => write!(f, "{}", path.display()),
            SocketSpec::Ip(addr) => write!(f, "[{}]:{}", addr.ip(), addr.port()),
            SocketSpec::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(path) => write!(f, "{}", path.display()),
            Addr::Tcp(addr) => write!(f, "[{}]:{}", addr.ip(), addr.port()),
        }
    }
}

/// The target's current addresses, shared by every connection and refreshed in the background.
#[derive(Debug, Clone)]
pub struct TargetAddrs {
    spec: Arc<SocketSpec>,
    current: Arc<RwLock<Arc<Vec<Addr>>>>,
}

impl TargetAddrs {
    /// Starts from addresses already resolved once.
    pub fn new(spec: SocketSpec, resolved: Vec<Addr>) -> Self {
        TargetAddrs { spec: Arc::new(spec), current: Arc::new(RwLock::new(Arc::new(resolved))) }
    }

    /// The addresses to try, in order.
    pub fn current(&self) -> Arc<Vec<Addr>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Re-resolves a host-name target every `interval`, keeping the last good addresses when a lookup
    /// fails. Returns at once for a literal address. Runs until the task is dropped.
    pub async fn refresh_every(self, interval: Duration) {
        if !self.spec.is_name() {
            return;
        }
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticks.tick().await;
            match self.spec.resolve().await {
                Ok(addrs) => {
                    let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if **current != addrs {
                        tracing::info!(target = %self.spec, addresses = ?addrs, "target re-resolved");
                        *current = Arc::new(addrs);
                    }
                }
                Err(e) => tracing::warn!(target = %self.spec, "{e}; keeping the previous addresses"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> SocketSpec {
        SocketSpec::Ip(s.parse().unwrap())
    }

    #[test]
    fn the_four_forms() {
        assert_eq!(
            SocketSpec::parse("/run/spiped.sock").unwrap(),
            SocketSpec::Unix("/run/spiped.sock".into())
        );
        assert_eq!(SocketSpec::parse("[127.0.0.1]:8000").unwrap(), ip("127.0.0.1:8000"));
        assert_eq!(SocketSpec::parse("[::1]:6379").unwrap(), ip("[::1]:6379"));
        assert_eq!(
            SocketSpec::parse("redis.example.net:6379").unwrap(),
            SocketSpec::Name { host: "redis.example.net".into(), port: 6379 }
        );
        assert_eq!(SocketSpec::parse("127.0.0.1:80").unwrap(), ip("127.0.0.1:80"), "a bare IPv4 literal");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "relative/path",
            "[127.0.0.1]",
            "[127.0.0.1]:",
            "[::1]:99999",
            "[nothost]:1",
            "::1:80",
            "host",
            ":80",
            "a b:1",
            "host:port",
        ] {
            assert!(SocketSpec::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["/tmp/s", "[127.0.0.1]:8000", "[::1]:6379", "localhost:25"] {
            assert_eq!(SocketSpec::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn endpoints_refuse_port_zero() {
        for text in ["[127.0.0.1]:0", "[::1]:0", "127.0.0.1:0", "localhost:0"] {
            assert!(SocketSpec::parse(text).is_ok(), "{text} parses (-b takes it)");
            assert!(matches!(SocketSpec::parse_endpoint(text), Err(AddrError::PortZero(_))), "{text}");
        }
        assert_eq!(SocketSpec::parse_endpoint("[127.0.0.1]:1").unwrap(), ip("127.0.0.1:1"));
        assert!(matches!(SocketSpec::parse_endpoint("nonsense"), Err(AddrError::Syntax(_))));
    }

    /// A path of `len` bytes in a fresh directory under the temporary directory.
    fn unix_path_of_len(dir: &std::path::Path, len: usize) -> PathBuf {
        let prefix = dir.as_os_str().len() + 1;
        assert!(prefix < len, "the temporary directory's path is too long for this test");
        dir.join("s".repeat(len - prefix))
    }

    #[test]
    fn the_longest_unix_path_binds_and_one_byte_more_does_not() {
        let dir = std::env::temp_dir().join(format!("spiped-addr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();

        let longest = unix_path_of_len(&dir, MAX_UNIX_PATH_LEN);
        let text = longest.to_str().unwrap();
        assert_eq!(SocketSpec::parse_endpoint(text).unwrap(), SocketSpec::Unix(longest.clone()));
        let listener = std::os::unix::net::UnixListener::bind(&longest);
        assert!(listener.is_ok(), "{} bytes: {listener:?}", text.len());
        assert!(std::os::unix::net::UnixStream::connect(&longest).is_ok());

        let too_long = unix_path_of_len(&dir, MAX_UNIX_PATH_LEN + 1);
        let text = too_long.to_str().unwrap();
        match SocketSpec::parse_endpoint(text) {
            Err(e @ AddrError::PathTooLong { len, .. }) => {
                assert_eq!(len, MAX_UNIX_PATH_LEN + 1);
                let message = e.to_string();
                assert!(message.contains(&format!("is {len} bytes long")), "{message}");
                assert!(message.contains(&format!("at most {MAX_UNIX_PATH_LEN}")), "{message}");
            }
            other => panic!("{} bytes: {other:?}", text.len()),
        }
        assert!(std::os::unix::net::UnixListener::bind(&too_long).is_err(), "the platform refuses it too");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn literal_and_name_resolution() {
        assert_eq!(ip("[::1]:7").resolve().await.unwrap(), vec![Addr::Tcp("[::1]:7".parse().unwrap())]);
        let local = SocketSpec::parse("localhost:7").unwrap().resolve().await.unwrap();
        assert!(local.iter().all(|a| matches!(a, Addr::Tcp(s) if s.ip().is_loopback() && s.port() == 7)));
    }
}
