//! Reload on SIGHUP: every key file is read again, and the new set is put in force for the
//! connections that start from then on; live connections keep the keys they started with. A reload
//! that fails (a file missing, empty, unreadable) changes nothing and says why. Nothing else is read
//! again: addresses, limits and privileges stay as they were at start.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::Signal;

use crate::keys::KeySet;
use crate::stats::Reload;
use crate::systemd;
use crate::tunnel::{Mode, Tunnel};

/// Reloads the keys at each signal from `hangups`, until the runtime stops. `key_files` are the -k
/// paths as given at start.
pub async fn keys_on_hangup(mut hangups: Signal, tunnel: Arc<Tunnel>, key_files: Vec<PathBuf>) {
    while hangups.recv().await.is_some() {
        systemd::reloading().await;
        reload(&tunnel, &key_files).await;
        systemd::reloaded(&systemd::status_line(&tunnel)).await;
    }
}

/// One reload, logged either way and counted.
async fn reload(tunnel: &Tunnel, key_files: &[PathBuf]) {
    let outcome = if try_reload(tunnel, key_files).await { Reload::Ok } else { Reload::Failed };
    tunnel.stats.reloaded(outcome);
}

/// Reads the keys again and puts them in force; false (logged) when the keys in force are kept.
async fn try_reload(tunnel: &Tunnel, key_files: &[PathBuf]) -> bool {
    if key_files.iter().any(|path| path.as_os_str() == "-") {
        tracing::warn!(
            "reload: the key was read from standard input (-k -) and cannot be read again; the keys in \
             force are kept"
        );
        return false;
    }
    let files = key_files.to_vec();
    // Reading files blocks; a runtime worker must not.
    let initiator = tunnel.settings.mode == Mode::Encrypt;
    let loaded = match tokio::task::spawn_blocking(move || KeySet::load_for(&files, initiator)).await {
        Ok(loaded) => loaded.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match loaded {
        Ok((set, warnings)) => {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            let fingerprints: Vec<String> = set.fingerprints().map(|f| f.to_string()).collect();
            tunnel.keys.replace(set);
            // Spares made under the old key would serve clients with it until they expire.
            if let Some(pool) = &tunnel.pool {
                pool.flush();
            }
            tracing::info!(keys = %fingerprints.join(","), "reloaded: new connections use these keys");
            true
        }
        Err(e) => {
            tracing::warn!("reload failed, the keys in force are kept: {e}");
            false
        }
    }
}
