//! `spipe`: one connection to a `-d` end, as its initiator, with standard input and output as the
//! plaintext side. It shares everything with the `-e` end but the listener: the dialer, the handshake
//! drivers and the pump (see [`crate::tunnel::connection::initiate`]).

pub mod cli;
pub mod stdio;

use std::io::Write;

use tokio::signal::unix::{SignalKind, signal};

use crate::keys::{self, KeyError};
use crate::proto::Protocol;
use crate::stats::Stats;
use crate::tunnel::Dialer;
use crate::tunnel::addr::{AddrError, SocketSpec, TargetAddrs};
use crate::tunnel::connection::{self, ConnError, Initiator};
use crate::tunnel::handshake::HandshakeError;
use crate::tunnel::pump::PumpError;
use crate::tunnel::shutdown::abort_channel;
use crate::tunnel::stream::{Stream, TcpOptions};
use cli::Args;
use stdio::StdioError;

/// Why spipe stopped with an error; each is one line on standard error.
#[derive(Debug, thiserror::Error)]
pub enum SpipeError {
    /// The arguments cannot be used.
    #[error("{0}")]
    Usage(String),
    /// An address given with a flag is malformed or does not resolve.
    #[error("{flag} {source}")]
    Addr {
        /// `-t` or `-b`.
        flag: &'static str,
        /// What is wrong with it.
        source: AddrError,
    },
    /// The key file cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Something this process needs could not be set up (the crypto library, a thread, a socket pair).
    #[error("cannot start: {0}")]
    Start(String),
    /// The connection failed: it could not be made, its handshake failed, or it was cut or tampered
    /// with.
    #[error("{}", describe(.0, .1))]
    Connection(ConnError, String),
    /// Standard input or output failed.
    #[error(transparent)]
    Stdio(#[from] StdioError),
}

/// Runs one connection to the end: returns once both directions have ended cleanly.
///
/// # Errors
/// [`SpipeError`], when anything fails; the connection to the `-d` end has been reset (never closed
/// cleanly) when it failed after connecting.
pub fn run(args: &Args) -> Result<(), SpipeError> {
    if args.key_file.as_os_str() == "-" {
        return Err(SpipeError::Usage(
            "-k - is not possible with spipe: standard input carries the data; give the key in a file".into(),
        ));
    }
    let flag = |flag| move |source| SpipeError::Addr { flag, source };
    let target_spec = SocketSpec::parse_endpoint(&args.target).map_err(flag("-t"))?;
    let bind_spec = args.bind.as_deref().map(SocketSpec::parse).transpose().map_err(flag("-b"))?;
    if let Some(SocketSpec::Unix(_)) = bind_spec {
        return Err(SpipeError::Usage("-b takes an IP address and port, not a unix socket path".into()));
    }
    let target = target_spec.resolve_blocking().map_err(flag("-t"))?;
    let bind = match &bind_spec {
        Some(spec) => Some(spec.resolve_blocking().map_err(flag("-b"))?.swap_remove(0)),
        None => None,
    };
    let loaded = keys::load(&args.key_file)?;
    for warning in loaded.warnings(&args.key_file) {
        // Not eprintln!, which panics if standard error is closed.
        let _ = writeln!(std::io::stderr(), "spipe: warning: {warning}");
    }
    crate::proto::init_backends()
        .map_err(|e| SpipeError::Start(format!("cannot use the crypto library: {e}")))?;

    let start = |what: &'static str| move |e: std::io::Error| SpipeError::Start(format!("{what}: {e}"));
    let (abort_tx, abort) = abort_channel();
    let (pair, stdio) = stdio::bridge(abort_tx).map_err(start("standard input and output"))?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(start("runtime"))?;
    let dialer = Dialer {
        target: TargetAddrs::new(target_spec.clone(), target),
        bind,
        timeout: args.timeout,
        tcp: TcpOptions { keepalive: !args.no_keepalive },
    };
    let protocol = Protocol::from(args.protocol);
    let classic = crate::cli::forward_secrecy(args.fast, args.require_pfs);
    let carried = runtime.block_on(async {
        // SIGHUP is caught and ignored from here on: ssh sends it to its ProxyCommand as it exits,
        // having closed its end of our standard input, and dying at once would cut the connection
        // before that end of input had been carried to the -d end (which would log a truncated
        // stream for every ssh session). The end of input arrives anyway, and the connection then
        // ends cleanly. A terminal's hang-up also ends standard input.
        let _hangup = signal(SignalKind::hangup())?;
        pair.set_nonblocking(true)?;
        let plain = Stream::Unix(tokio::net::UnixStream::from_std(pair)?);
        // Counted for no one: spipe has one connection and says how it went on standard error.
        let stats = Stats::default();
        let initiator = Initiator { dialer: &dialer, psk: &loaded.psk, protocol, classic, stats: &stats };
        Ok::<_, std::io::Error>(connection::initiate(plain, initiator, abort).await)
    });
    match carried.map_err(start("standard input and output"))? {
        Ok(_) => Ok(stdio.finish()?),
        Err(e) => match stdio.failure() {
            Some(stdio) => Err(stdio.into()),
            None => Err(SpipeError::Connection(e, target_spec.to_string())),
        },
    }
}

/// A failed connection in an initiator's words: what the `-d` end did, and what to check.
fn describe(e: &ConnError, target: &str) -> String {
    match e {
        ConnError::Target { target, source } => format!("cannot connect to {target}: {source}"),
        ConnError::TargetTimeout => format!("cannot connect to {target}: timed out (-o)"),
        ConnError::Handshake(HandshakeError::Io(io)) => format!(
            "handshake failed: {target} closed the connection ({io}): a wrong key, or not a spiped -d end"
        ),
        ConnError::Handshake(e) => format!("handshake failed: {e}"),
        ConnError::HandshakeTimeout => {
            format!(
                "handshake failed: {target} did not answer in time (-o): is it a spiped -d end? (one still \
                 on spiped 1.x needs --protocol classic)"
            )
        }
        ConnError::Pump(PumpError::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionReset => format!(
            "connection aborted: {target} reset it ({io}): the -d end stopped, or could not reach its \
             service; its log says why"
        ),
        other => other.to_string(),
    }
}
