//! Becoming a daemon the way spiped does: fork after binding so the parent can report success only
//! once the child is serving, a pid file, and dropping privileges.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, Gid, Group, Uid, User};

use crate::cli::UserGroup;

/// Why daemonizing or dropping privileges failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        source: nix::Error,
    },
    /// The pid file could not be written.
    #[error("cannot write pid file {path}: {source}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A -u user or group does not exist.
    #[error("no such {0}")]
    NoSuch(String),
}

fn sys(what: &str) -> impl FnOnce(nix::Error) -> DaemonError + '_ {
    move |source| DaemonError::Sys { what: what.to_string(), source }
}

/// The child's side of a daemonization: it tells the waiting parent when it is serving.
#[derive(Debug)]
pub struct Daemon {
    /// Write end of the pipe the parent waits on; closing it without a byte means failure.
    ready: OwnedFd,
    /// Removed on exit; if start-up fails before [`Daemon::ready`], at once.
    pid_file: PidFileGuard,
}

impl Daemon {
    /// Tells the parent the daemon is serving; the parent then exits 0. The pid file stays until
    /// the returned guard is dropped.
    pub fn ready(self) -> PidFileGuard {
        let mut pipe = File::from(self.ready);
        // If the parent is gone there is nobody to tell.
        let _ = pipe.write_all(b"R");
        self.pid_file
    }
}

/// Removes the pid file when dropped (on a clean exit).
#[derive(Debug)]
pub struct PidFileGuard(PathBuf);

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Forks. The parent waits until the child calls [`Daemon::ready`] and exits 0, or exits 1 if the
/// child exits first (the child has printed why). The child starts a new session, takes /dev/null as
/// standard input, writes `pid_file` and returns. Must be called before any thread is started.
///
/// # Errors
/// [`DaemonError`] if forking or writing the pid file fails.
pub fn daemonize(pid_file: &Path) -> Result<Daemon, DaemonError> {
    let (read_end, write_end) = nix::unistd::pipe().map_err(sys("pipe"))?;
    // SAFETY: the process is single-threaded here (the runtime starts after this returns; main
    // calls this before spawning anything), so the child may run arbitrary code after fork.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() }.map_err(sys("fork"))?;
    match forked {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let ready = File::from(read_end).read(&mut byte).is_ok_and(|n| n == 1);
            std::process::exit(if ready { 0 } else { 1 });
        }
        ForkResult::Child => {
            drop(read_end);
            nix::unistd::setsid().map_err(sys("setsid"))?;
            if let Ok(null) = File::open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(null);
            }
            std::fs::write(pid_file, format!("{}\n", std::process::id()))
                .map_err(|source| DaemonError::PidFile { path: pid_file.to_path_buf(), source })?;
            Ok(Daemon { ready: write_end, pid_file: PidFileGuard(pid_file.to_path_buf()) })
        }
    }
}

/// Becomes `who` (-u): supplementary groups, then the group, then the user.
///
/// # Errors
/// [`DaemonError`] when a name is unknown or a call is refused.
pub fn drop_privileges(who: &UserGroup) -> Result<(), DaemonError> {
    let user = who.user.as_deref().map(find_user).transpose()?;
    let gid = match (&who.group, &user) {
        (Some(group), _) => Some(find_group(group)?),
        (None, Some(user)) => Some(user.gid),
        (None, None) => None,
    };
    if let Some(gid) = gid {
        nix::unistd::setgroups(&[gid]).map_err(sys("setgroups"))?;
        nix::unistd::setgid(gid).map_err(sys("setgid"))?;
    }
    if let Some(user) = user {
        nix::unistd::setuid(user.uid).map_err(sys("setuid"))?;
    }
    Ok(())
}

fn find_user(name: &str) -> Result<User, DaemonError> {
    let found = match name.parse::<u32>() {
        Ok(id) => User::from_uid(Uid::from_raw(id)),
        Err(_) => User::from_name(name),
    };
    found.map_err(sys("looking up the user"))?.ok_or_else(|| DaemonError::NoSuch(format!("user {name}")))
}

fn find_group(name: &str) -> Result<Gid, DaemonError> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    let group = Group::from_name(name).map_err(sys("looking up the group"))?;
    Ok(group.ok_or_else(|| DaemonError::NoSuch(format!("group {name}")))?.gid)
}
