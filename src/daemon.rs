//! Becoming a daemon the way spiped does: fork after binding so the parent can report success only
//! once the child is serving; a pid file locked for the daemon's life; the unix socket file it bound,
//! removed at exit only while still its own; and dropping privileges.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{ForkResult, Gid, Group, Uid, User};

use crate::cli::UserGroup;

/// How often [`PidFile::lock`] tries again when the file it locked was replaced meanwhile.
const LOCK_ATTEMPTS: usize = 3;

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
    /// The pid file could not be opened, locked or written.
    #[error("cannot write pid file {}: {source}", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another spiped holds the pid file: it is running, and the file is its own.
    #[error("pid file {} is held by a running spiped ({holder})", path.display())]
    PidFileHeld {
        /// The pid file.
        path: PathBuf,
        /// Who holds it, as far as the file says: `pid N`.
        holder: String,
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
    pid_file: PidFile,
    /// Whether log lines go to standard error, which then stays; otherwise it becomes /dev/null once
    /// serving (start-up errors still reach whoever started us).
    keep_stderr: bool,
}

impl Daemon {
    /// Tells the parent the daemon is serving; the parent then exits 0. From here on nothing is
    /// printed but log lines, so standard error becomes /dev/null unless they go there. The pid file
    /// stays until the returned value is dropped.
    pub fn ready(self) -> PidFile {
        // Standard error is settled before the parent hears of it, so that whoever started us finds the
        // daemon as it will stay.
        if !self.keep_stderr {
            // Without /dev/null (a broken system) standard error stays; log lines do not go there.
            if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stderr(&null);
            }
        }
        let mut pipe = File::from(self.ready);
        // If the parent is gone there is nobody to tell.
        let _ = pipe.write_all(b"R");
        self.pid_file
    }
}

/// The pid file, locked (`flock`) for as long as the daemon runs, so that a second instance given the
/// same -p stops instead of overwriting it or removing it. Removed when dropped, if the path still
/// names the file locked.
#[derive(Debug)]
pub struct PidFile {
    /// Where it is, to remove at exit.
    path: PathBuf,
    /// The open file and its lock. The lock belongs to the open file description, so it passes to the
    /// daemon at the fork (the parent exits without unlocking) and ends when the daemon's descriptor
    /// closes, even if it is killed. `None` only while being dropped.
    file: Option<Flock<File>>,
}

impl PidFile {
    /// Opens `path` (created if missing, never truncated before the lock is ours) and locks it
    /// without waiting. A file nobody holds is stale, whatever pid it names, and is taken over.
    ///
    /// # Errors
    /// [`DaemonError::PidFileHeld`] when a running spiped holds it; [`DaemonError::PidFile`] when it
    /// cannot be opened or locked.
    pub fn lock(path: &Path) -> Result<PidFile, DaemonError> {
        let failed = |source| DaemonError::PidFile { path: path.to_path_buf(), source };
        for _ in 0..LOCK_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map_err(failed)?;
            let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((file, Errno::EWOULDBLOCK)) => {
                    return Err(DaemonError::PidFileHeld { path: path.to_path_buf(), holder: holder(file) });
                }
                Err((_, errno)) => return Err(failed(errno.into())),
            };
            // A holder that was exiting may have removed the file between our open and our lock, and
            // a new instance created another there: a lock is only worth anything on the file the
            // path names.
            if same_file(&locked, path) {
                locked.set_len(0).map_err(failed)?;
                return Ok(PidFile { path: path.to_path_buf(), file: Some(locked) });
            }
            release(locked);
        }
        Err(failed(io::Error::other("it was replaced each time it was locked")))
    }

    /// Writes this process's pid, replacing what the file held.
    fn write_pid(&self) -> io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        file.set_len(0)?;
        file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let Some(locked) = self.file.take() else { return };
        // Removed while still locked, and only if nobody replaced it: never another daemon's file.
        if same_file(&locked, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        release(locked);
    }
}

/// Unlocks without the panic `Flock`'s own drop has when unlocking fails (it cannot for a lock we
/// hold on an open file; if it ever did, closing the descriptor at exit releases the lock).
fn release(locked: Flock<File>) {
    if let Err((still_locked, _)) = locked.unlock() {
        std::mem::forget(still_locked);
    }
}

/// Whether `path` names the same file as `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Who holds a pid file, from what it says, for the error message.
fn holder(mut file: File) -> String {
    let mut text = String::new();
    match file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok()) {
        Some(pid) => format!("pid {pid}"),
        None => String::from("starting; its pid is not written yet"),
    }
}

/// The unix socket file this process bound, as it was right after bind: dropped at exit (or when
/// start-up fails), it is removed only if the path still names it, never a socket that a newer
/// daemon bound at the same path after ours was removed.
#[derive(Debug)]
pub struct SocketFile {
    /// Where it was bound.
    path: PathBuf,
    /// Its device and inode right after bind.
    id: (u64, u64),
}

impl SocketFile {
    /// Records the socket file just bound at `path`.
    ///
    /// # Errors
    /// When it cannot be examined.
    pub fn record(path: &Path) -> io::Result<SocketFile> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketFile { path: path.to_path_buf(), id: (meta.dev(), meta.ino()) })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let still_ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if still_ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Forks. The parent waits until the child calls [`Daemon::ready`] and exits 0, or exits 1 if the
/// child exits first (the child has printed why). The child starts a new session, takes /dev/null as
/// standard input and output, writes its pid to `pid_file` (locked before the fork, so the lock passes
/// to the child) and returns. Standard error stays until [`Daemon::ready`], and after it with
/// `keep_stderr`. Must be called before any thread is started.
///
/// # Errors
/// [`DaemonError`] if forking or writing the pid file fails.
pub fn daemonize(pid_file: PidFile, keep_stderr: bool) -> Result<Daemon, DaemonError> {
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
            // Exits without dropping `pid_file`: its lock and the file are the child's now.
            std::process::exit(if ready { 0 } else { 1 });
        }
        ForkResult::Child => {
            drop(read_end);
            nix::unistd::setsid().map_err(sys("setsid"))?;
            // Without /dev/null (a broken system) they stay; nothing is read or printed there.
            if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
            }
            pid_file
                .write_pid()
                .map_err(|source| DaemonError::PidFile { path: pid_file.path.clone(), source })?;
            Ok(Daemon { ready: write_end, pid_file, keep_stderr })
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
