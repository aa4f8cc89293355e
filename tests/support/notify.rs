//! The `NOTIFY_SOCKET` a started daemon reports to, as systemd's would be: a unix datagram socket in
//! the test's scratch directory, read on a thread of its own for as long as the daemon runs.
//!
//! The daemon sends `READY=1` once it serves, then a `STATUS=` line whenever its counters change (at
//! most once a second) and `STOPPING=1` when it drains. Its sender (sd-notify) uses a blocking socket:
//! were the receiving queue (`net.unix.max_dgram_qlen`, 10 by default) left full, the daemon's next
//! notification would block the thread sending it. So the socket is drained continuously, never left
//! to fill.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Longest socket path `sockaddr_un` holds, without its terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// A bound notify socket and the thread that drains it. Dropping it stops the thread and removes the
/// socket file.
pub struct NotifySocket {
    /// The socket's path, for `NOTIFY_SOCKET`.
    path: PathBuf,
    /// A handle on the socket, kept to shut its reading side down, which wakes the draining thread.
    socket: UnixDatagram,
    /// Every line received so far, in order (a datagram holds one or more lines, one state each).
    received: Arc<Mutex<Vec<String>>>,
    /// The draining thread, joined on drop.
    reader: Option<JoinHandle<()>>,
}

impl NotifySocket {
    /// Binds a socket named after `name` in `dir` (or in the temporary directory if that path is too
    /// long for a unix socket) and starts draining it.
    ///
    /// # Panics
    /// When the socket cannot be bound: the test cannot run without it.
    pub fn bind(dir: &Path, name: &str) -> NotifySocket {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut path = dir.join(format!("{name}.{n}.notify"));
        if path.as_os_str().len() > SUN_PATH_MAX {
            path = std::env::temp_dir().join(format!("spiped-notify-{}-{n}", std::process::id()));
        }
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("cannot bind the notify socket {}: {e}", path.display()));
        // A daemon that drops privileges (-u) notifies after it has: let any user send.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let socket = socket.try_clone().expect("a bound socket can be duplicated");
            let received = received.clone();
            std::thread::spawn(move || drain(&socket, &received))
        };
        NotifySocket { path, socket, received, reader: Some(reader) }
    }

    /// The path to give the daemon in `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line received so far (`READY=1`, `STATUS=...`).
    pub fn received(&self) -> Vec<String> {
        self.received.lock().expect("the draining thread does not panic").clone()
    }

    /// Whether a line starting with `prefix` has come (`READY=1`, `STOPPING=1`, `STATUS=`).
    pub fn saw(&self, prefix: &str) -> bool {
        self.received().iter().any(|line| line.starts_with(prefix))
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        // Wakes the blocked recv with an end of stream; the thread then returns.
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Receives until the socket is shut down (a read of zero bytes: sd-notify never sends an empty
/// datagram) or fails.
fn drain(socket: &UnixDatagram, received: &Mutex<Vec<String>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = socket.recv(&mut buf) {
        let datagram = String::from_utf8_lossy(&buf[..n]);
        let mut received = received.lock().expect("nothing panics while holding the lock");
        received.extend(datagram.lines().map(str::to_string));
    }
}
