//! Starting the built `spiped` the ways users do.
//!
//! [`SpipedCmd`] builds the command line: foreground (`-F`) or daemon mode with its pid file, a key on
//! standard input (`-k -`), a wrapper program (`prlimit`, `ip netns exec`), extra environment. Its
//! [`SpipedCmd::start`] waits for the daemon's own readiness signal, `READY=1` on the `NOTIFY_SOCKET`
//! the harness binds for it: no log text, no probe connection.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::unistd::Pid;

use super::notify::NotifySocket;
use super::running::{Daemonized, Started};
use super::{Spiped, eventually, spiped_bin};

/// How long start-up (daemonizing included) may take before the test fails.
const START_WITHIN: Duration = Duration::from_secs(20);

/// The log level the harness asks for unless told otherwise: failures then show the whole story.
const DEFAULT_LOG_LEVEL: &str = "debug";

/// A `spiped` command line to start, built step by step:
/// `SpipedCmd::new(dir, "d").args([...]).start()`.
pub struct SpipedCmd {
    /// The test's scratch directory: the log file and the notify socket go there.
    dir: PathBuf,
    /// Names the log file (`<name>.log`) and the notify socket, and the daemon in failure messages.
    name: String,
    /// spiped's arguments, given by the test.
    args: Vec<OsString>,
    /// Written to standard input, which is then closed (for `-k -`); `None` gives it /dev/null.
    stdin: Option<Vec<u8>>,
    /// A program and its arguments that run spiped (`prlimit --nofile=40:40`); it must exec spiped,
    /// so that the process started is the daemon.
    wrapper: Vec<OsString>,
    /// Environment added to the test's own.
    env: Vec<(OsString, OsString)>,
    /// The spiped binary: the one under test unless [`SpipedCmd::program`] says otherwise (an older
    /// release, for compatibility tests).
    program: PathBuf,
    /// Foreground, or daemon mode and where its pid file is.
    mode: Mode,
    /// The `--log-level` passed, or `None` for spiped's default.
    log_level: Option<String>,
    /// Whether [`SpipedCmd::start`] waits for `READY=1`.
    wait_ready: bool,
}

/// How the daemon runs.
enum Mode {
    /// `-F`: the process started is the daemon.
    Foreground,
    /// Without `-F`: the process started forks the daemon, and exits 0 once it serves.
    Daemon {
        /// Where the daemon writes its pid, which is how the harness finds it.
        pid_file: PathBuf,
        /// Whether the harness passes `-p pid_file`; if not, spiped's default or the test's own `-p`
        /// must put it there.
        pass: bool,
    },
}

impl SpipedCmd {
    /// A foreground daemon named `name` (its log is `dir/<name>.log`), at log level debug.
    pub fn new(dir: &Path, name: &str) -> SpipedCmd {
        SpipedCmd {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            args: Vec::new(),
            stdin: None,
            wrapper: Vec::new(),
            env: Vec::new(),
            program: PathBuf::from(spiped_bin()),
            mode: Mode::Foreground,
            log_level: Some(DEFAULT_LOG_LEVEL.to_string()),
            wait_ready: true,
        }
    }

    /// Adds spiped arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> SpipedCmd {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Writes `input` to standard input, then closes it: the key for `-k -`.
    pub fn stdin(mut self, input: &[u8]) -> SpipedCmd {
        self.stdin = Some(input.to_vec());
        self
    }

    /// Runs spiped through `program args...`, which must exec it (prlimit, `ip netns exec`).
    pub fn wrapper<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, command: I) -> SpipedCmd {
        self.wrapper = command.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        self
    }

    /// Runs `program` in place of the binary under test.
    pub fn program(mut self, program: &Path) -> SpipedCmd {
        self.program = program.to_path_buf();
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> SpipedCmd {
        self.env.push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Daemon mode (no `-F`) with `-p dir/<name>.pid`.
    pub fn daemon(mut self) -> SpipedCmd {
        let pid_file = self.dir.join(format!("{}.pid", self.name));
        self.mode = Mode::Daemon { pid_file, pass: true };
        self
    }

    /// Daemon mode without `-p` from the harness: the pid file is expected at `pid_file`, where
    /// spiped's default or the test's own `-p` puts it.
    pub fn daemon_with_pid_file_at(mut self, pid_file: &Path) -> SpipedCmd {
        self.mode = Mode::Daemon { pid_file: pid_file.to_path_buf(), pass: false };
        self
    }

    /// Passes `--log-level level`, or no `--log-level` at all with `None`.
    pub fn log_level(mut self, level: Option<&str>) -> SpipedCmd {
        self.log_level = level.map(str::to_string);
        self
    }

    /// Returns as soon as the process runs (foreground) or the parent has exited (daemon mode),
    /// without waiting for `READY=1`: for tests of what start-up itself promises.
    pub fn skip_ready(mut self) -> SpipedCmd {
        self.wait_ready = false;
        self
    }

    /// Starts the daemon and, unless [`SpipedCmd::skip_ready`], waits until it reports `READY=1`.
    ///
    /// # Panics
    /// When it cannot be started, exits before it is ready (the log is printed), does not become ready
    /// in time, or in daemon mode when the parent does not exit 0 or leaves no pid file.
    pub fn start(self) -> Spiped {
        let log = self.dir.join(format!("{}.log", self.name));
        let notify = NotifySocket::bind(&self.dir, &self.name);
        let mut cmd = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut cmd = Command::new(program);
                cmd.args(wrapper_args).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        if let Mode::Foreground = self.mode {
            cmd.arg("-F");
        }
        cmd.args(&self.args);
        if let Mode::Daemon { pid_file, pass: true } = &self.mode {
            cmd.arg("-p").arg(pid_file);
        }
        if let Some(level) = &self.log_level {
            cmd.args(["--log-level", level]);
        }
        let log_file = std::fs::File::create(&log).unwrap();
        cmd.env("NOTIFY_SOCKET", notify.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        if let Some(input) = &self.stdin {
            // Fails only if spiped has already exited, which the wait below reports with its log.
            let _ = child.stdin.take().expect("standard input is piped").write_all(input);
        }
        let mut spiped = Spiped { child, log };
        spiped.register(Started { name: self.name, daemon: None, notify });
        if let Mode::Daemon { pid_file, .. } = self.mode {
            find_daemon(&mut spiped, pid_file);
        }
        if self.wait_ready {
            wait_ready(&mut spiped);
        }
        spiped
    }
}

/// Daemon mode: waits for the parent to exit 0, then takes the daemon's pid from `pid_file`.
fn find_daemon(spiped: &mut Spiped, pid_file: PathBuf) {
    let name = spiped.name();
    let status =
        eventually(&format!("{name} daemonizes"), START_WITHIN, || match spiped.child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(format!("the parent has not returned; the log so far:\n{}", spiped.log_text())),
        });
    assert!(status.success(), "{name} exited with {status} instead of daemonizing:\n{}", spiped.log_text());
    let text = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| {
        panic!("{name} daemonized but left no pid file {}: {e}\n{}", pid_file.display(), spiped.log_text())
    });
    let pid =
        text.trim().parse().unwrap_or_else(|e| panic!("pid file {}: {text:?}: {e}", pid_file.display()));
    spiped.with_started(|started| started.daemon = Some(Daemonized { pid: Pid::from_raw(pid), pid_file }));
}

/// Waits for `READY=1`, failing at once (with the log) if the daemon exits first.
fn wait_ready(spiped: &mut Spiped) {
    let name = spiped.name();
    eventually(&format!("{name} reports READY=1"), START_WITHIN, || {
        let lines = spiped.notifications();
        if lines.iter().any(|line| line == "READY=1") {
            return Ok(());
        }
        if !spiped.is_running() {
            let how = match (spiped.daemon(), spiped.child.try_wait().unwrap()) {
                (None, Some(status)) => format!("exited with {status}"),
                _ => "is gone".to_string(),
            };
            panic!("{name} {how} before READY=1:\n{}", spiped.log_text());
        }
        Err(format!("notifications so far: {lines:?}; the log so far:\n{}", spiped.log_text()))
    });
}

/// Runs the binary to completion with `args` and optional standard input.
pub fn run_spiped(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(spiped_bin())
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}
