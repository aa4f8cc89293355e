//! systemd integration, all of it a no-op when systemd did not start us: readiness (`READY=1`),
//! a `STATUS=` line with live connections, totals and the keys in force, `RELOADING=1` and `READY=1`
//! around a reload, `STOPPING=1` while draining, watchdog pings, and socket activation (`LISTEN_FDS`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::stats::Reload;
use crate::tunnel::{Mode, StdListener, Tunnel};

/// Shortest time between two `STATUS=` updates.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Takes the listening socket systemd passed (socket activation), if any.
///
/// # Errors
/// When systemd passed more than one socket, or one that is neither a TCP nor a unix stream listener.
pub fn take_listener() -> io::Result<Option<StdListener>> {
    let mut fds = sd_notify::listen_fds()?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        return Err(io::Error::other(
            "systemd passed more than one socket; give the .socket unit one Listen line",
        ));
    }
    // SAFETY: LISTEN_PID names this process, so systemd passed `fd` to us and nothing else in the
    // process owns it; it is taken exactly once, here.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = socket2::Socket::from(owned);
    let local = socket.local_addr()?;
    if socket.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::other("the socket systemd passed is not a stream socket"));
    }
    if local.as_socket().is_some() {
        Ok(Some(StdListener::Tcp(std::net::TcpListener::from(OwnedFd::from(socket)))))
    } else if local.is_unix() {
        Ok(Some(StdListener::Unix(std::os::unix::net::UnixListener::from(OwnedFd::from(socket)))))
    } else {
        Err(io::Error::other("the socket systemd passed is neither TCP nor unix"))
    }
}

/// Tells systemd the daemon is serving.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a reload has begun (`RELOADING=1`, with the monotonic clock's time, which systemd
/// 253's `Type=notify-reload` requires and older ones ignore).
pub async fn reloading() {
    let _ = off_runtime(|| {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        notify(&states);
    })
    .await;
}

/// Tells systemd the reload is over, whether it took or not (the old keys then serve on), with the
/// status line.
pub async fn reloaded(status: &str) {
    let status = status.to_string();
    let _ = off_runtime(move || notify(&[NotifyState::Ready, NotifyState::Status(&status)])).await;
}

/// Tells systemd the daemon is draining. Sent from the runtime's blocking pool, like every notification
/// after start-up: sd-notify blocks on a full notify socket.
pub fn stopping(live: u64) {
    let status = format!("draining: {live} live connections");
    drop(off_runtime(move || notify(&[NotifyState::Stopping, NotifyState::Status(&status)])));
}

/// Keeps `STATUS=` current (at most once a second, only when it changes) and pings the watchdog when
/// `WatchdogSec=` is set. Runs until dropped; returns at once without systemd.
pub async fn keep_informed(tunnel: Arc<Tunnel>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL));
    let mut ticks = tokio::time::interval(period);
    let mut last = String::new();
    loop {
        ticks.tick().await;
        let status = status_line(&tunnel);
        let changed = (status != last).then(|| status.clone());
        let ping = watchdog.is_some();
        // One send at a time: a stalled socket delays the next update, never a worker.
        let _ = off_runtime(move || {
            if let Some(status) = changed {
                notify(&[NotifyState::Status(&status)]);
            }
            if ping {
                notify(&[NotifyState::Watchdog]);
            }
        })
        .await;
        last = status;
    }
}

/// The `STATUS=` text: what an operator wants from `systemctl status`, the fingerprints of the keys in
/// force included (during a rotation: has the reload taken?), and after a reload its count and outcome.
pub fn status_line(tunnel: &Tunnel) -> String {
    let s = tunnel.snapshot();
    let mut line = format!(
        "{} live connections, {} since start, {} failed; key{} ",
        s.active,
        s.total,
        s.failed_total(),
        if s.keys.len() == 1 { "" } else { "s" },
    );
    // A -d end says how many connections each key has authenticated since it was loaded: after a
    // rotation, whether anyone is still on the old key. (An -e end has one key, and says no more.)
    let counted = tunnel.settings.mode == Mode::Decrypt;
    let names: Vec<String> = s
        .keys
        .iter()
        .map(
            |(key, used)| {
                if counted { format!("{key} ({used} connections since loaded)") } else { key.to_string() }
            },
        )
        .collect();
    line.push_str(&names.join(", "));
    // What the units' reload command waits for: the count it saw before, plus one.
    if let Some(reload) = s.reload {
        let outcome = match reload.outcome {
            Reload::Ok => "ok",
            Reload::Failed => "failed",
        };
        line.push_str(&format!("; reload {} {outcome}", reload.count));
    }
    line
}

/// Runs a send to the notify socket on the runtime's blocking pool. sd-notify sends on a blocking socket,
/// and a datagram socket whose queue is full (PID 1 busy, or a reader that stopped reading) blocks
/// the sender: a runtime worker must never wait on that.
fn off_runtime(send: impl FnOnce() + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(send)
}

fn notify(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("cannot notify systemd: {e}");
    }
}
