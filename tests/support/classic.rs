//! Debian's spiped 1.6, the classic peer: `spiped` as a daemon and `spipe` as a one-shot client, run
//! by their absolute paths (never from PATH, where ours may be installed under the same name).
//!
//! spiped 1.6 has no readiness signal, and a probe connection is not free: its `-d` end connects to
//! its target as soon as it accepts (so a probe would count in Redis's `total_connections_received`),
//! and its `-e` end starts a handshake with the `-d` end behind it (which would log a failure there).
//! So readiness is read from the kernel's socket tables instead: the daemon is ready once a socket in
//! the LISTEN state holds the port given with `-s`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::eventually;

/// Debian's spiped 1.6 daemon.
const CLASSIC_SPIPED: &str = "/usr/bin/spiped";

/// Debian's spipe 1.6, the client that pipes standard input and output through one connection.
const CLASSIC_SPIPE: &str = "/usr/bin/spipe";

/// What `spiped -v` must print for the program at [`CLASSIC_SPIPED`] to be the classic peer.
const CLASSIC_VERSION: &str = "spiped 1.6";

/// How long spiped 1.6 may take to start listening.
const START_WITHIN: Duration = Duration::from_secs(20);

/// The kernel's tables of TCP sockets, IPv4 and IPv6.
const SOCKET_TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// The state column's value for a listening socket in [`SOCKET_TABLES`].
const TCP_LISTEN: &str = "0A";

/// A running Debian spiped 1.6 in the foreground (`-F`), killed when dropped. Its standard error, where
/// it logs in the foreground, goes to a file.
pub struct ClassicSpiped {
    /// The daemon process.
    child: Child,
    /// Where its standard output and error go.
    pub log: PathBuf,
}

impl ClassicSpiped {
    /// Starts `/usr/bin/spiped -F <args>`, logging to `dir/<name>.log`, and waits until it listens on
    /// the port of its `-s` argument.
    ///
    /// # Panics
    /// When the classic spiped is not installed (or the program there is not spiped 1.6), `args` has
    /// no `-s host:port`, it cannot be started, exits first (its log is printed), or does not listen
    /// within 20 seconds.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> ClassicSpiped {
        check_installed();
        let port = source_port(args);
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(CLASSIC_SPIPED);
        cmd.arg("-F").args(args).stdin(Stdio::null()).stdout(log_file.try_clone().unwrap()).stderr(log_file);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut spiped = ClassicSpiped { child, log };
        eventually(&format!("{name} (spiped 1.6) listens on port {port}"), START_WITHIN, || {
            if let Some(status) = spiped.child.try_wait().unwrap() {
                panic!("{name} (spiped 1.6) exited with {status}:\n{}", spiped.log_text());
            }
            match listening(port) {
                true => Ok(()),
                false => Err(format!("not yet; the log so far:\n{}", spiped.log_text())),
            }
        });
        spiped
    }

    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ClassicSpiped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a run of `spipe` ended.
pub struct SpipeRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to standard error.
    pub stderr: String,
}

/// Runs `/usr/bin/spipe -t target -k key <extra>` with `input` as standard input and `output` as
/// standard output, and waits for it to exit, up to `within` (then it is killed and the test fails).
///
/// # Panics
/// When spipe is not installed, cannot be started, or is still running after `within`.
pub fn run_spipe(
    target: &str,
    key: &Path,
    extra: &[&str],
    input: &Path,
    output: &Path,
    within: Duration,
) -> SpipeRun {
    check_installed();
    let mut cmd = Command::new(CLASSIC_SPIPE);
    cmd.args(["-t", target, "-k"])
        .arg(key)
        .args(extra)
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(std::fs::File::create(output).unwrap())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Killed on every way out of this function, the panic of a timeout included.
    let mut guard = KillOnDrop(child);
    let status = eventually("spipe exits", within, || match guard.0.try_wait().unwrap() {
        Some(status) => Ok(status),
        None => Err("still running"),
    });
    let mut stderr = String::new();
    if let Some(mut pipe) = guard.0.stderr.take() {
        use std::io::Read;
        // spipe has exited: its standard error is at its end.
        let _ = pipe.read_to_string(&mut stderr);
    }
    SpipeRun { status, stderr }
}

/// Writes `data` to a new file at `path`: spipe's standard input.
pub fn write_file(path: &Path, data: &[u8]) {
    std::fs::File::create(path).and_then(|mut f| f.write_all(data)).unwrap();
}

/// Whether a socket in the LISTEN state holds `port` on any local address, IPv4 or IPv6.
fn listening(port: u16) -> bool {
    let local_suffix = format!(":{port:04X}");
    SOCKET_TABLES.iter().filter_map(|table| std::fs::read_to_string(table).ok()).any(|table| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1).is_some_and(|local| local.ends_with(&local_suffix))
                && fields.get(3) == Some(&TCP_LISTEN)
        })
    })
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port of the `-s host:port` argument.
fn source_port(args: &[&str]) -> u16 {
    let source = args
        .windows(2)
        .find_map(|pair| (pair[0] == "-s").then_some(pair[1]))
        .unwrap_or_else(|| panic!("spiped 1.6 needs -s host:port: {args:?}"));
    source
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("-s {source}: the harness waits on a TCP port, not a unix socket"))
}

/// Checks once per test process that the classic programs are installed, and that the spiped there
/// is 1.6 rather than spiped-rs installed under the same name.
fn check_installed() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        if !Path::new(CLASSIC_SPIPE).exists() {
            return Err(format!("{CLASSIC_SPIPE} is missing"));
        }
        let out = Command::new(CLASSIC_SPIPED)
            .arg("-v")
            .output()
            .map_err(|e| format!("cannot run {CLASSIC_SPIPED}: {e}"))?;
        // spiped 1.6 prints its version on standard error.
        let version = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).trim().to_string();
        match version.starts_with(CLASSIC_VERSION) {
            true => Ok(()),
            false => Err(format!("{CLASSIC_SPIPED} -v says {version:?}, not {CLASSIC_VERSION}")),
        }
    });
    if let Err(why) = checked {
        panic!("Debian's spiped 1.6 is needed ({why}): run scripts/test-all, which installs it");
    }
}
