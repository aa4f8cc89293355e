//! A reload as systemd hears it on `NOTIFY_SOCKET` (sd_notify's reload protocol): `RELOADING=1` with
//! `MONOTONIC_USEC=`, then `READY=1` with a `STATUS=` line that ends with the keys in force and the
//! reload's count and outcome (what a reload command waits for), whether the reload took or failed.

use nix::sys::signal::Signal;

use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::{Spiped, SpipedCmd, eventually, free_port, scratch};

/// What one reload sent, in order.
struct Notified {
    /// `MONOTONIC_USEC=`'s value, sent with `RELOADING=1`.
    monotonic_usec: u64,
    /// The `STATUS=` text sent with the `READY=1` that ends the reload.
    status: String,
}

/// Sends SIGHUP and waits for the notifications of that reload: `RELOADING=1`, then `READY=1` and
/// `STATUS=` (sent together, one datagram).
fn reload(d: &Spiped) -> Notified {
    let before = d.notifications().len();
    d.signal(Signal::SIGHUP);
    eventually("RELOADING=1 then READY=1 and STATUS=", crate::rig::WITHIN, || {
        let lines = d.notifications();
        let new = &lines[before..];
        let reloading = new.iter().position(|l| l == "RELOADING=1").ok_or_else(|| format!("{new:?}"))?;
        let usec = new[reloading + 1..]
            .iter()
            .take_while(|l| *l != "READY=1")
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .ok_or_else(|| format!("no MONOTONIC_USEC= between RELOADING=1 and READY=1: {new:?}"))?;
        let ready = new[reloading..].iter().position(|l| l == "READY=1").ok_or_else(|| format!("{new:?}"))?;
        let status = new[reloading + ready..]
            .iter()
            .find_map(|l| l.strip_prefix("STATUS="))
            .ok_or_else(|| format!("no STATUS= after READY=1: {new:?}"))?;
        let monotonic_usec = usec.parse().map_err(|e| format!("MONOTONIC_USEC={usec}: {e}"))?;
        Ok::<_, String>(Notified { monotonic_usec, status: status.to_string() })
    })
}

#[test]
fn a_reload_tells_systemd_reloading_then_ready_with_the_keys_in_force() {
    let dir = scratch("reload-notify");
    let (key_a, key_b) = (random_key(), random_key());
    let key = dir.join("d.key");
    write_key(&key, &key_a, 0o600);
    let source = format!("[127.0.0.1]:{}", free_port());
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
        .start();

    let same = reload(&d);
    assert!(same.monotonic_usec > 0, "MONOTONIC_USEC={}", same.monotonic_usec);
    let expected = format!("; key {} (0 connections since loaded); reload 1 ok", fingerprint_of(&key_a));
    assert!(same.status.ends_with(&expected), "{:?} ends with {expected:?}", same.status);

    write_key(&key, &key_b, 0o600);
    let switched = reload(&d);
    assert!(switched.monotonic_usec > same.monotonic_usec, "the clock is monotonic, reloads are in order");
    let expected = format!("; key {} (0 connections since loaded); reload 2 ok", fingerprint_of(&key_b));
    assert!(switched.status.ends_with(&expected), "{:?} ends with {expected:?}", switched.status);

    // A failed reload ends with READY=1 too (the old keys serve on), and the status still names them.
    std::fs::remove_file(&key).unwrap();
    let failed = reload(&d);
    assert!(failed.monotonic_usec > switched.monotonic_usec);
    let expected = format!("; key {} (0 connections since loaded); reload 3 failed", fingerprint_of(&key_b));
    assert!(failed.status.ends_with(&expected), "{:?} ends with {expected:?}", failed.status);
    assert!(d.log_text().contains("reload failed"), "{}", d.log_text());
}
