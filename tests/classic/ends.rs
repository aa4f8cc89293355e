//! The two ends of a pipe, each run by either implementation: the built `spiped` (ours) or Debian's
//! spiped 1.6 (`/usr/bin/spiped`). A scenario is written once against a [`Pair`] and run for each
//! [`Matrix`] row, so the Debian-to-Debian row proves the scenario's harness with nothing of ours in
//! the path.

use std::path::Path;
use std::time::Duration;

use crate::support::classic::ClassicSpiped;
use crate::support::{Spiped, SpipedCmd, eventually, free_port, key_file, plain_addr};

/// What our `-e` end needs to speak to a classic `-d` end.
pub const CLASSIC: [&str; 2] = ["--protocol", "classic"];

/// How long a log line the test waits for may take to appear.
const LOGGED_WITHIN: Duration = Duration::from_secs(20);

/// Which implementation runs an end, and its flags beyond `-e`/`-d`, `-s`, `-t` and `-k`.
#[derive(Clone)]
pub struct EndSpec {
    /// The implementation.
    who: Who,
    /// The extra flags (`-f`, `-g`, `-o 30`, `--protocol classic`).
    extra: Vec<String>,
}

/// The two implementations.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The built `spiped`.
    Ours,
    /// Debian's spiped 1.6.
    Debian,
}

/// The rows of the interop matrix: who runs the `-e` end and who runs the `-d` end.
#[derive(Clone, Copy, Debug)]
pub enum Matrix {
    /// Both ends spiped 1.6: the baseline that proves the harness, passing with nothing of ours.
    DebianPair,
    /// Our `-e --protocol classic` to spiped 1.6's `-d`.
    OursToDebian,
    /// spiped 1.6's `-e` to our `-d` on its default (both protocols).
    DebianToOurs,
}

impl Matrix {
    /// The row's two ends, with `e_extra` and `d_extra` added to their flags.
    pub fn ends(self, e_extra: &[&str], d_extra: &[&str]) -> (EndSpec, EndSpec) {
        match self {
            Matrix::DebianPair => (EndSpec::debian(e_extra), EndSpec::debian(d_extra)),
            Matrix::OursToDebian => {
                (EndSpec::ours(&[&CLASSIC[..], e_extra].concat()), EndSpec::debian(d_extra))
            }
            Matrix::DebianToOurs => (EndSpec::debian(e_extra), EndSpec::ours(d_extra)),
        }
    }
}

impl EndSpec {
    /// Our built `spiped` with `extra` flags.
    pub fn ours(extra: &[&str]) -> EndSpec {
        EndSpec { who: Who::Ours, extra: extra.iter().map(|s| s.to_string()).collect() }
    }

    /// Debian's spiped 1.6 with `extra` flags.
    pub fn debian(extra: &[&str]) -> EndSpec {
        EndSpec { who: Who::Debian, extra: extra.iter().map(|s| s.to_string()).collect() }
    }

    /// Starts this end as `mode` (`-e` or `-d`) from `source` to `target` with `key`, logging to
    /// `dir/<name>.log`, and returns once it serves.
    pub fn start(&self, dir: &Path, name: &str, mode: &str, source: &str, target: &str, key: &Path) -> End {
        let key = key.to_str().expect("scratch paths are UTF-8");
        let mut args = vec![mode, "-s", source, "-t", target, "-k", key];
        args.extend(self.extra.iter().map(String::as_str));
        match self.who {
            Who::Ours => End::Ours(SpipedCmd::new(dir, name).args(&args).start()),
            Who::Debian => End::Debian(ClassicSpiped::start(dir, name, &args)),
        }
    }
}

/// A running end of either implementation, stopped when dropped.
pub enum End {
    /// The built `spiped`.
    Ours(Spiped),
    /// Debian's spiped 1.6.
    Debian(ClassicSpiped),
}

impl End {
    /// Everything it has logged so far.
    pub fn log_text(&self) -> String {
        match self {
            End::Ours(spiped) => spiped.log_text(),
            End::Debian(classic) => classic.log_text(),
        }
    }

    /// Waits until one line of its log holds every one of `needles`, and returns that line.
    ///
    /// # Panics
    /// When no such line appears within 20 seconds: the message shows the whole log.
    pub fn wait_for_line(&self, needles: &[&str]) -> String {
        self.wait_for_line_within(needles, LOGGED_WITHIN)
    }

    /// [`End::wait_for_line`] with a bound of the caller's choosing.
    pub fn wait_for_line_within(&self, needles: &[&str], within: Duration) -> String {
        eventually(&format!("a log line with all of {needles:?}"), within, || {
            let log = self.log_text();
            match log.lines().find(|line| needles.iter().all(|n| line.contains(n))) {
                Some(line) => Ok(line.to_string()),
                None => Err(format!("the log so far:\n{log}")),
            }
        })
    }
}

/// An `-e` end in front of a `-d` end in front of a target, on loopback: clients connect to `e_addr`.
pub struct Pair {
    /// The encrypting end, which clients connect to. Declared first, so dropped first.
    pub e: End,
    /// The decrypting end, in front of the target.
    pub d: End,
    /// The `-e` end's source as `host:port` for std's connect.
    pub e_addr: String,
}

impl Pair {
    /// Starts the `-d` end, then the `-e` end, in front of `target`, both with a fresh key.
    pub fn start(dir: &Path, (e, d): (EndSpec, EndSpec), target: &str) -> Pair {
        let key = key_file(dir, "pair.key");
        Self::start_with_keys(dir, (e, &key), (d, &key), target)
    }

    /// Starts the `-d` end, then the `-e` end, each with its own key file.
    pub fn start_with_keys(
        dir: &Path,
        (e, e_key): (EndSpec, &Path),
        (d, d_key): (EndSpec, &Path),
        target: &str,
    ) -> Pair {
        let d_source = format!("[127.0.0.1]:{}", free_port());
        let e_source = format!("[127.0.0.1]:{}", free_port());
        let d = d.start(dir, "d", "-d", &d_source, target, d_key);
        let e = e.start(dir, "e", "-e", &e_source, &d_source, e_key);
        Pair { e, d, e_addr: plain_addr(&e_source) }
    }

    /// The `-e` end's port, for clients that take it alone (redis-cli, redis-benchmark).
    pub fn e_port(&self) -> String {
        self.e_addr.rsplit_once(':').expect("host:port").1.to_string()
    }

    /// Both logs, for failure messages.
    pub fn logs(&self) -> String {
        format!("-e end's log:\n{}\n-d end's log:\n{}", self.e.log_text(), self.d.log_text())
    }
}
