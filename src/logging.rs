//! Logs: one line per event on standard error, or to syslog after daemonizing with --syslog. The
//! level comes from `RUST_LOG` when set, else from --log-level.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go.
static SYSLOG: OnceLock<UnixDatagram> = OnceLock::new();

/// syslog's `daemon` facility.
const FACILITY_DAEMON: u8 = 3;

/// Installs the global subscriber, writing to standard error.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("spiped={level}")))
        .unwrap_or_else(|_| EnvFilter::new("spiped=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Destination)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// The syslog socket, unless `SPIPED_SYSLOG_SOCKET` names another (for tests and unusual systems).
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Sends every later log line to the local syslog daemon instead of standard error.
///
/// # Errors
/// When the syslog socket cannot be reached.
pub fn switch_to_syslog() -> io::Result<()> {
    let path = std::env::var_os("SPIPED_SYSLOG_SOCKET").unwrap_or_else(|| SYSLOG_SOCKET.into());
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    let _ = SYSLOG.set(socket);
    Ok(())
}

/// Chooses standard error or syslog per event.
struct Destination;

/// A writer for one event.
enum Line {
    Stderr(io::Stderr),
    Syslog { severity: u8, buf: Vec<u8> },
}

impl<'a> MakeWriter<'a> for Destination {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::Stderr(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        if SYSLOG.get().is_none() {
            return Line::Stderr(io::stderr());
        }
        let severity = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        Line::Syslog { severity, buf: Vec::with_capacity(128) }
    }
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Line::Stderr(e) => e.write(data),
            Line::Syslog { buf, .. } => {
                buf.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Line::Stderr(e) => e.flush(),
            Line::Syslog { .. } => Ok(()),
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let (Line::Syslog { severity, buf }, Some(socket)) = (self, SYSLOG.get()) {
            let priority = FACILITY_DAEMON * 8 + *severity;
            let text = String::from_utf8_lossy(buf);
            let message = format!("<{priority}>spiped[{}]: {}", std::process::id(), text.trim_end());
            let _ = socket.send(message.as_bytes());
        }
    }
}
