//! Start-up in spiped's order, then the runtime: resolve, read the keys, bind, daemonize, drop
//! privileges, serve until SIGTERM (reloading the keys at each SIGHUP), drain; systemd is told each
//! step when it started us.

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::daemon;
use crate::keys::KeyRing;
use crate::metrics;
use crate::reload;
use crate::systemd;
use crate::tunnel::addr::{Addr, TargetAddrs};
use crate::tunnel::stream::TcpOptions;
use crate::tunnel::{
    self, AcceptedOptions, Dialer, Listener, Parking, Pool, Settings, Stats, StdListener, Stopped, Tunnel,
};

/// Runs the daemon until it is told to stop; says whether it drained or was stopped at once.
///
/// # Errors
/// Anything that stops it from starting, with context for the operator.
pub fn run(config: Config) -> anyhow::Result<Stopped> {
    // Locked before anything is bound: a second instance with the same -p stops here, touching nothing.
    let mut pid_file = (!config.foreground).then(|| daemon::PidFile::lock(&config.pid_file)).transpose()?;
    let mut daemon = None;
    if config.wait_for_dns
        && let Some(pid_file) = pid_file.take()
    {
        daemon = Some(become_daemon(&config, pid_file)?);
    }
    let resolved = config.resolve()?;
    let keys = config.load_keys()?;
    crate::proto::init_backends().context("cannot use the crypto library")?;
    let passed = systemd::take_listener().context("cannot use the socket systemd passed")?;
    // A unix socket file we bind is ours to remove at exit; one systemd passed is systemd's.
    let bound_here = passed.is_none();
    let tcp = TcpOptions { keepalive: config.keepalive };
    let (socket, socket_file) = match passed {
        Some(socket) => {
            tracing::info!("using the socket passed by systemd instead of binding {}", config.source_spec);
            (socket, None)
        }
        None => {
            bind(&resolved.source, tcp).with_context(|| format!("cannot listen on {}", config.source_spec))?
        }
    };
    let metrics = match &resolved.metrics {
        Some(addr) => Some(bind(addr, tcp).with_context(|| format!("cannot listen on --metrics {addr}"))?),
        None => None,
    };
    if let Some(pid_file) = pid_file.take() {
        daemon = Some(become_daemon(&config, pid_file)?);
    }
    if let Some(who) = &config.user {
        daemon::drop_privileges(who).context("cannot drop privileges (-u)")?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start")?;
    let stopped = runtime.block_on(async {
        let accepted = if bound_here { AcceptedOptions::Inherited } else { AcceptedOptions::PerSocket(tcp) };
        let listener = Listener::from_std(socket, accepted).context("cannot use the listening socket")?;
        let target = TargetAddrs::new(config.target_spec.clone(), resolved.target);
        if let Some(interval) = config.reresolve {
            tokio::spawn(target.clone().refresh_every(interval));
        }
        let file_limit = tunnel::raise_file_limit();
        let tunnel = Arc::new(Tunnel {
            settings: Settings {
                mode: config.mode,
                protocols: config.protocols,
                classic: config.classic,
                unproven_timeout: config.timeout.min(tunnel::UNPROVEN_TIMEOUT),
                max_connections: config.max_connections,
                max_unproven: tunnel::unproven_cap(file_limit),
                proxy_protocol: config.proxy_protocol,
                idle_timeout: config.idle_timeout,
            },
            keys: KeyRing::new(keys),
            dialer: Dialer { target, bind: resolved.bind, timeout: config.timeout, tcp },
            stats: Stats::default(),
            parking: Parking::new(config.max_parked, config.park_timeout),
            pool: (config.pool > 0).then(|| Arc::new(Pool::new(config.pool, config.pool_idle))),
        });
        let filler = tunnel.pool.clone().map(|pool| tokio::spawn(pool.keep_filled(tunnel.clone())));
        let (first, second) =
            shutdown_signals(config.foreground).context("cannot install signal handlers")?;
        // Caught from before READY=1: a SIGHUP from then on reloads, and never kills the daemon.
        let hangups = signal(SignalKind::hangup()).context("cannot install signal handlers")?;
        let reloader =
            tokio::spawn(reload::keys_on_hangup(hangups, tunnel.clone(), config.key_files.clone()));
        let draining = tunnel.clone();
        let drain = async move {
            first.await;
            systemd::stopping(draining.stats.active.load(std::sync::atomic::Ordering::Relaxed));
        };
        tracing::info!(
            mode = ?config.mode,
            source = %config.source_spec,
            target = %config.target_spec,
            "listening"
        );
        let _pid_file = daemon.map(daemon::Daemon::ready);
        systemd::ready(&systemd::status_line(&tunnel));
        let informer = tokio::spawn(systemd::keep_informed(tunnel.clone()));
        let metrics = match metrics {
            Some((socket, file)) => {
                let listener = Listener::from_std(socket, AcceptedOptions::Inherited)
                    .context("cannot use the metrics socket")?;
                if let Some(addr) = &resolved.metrics {
                    tracing::info!(address = %addr, "serving /metrics and /status");
                }
                let addresses = metrics::Addresses {
                    source: config.source_spec.to_string(),
                    target: config.target_spec.to_string(),
                };
                Some((tokio::spawn(metrics::serve(listener, tunnel.clone(), addresses)), file))
            }
            None => None,
        };
        let stopped = tunnel::run(listener, tunnel, drain, second).await;
        informer.abort();
        reloader.abort();
        if let Some(filler) = filler {
            filler.abort();
        }
        if let Some((server, socket_file)) = metrics {
            server.abort();
            drop(socket_file);
        }
        tracing::info!("stopped");
        anyhow::Ok(stopped)
    })?;
    // The unix socket file we bound goes, unless the path names another daemon's socket by now.
    drop(socket_file);
    Ok(stopped)
}

/// Forks into the daemon, which holds `pid_file`; log lines keep going to standard error after it
/// serves unless they go to syslog.
fn become_daemon(config: &Config, pid_file: daemon::PidFile) -> anyhow::Result<daemon::Daemon> {
    daemon::daemonize(pid_file, !config.syslog).context("cannot daemonize")
}

/// Binds the source before the runtime exists, so a daemonizing parent knows it worked. For a unix
/// socket, also the file as bound, which is removed when dropped if the path still names it.
fn bind(addr: &Addr, tcp: TcpOptions) -> std::io::Result<(StdListener, Option<daemon::SocketFile>)> {
    match addr {
        Addr::Tcp(a) => Ok((StdListener::Tcp(tunnel::bind_tcp(*a, tcp)?), None)),
        Addr::Unix(path) => {
            remove_stale_socket(path);
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            Ok((StdListener::Unix(listener), Some(daemon::SocketFile::record(path)?)))
        }
    }
}

/// A unix socket left behind by an earlier run would make bind fail; it is removed when connecting
/// to it is refused (nothing listens). Any other failure (a socket we may not use: a live daemon's)
/// leaves it alone, as does anything that is not a socket or that changed meanwhile.
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let socket_id = || {
        std::fs::symlink_metadata(path).ok().filter(|m| m.file_type().is_socket()).map(|m| (m.dev(), m.ino()))
    };
    let Some(before) = socket_id() else { return };
    let refused = std::os::unix::net::UnixStream::connect(path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    if refused && socket_id() == Some(before) {
        let _ = std::fs::remove_file(path);
    }
}

/// Two futures: the first completes on the first SIGTERM (or SIGINT in the foreground), the second on
/// the one after it.
fn shutdown_signals(
    foreground: bool,
) -> std::io::Result<(impl Future<Output = ()>, impl Future<Output = ()>)> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = if foreground { Some(signal(SignalKind::interrupt())?) } else { None };
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        for (tx, what) in [
            (first_tx, "signal received: draining (a second signal stops at once)"),
            (second_tx, "second signal: resetting live connections and stopping"),
        ] {
            tokio::select! {
                _ = term.recv() => {}
                Some(_) = async { match &mut int { Some(i) => i.recv().await, None => std::future::pending().await } } => {}
            }
            tracing::info!("{what}");
            let _ = tx.send(());
        }
    });
    // A dropped sender (the runtime shutting down) is not a signal.
    let wait = |rx: tokio::sync::oneshot::Receiver<()>| async move {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    Ok((wait(first_rx), wait(second_rx)))
}
