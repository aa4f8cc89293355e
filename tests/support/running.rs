//! The handle on a running `spiped`: its process, its log, its signals, its notifications.
//!
//! [`Spiped`] keeps exactly its two public fields, `child` and `log`, so that a test may still build one
//! around a process it spawned itself. What [`super::SpipedCmd`] knows beyond them (the name, the
//! daemon-mode process and pid file, the notify socket) lives in a table keyed by the child, entered
//! at start and removed on drop.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::eventually;
use super::notify::NotifySocket;

/// How long [`Spiped::wait_notified`] waits.
const NOTIFIED_WITHIN: Duration = Duration::from_secs(20);

/// A running spiped, killed when dropped. Its standard output and error go to a file for assertions.
pub struct Spiped {
    /// The process started: the daemon in the foreground; in daemon mode the parent that forked it,
    /// which has exited by the time [`super::SpipedCmd::start`] returns.
    pub child: Child,
    /// Where its standard output and error go.
    pub log: PathBuf,
}

/// What the harness knows about a [`Spiped`] it started, beyond its public fields.
pub(super) struct Started {
    /// The name it was started under, for failure messages.
    pub name: String,
    /// In daemon mode, the forked daemon, once found; `None` in the foreground.
    pub daemon: Option<Daemonized>,
    /// Where it reports readiness and status; dropped (its thread stopped) with the entry.
    pub notify: NotifySocket,
}

/// The process daemon mode forked, which is not our child.
#[derive(Clone)]
pub(super) struct Daemonized {
    /// Its pid, read from its pid file.
    pub pid: Pid,
    /// The pid file it wrote, which a clean exit removes.
    pub pid_file: PathBuf,
}

/// The table of started daemons, keyed by the child's pid and the log: a pid alone could be reused
/// by a later child once an earlier one has been reaped.
type Table = HashMap<(u32, PathBuf), Started>;

fn table() -> MutexGuard<'static, Table> {
    static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Mutex::default);
    // Nothing panics while holding the lock, but a drop after another test's panic must not fail.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Spiped {
    /// Starts `spiped -F <args>` and waits until it reports `READY=1`. `_wait_for` (the address it
    /// listens on) is not needed any more: READY=1 comes once it listens.
    pub fn start(dir: &Path, name: &str, args: &[&str], _wait_for: &str) -> Spiped {
        super::SpipedCmd::new(dir, name).args(args).start()
    }

    /// As [`Spiped::start`], writing `stdin` to its standard input first.
    pub fn start_with_stdin(
        dir: &Path,
        name: &str,
        args: &[&str],
        _wait_for: &str,
        stdin: Option<&[u8]>,
    ) -> Spiped {
        let cmd = super::SpipedCmd::new(dir, name).args(args);
        match stdin {
            Some(input) => cmd.stdin(input),
            None => cmd,
        }
        .start()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid (in daemon mode, the forked daemon's, from its pid file).
    pub fn pid(&self) -> i32 {
        self.daemon().map_or(self.child.id() as i32, |d| d.pid.as_raw())
    }

    /// Daemon mode's pid file; `None` in the foreground.
    pub fn pid_file(&self) -> Option<PathBuf> {
        self.daemon().map(|d| d.pid_file)
    }

    /// Sends a signal: a [`Signal`] or its number.
    ///
    /// # Panics
    /// When the number is no signal, or the daemon cannot be signalled (it is gone).
    pub fn signal<S>(&self, signal: S)
    where
        S: TryInto<Signal>,
        S::Error: Debug,
    {
        let signal = signal.try_into().expect("a signal number");
        kill(Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {}: {e}", self.name()));
    }

    /// Waits for the daemon to exit, up to `within`, and returns how it ended. Foreground only: a
    /// daemon-mode process's exit status goes to its new parent, not to us ([`Spiped::wait_gone`]).
    ///
    /// # Panics
    /// In daemon mode, or when it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        assert!(self.daemon().is_none(), "a daemon-mode process's exit status is not ours: use wait_gone");
        let what = format!("{} exits", self.name());
        eventually(&what, within, || match self.child.try_wait().unwrap() {
            Some(status) => Ok(status),
            None => Err(format!("still running; the log so far:\n{}", self.log_text())),
        })
    }

    /// Waits for the daemon to be gone, in either mode, up to `within`.
    ///
    /// # Panics
    /// When it is still running after `within`.
    pub fn wait_gone(&mut self, within: Duration) {
        let what = format!("{} exits", self.name());
        eventually(&what, within, || match self.is_running() {
            false => Ok(()),
            true => Err(format!("still running; the log so far:\n{}", self.log_text())),
        });
    }

    pub fn is_running(&mut self) -> bool {
        match self.daemon() {
            None => self.child.try_wait().unwrap().is_none(),
            Some(daemon) => is_alive(daemon.pid),
        }
    }

    /// Every line the daemon has sent to its `NOTIFY_SOCKET` so far.
    ///
    /// # Panics
    /// When it was not started by [`super::SpipedCmd`], which binds that socket.
    pub fn notifications(&self) -> Vec<String> {
        self.with_started(|started| started.notify.received())
    }

    /// Waits until the daemon has sent a notification line starting with `prefix` (`STOPPING=1`).
    ///
    /// # Panics
    /// When none came within 20 seconds, or it was not started by [`super::SpipedCmd`].
    pub fn wait_notified(&self, prefix: &str) {
        let what = format!("{} notifies {prefix:?}", self.name());
        eventually(&what, NOTIFIED_WITHIN, || {
            let lines = self.notifications();
            match lines.iter().any(|line| line.starts_with(prefix)) {
                true => Ok(()),
                false => Err(format!("notifications so far: {lines:?}")),
            }
        });
    }

    /// The name it was started under, or its log's file name.
    pub(super) fn name(&self) -> String {
        table().get(&self.key()).map_or_else(|| self.log.display().to_string(), |s| s.name.clone())
    }

    /// Daemon mode's forked process, once found.
    pub(super) fn daemon(&self) -> Option<Daemonized> {
        table().get(&self.key()).and_then(|s| s.daemon.clone())
    }

    /// Enters what the harness knows about this daemon in the table.
    pub(super) fn register(&self, started: Started) {
        table().insert(self.key(), started);
    }

    /// Runs `f` on the table entry.
    ///
    /// # Panics
    /// When there is none: this Spiped was built by hand, not started by [`super::SpipedCmd`].
    pub(super) fn with_started<T>(&self, f: impl FnOnce(&mut Started) -> T) -> T {
        let mut table = table();
        let started = table.get_mut(&self.key()).unwrap_or_else(|| {
            panic!(
                "{} was not started by SpipedCmd, so the harness has no notify socket for it",
                self.log.display()
            )
        });
        f(started)
    }

    fn key(&self) -> (u32, PathBuf) {
        (self.child.id(), self.log.clone())
    }
}

impl Drop for Spiped {
    fn drop(&mut self) {
        let started = table().remove(&self.key());
        if let Some(daemon) = started.as_ref().and_then(|s| s.daemon.as_ref())
            && is_alive(daemon.pid)
        {
            let _ = kill(daemon.pid, Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Only now that the daemon is gone: its notify socket is drained until the end.
        drop(started);
    }
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for its parent to reap it).
fn is_alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, the state follows the last ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}
