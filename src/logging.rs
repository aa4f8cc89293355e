//! Logs: one line per event, on standard error, or with --syslog to the local syslog daemon from
//! start-up (in the foreground too). The level comes from `RUST_LOG` when set, else from --log-level.
//! Lines are text, or JSON objects with `--log-format json` for log shippers. When standard error is
//! the journal (systemd sets `JOURNAL_STREAM` to its device and inode), each line starts with its
//! syslog priority (`<4>`), which journald strips and keeps, so `journalctl -p warning` filters; the
//! journal stamps lines itself, so they carry no time of their own.
//!
//! Logging never takes the daemon down. A daemon may outlive its terminal (an ssh session that logged
//! out) or the pipe its standard error went to; writing there then fails (EIO, EPIPE). Such a line is
//! dropped and counted ([`dropped_lines`]), never reported by printing: printing to a dead standard
//! error panics. So the `Line` writer never returns an error to tracing-subscriber (which would print
//! it with `eprintln!`), and that printing is switched off as well.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The syslog socket, unless `SPIPED_SYSLOG_SOCKET` names another (for tests and unusual systems).
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// syslog's `daemon` facility.
const FACILITY_DAEMON: u8 = 3;

/// With --syslog, where lines go; unset, they go to standard error.
static SYSLOG: OnceLock<Syslog> = OnceLock::new();

/// Lines that could not be written, for status and metrics to show.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The local syslog daemon's socket.
struct Syslog {
    /// Connected to `path`.
    socket: UnixDatagram,
    /// Where the syslog daemon listens, to connect again after it restarts (as syslog(3) does): the
    /// old connection is then refused for good.
    path: PathBuf,
}

impl Syslog {
    /// Sends one message, connecting again once if the syslog daemon has gone away meanwhile.
    fn send(&self, message: &[u8]) -> io::Result<()> {
        self.socket.send(message).or_else(|_| {
            self.socket.connect(&self.path)?;
            self.socket.send(message)
        })?;
        Ok(())
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// --syslog was given and the syslog socket does not answer.
    #[error("cannot reach syslog at {}: {source}", path.display())]
    Syslog {
        /// The socket tried.
        path: PathBuf,
        /// Why connecting failed.
        source: io::Error,
    },
}

/// Installs the global subscriber: lines go to syslog with `syslog`, else to standard error.
///
/// # Errors
/// [`LoggingError::Syslog`] when `syslog` is set and the syslog socket cannot be reached.
pub fn init(level: &str, syslog: bool, format: Format) -> Result<(), LoggingError> {
    if syslog {
        let path =
            std::env::var_os("SPIPED_SYSLOG_SOCKET").map_or_else(|| SYSLOG_SOCKET.into(), PathBuf::from);
        match UnixDatagram::unbound().and_then(|s| s.connect(&path).map(|()| s)) {
            Ok(socket) => {
                let _ = SYSLOG.set(Syslog { socket, path });
            }
            Err(source) => return Err(LoggingError::Syslog { path, source }),
        }
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("spiped={level}")))
        .unwrap_or_else(|_| EnvFilter::new("spiped=info"));
    let journal = !syslog && stderr_is_journal();
    let _ = JOURNAL.set(journal);
    let timer = Timestamp { journal };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Destination)
        .with_target(false)
        .with_ansi(false)
        .with_timer(timer)
        .log_internal_errors(false);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `time LEVEL message key=value ...`, for people.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message` and the fields), for log shippers.
    Json,
}

/// Whether standard error is the journal: `JOURNAL_STREAM` (`device:inode`) names the very file
/// standard error is, as systemd documents for services whose output goes to the journal.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let Ok(stat) = nix::sys::stat::fstat(io::stderr().as_fd()) else { return false };
    dev.parse() == Ok(stat.st_dev) && ino.parse() == Ok(stat.st_ino)
}

/// Set once at start: standard error is the journal.
static JOURNAL: OnceLock<bool> = OnceLock::new();

/// The time at the start of a line, or none when the journal stamps lines itself.
struct Timestamp {
    /// Standard error is the journal.
    journal: bool,
}

impl tracing_subscriber::fmt::time::FormatTime for Timestamp {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        if self.journal { Ok(()) } else { tracing_subscriber::fmt::time::SystemTime.format_time(w) }
    }
}

/// How many log lines have been dropped because their destination refused them.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Chooses standard error or syslog per event.
struct Destination;

/// One event's line, collected and written whole when dropped: one write per line keeps lines from
/// different threads apart, and a failure is counted once per line. Writing to it never fails.
struct Line {
    /// Whether the line goes to syslog rather than standard error.
    to_syslog: bool,
    /// The line so far; for syslog, it starts with the priority and tag.
    buf: Vec<u8>,
}

impl Line {
    /// A line for standard error; under the journal it starts with its priority, as `<4>`.
    fn stderr(severity: u8) -> Line {
        let mut buf = Vec::with_capacity(128);
        if JOURNAL.get() == Some(&true) {
            buf.extend_from_slice(format!("<{severity}>").as_bytes());
        }
        Line { to_syslog: false, buf }
    }

    /// A syslog line: `<priority>spiped[pid]: ` then the text (RFC 3164 as the local daemon takes it).
    fn syslog(severity: u8) -> Line {
        let priority = FACILITY_DAEMON * 8 + severity;
        let header = format!("<{priority}>spiped[{}]: ", std::process::id());
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(header.as_bytes());
        Line { to_syslog: true, buf }
    }

    /// Writes the line to its destination.
    fn deliver(&self) -> io::Result<()> {
        if !self.to_syslog {
            return io::stderr().lock().write_all(&self.buf);
        }
        match SYSLOG.get() {
            Some(syslog) => syslog.send(self.buf.trim_ascii_end()),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for Destination {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        if SYSLOG.get().is_some() {
            Line::syslog(severity(&Level::INFO))
        } else {
            Line::stderr(severity(&Level::INFO))
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        if SYSLOG.get().is_some() {
            Line::syslog(severity(meta.level()))
        } else {
            Line::stderr(severity(meta.level()))
        }
    }
}

/// syslog's severity for a tracing level.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.deliver().is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syslog_line_carries_the_daemon_facility_the_severity_and_the_pid() {
        let mut line = Line::syslog(severity(&Level::WARN));
        line.write_all(b"handshake failed\n").unwrap();
        let expected = format!("<28>spiped[{}]: handshake failed\n", std::process::id());
        assert_eq!(String::from_utf8_lossy(&line.buf), expected);
    }

    #[test]
    fn levels_map_to_syslog_severities() {
        let got = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(|l| severity(&l));
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }
}
