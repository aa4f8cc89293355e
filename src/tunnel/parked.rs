//! `-d`: parked connections (docs/PROTOCOL.md, 4.6). An `-e` end with `--pool` connects and proves the
//! key before any client needs the connection; this end holds such a connection without contacting
//! its target, within a limit of its own and for a bounded time, until the `-e` end puts it to use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, timeout_at};

use super::connection::ConnError;
use super::handshake::native::Native;
use super::handshake::{Established, HandshakeError};
use super::shutdown::Abort;
use super::stream::{ReadHalf, WriteHalf};
use crate::proto::native::{Closing, ParkRequest, Wake};
use crate::stats::Counted;

/// How long this end waits for the `-e` end's end of stream after retiring a parked connection.
const RETIRE_WAIT: Duration = Duration::from_secs(5);

/// Bytes read at once from a parked connection: its next record is a short one (the record that puts
/// it to use, before the client's own, or an end of stream).
const PARKED_READ: usize = 256;

/// What every parked connection of an end shares: the room for them, and the signal to retire them
/// all when the end stops.
#[derive(Debug)]
pub struct Parking {
    /// One permit per connection that may be parked at once (`--max-parked`).
    room: Semaphore,
    /// How long one may stay parked (`--park-timeout`).
    timeout: Duration,
    /// Set when the end starts to drain: every parked connection is retired at once.
    stopping: watch::Sender<bool>,
    /// Connections parked now.
    parked: AtomicU64,
}

impl Parking {
    /// Room for `max` parked connections, each for at most `timeout`.
    pub fn new(max: usize, timeout: Duration) -> Self {
        Parking {
            room: Semaphore::new(max),
            timeout,
            stopping: watch::Sender::new(false),
            parked: AtomicU64::new(0),
        }
    }

    /// Retires every parked connection (the end is draining) and refuses to park any more.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
        self.room.close();
    }

    /// Connections parked now.
    pub fn parked(&self) -> u64 {
        self.parked.load(Ordering::Relaxed)
    }
}

/// Holds a connection whose initiator asked to park it: returns the established connection once it
/// is put to use (the caller then contacts the target), or `None` once it has ended unused: refused
/// for want of room, retired by the `-e` end, or retired here (its time was up, or the end is
/// stopping). `pending` holds bytes already read after the park record.
///
/// # Errors
/// A socket or record error; [`crate::proto::native::ProtoError::PutToUseAfterRetired`] when the `-e`
/// end put it to use as this end retired it. The caller resets the connection.
pub async fn hold(
    (er, ew): (&mut ReadHalf, &mut WriteHalf),
    request: ParkRequest,
    mut pending: Vec<u8>,
    key: usize,
    parking: &Parking,
    mut abort: Abort,
) -> Result<Option<Native>, ConnError> {
    let mut out = Vec::new();
    let Ok(_room) = parking.room.try_acquire() else {
        request.refuse(&mut out).map_err(HandshakeError::from)?;
        send_last(ew, &out).await;
        return Ok(None);
    };
    let mut parked = request.accept(&mut out).map_err(HandshakeError::from)?;
    ew.write_all(&out).await.map_err(HandshakeError::from)?;
    let _counted = Counted::new(&parking.parked);
    let deadline = Instant::now() + parking.timeout;
    let mut stopping = parking.stopping.subscribe();
    loop {
        if !pending.is_empty() {
            match parked.wake(&mut pending).map_err(HandshakeError::from)? {
                Wake::NeedMore(p) => parked = p,
                Wake::Used { transport, data, consumed } => {
                    let first = data.to_vec();
                    pending.drain(..consumed);
                    let (sealer, opener) = transport.split();
                    return Ok(Some(Established { sealer, opener, first, pending, key }));
                }
                Wake::Retired(retired) => {
                    out.clear();
                    retired.end(&mut out).map_err(HandshakeError::from)?;
                    send_last(ew, &out).await;
                    return Ok(None);
                }
            }
        }
        pending.reserve(PARKED_READ);
        let read = tokio::select! {
            // Bytes already here come first: a connection put to use is served, even as the end drains.
            biased;
            read = timeout_at(deadline, er.read_buf(&mut pending)) => read.ok(),
            _ = stopping.wait_for(|&stop| stop) => None,
            () = abort.requested() => return Err(ConnError::Stopped),
        };
        match read {
            Some(Ok(0)) => return Ok(None), // the -e end went away without a word: nothing was carried
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(HandshakeError::from(e).into()),
            None => break, // time is up, or the end is stopping: retire it
        }
    }
    out.clear();
    let mut retiring = parked.retire(&mut out).map_err(HandshakeError::from)?;
    send_last(ew, &out).await;
    // The -e end answers with its own end, or closes; if it put the connection to use as ours crossed, its
    // data is refused and the connection reset, never delivered.
    let until = Instant::now() + RETIRE_WAIT;
    let mut buf = Vec::with_capacity(PARKED_READ);
    loop {
        match timeout_at(until, er.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Ok(None),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(HandshakeError::from(e).into()),
        }
        match retiring.closing(&mut buf).map_err(HandshakeError::from)? {
            Closing::NeedMore(r) => retiring = r,
            Closing::Ended => return Ok(None),
        }
    }
}

/// Sends this end's last records and a FIN. Nothing was carried on the connection, so a peer that has
/// already gone (its reset may cross them) loses nothing, and its going is no failure.
async fn send_last(ew: &mut WriteHalf, out: &[u8]) {
    if ew.write_all(out).await.is_ok() {
        let _ = ew.shutdown().await;
    }
}
