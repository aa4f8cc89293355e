//! One connection, from accept to close: the handshake for the end we are, the target connection
//! (made only after the peer is authenticated on a `-d` end), then the pump. Every way it can fail
//! before the end closes the sockets it holds as failures (an RST), never as a clean, empty stream.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};

use super::Tunnel;
use super::dial::Dialer;
use super::handshake::native::Proven;
use super::handshake::{self, Established, HandshakeError, Pair, classic, native};
use super::idle::{self, Phase, Side, Timer, Watch};
use super::parked;
use super::pool::{Bound, Spare};
use super::proxy_header::{self, Origin};
use super::pump::{PumpError, open_stream, seal_stream};
use super::shutdown::Abort;
use super::stream::{ReadHalf, Stream, WriteHalf};
use super::unproven::Ticket;
use crate::proto::classic::{ForwardSecrecy, HandshakeError as ClassicError};
use crate::proto::native::ProtoError;
use crate::proto::{Fingerprint, Open, Protocol, Protocols, Psk, RecordError, Seal};
use crate::stats::{Ending, Failure, Stats};

/// Which end of the pipe this daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-e`: plaintext in on the source, encrypted out to the target; the handshake's initiator.
    Encrypt,
    /// `-d`: encrypted in on the source, plaintext out to the target; the handshake's responder.
    Decrypt,
}

/// Why a connection ended early. Logged; never sent to the peer.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The handshake failed: the peer's bytes were refused, or it closed the connection.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer had not proved the key when newer unproven connections needed its place.
    #[error("handshake unfinished when the room for unproven connections was full; closed for a newer one")]
    Evicted,
    /// No target address accepted a connection.
    #[error("target {target} unreachable: {source}")]
    Target {
        /// The address tried last.
        target: String,
        /// Its error.
        source: io::Error,
    },
    /// Connecting to the target took longer than -o.
    #[error("target connection timed out")]
    TargetTimeout,
    /// The established connection failed: a socket error, tampering or truncation.
    #[error("connection aborted: {0}")]
    Pump(#[from] PumpError),
    /// The daemon was told to stop at once (a second signal).
    #[error("reset: the daemon is stopping at once")]
    Stopped,
}

impl ConnError {
    /// For handshake failures, a short reason for the log's summary of them; `None` for the others,
    /// which are logged one by one.
    pub fn handshake_reason(&self) -> Option<&'static str> {
        match self {
            ConnError::Handshake(HandshakeError::Native(_)) => {
                Some("refused (wrong key, garbage or a replay)")
            }
            ConnError::Handshake(HandshakeError::Classic(ClassicError::BadMac)) => {
                Some("refused as classic spiped (wrong key, or garbage)")
            }
            ConnError::Handshake(HandshakeError::Classic(ClassicError::NoForwardSecrecy)) => {
                Some("classic spiped with -f, refused under -g")
            }
            ConnError::Handshake(HandshakeError::Classic(_)) => {
                Some("refused as classic spiped (an invalid Diffie-Hellman value)")
            }
            ConnError::Handshake(HandshakeError::NotAccepted(_)) => Some("a protocol not accepted here"),
            ConnError::Handshake(HandshakeError::ClassicTarget) => Some("the target speaks classic spiped"),
            ConnError::Handshake(HandshakeError::Io(_) | HandshakeError::Silent) => {
                Some("closed by the peer")
            }
            ConnError::HandshakeTimeout => Some("timed out"),
            ConnError::Evicted => Some("closed to make room"),
            _ => None,
        }
    }
}

impl ConnError {
    /// Whether the peer closed without a byte: a port check, not a failed handshake.
    pub fn is_silent(&self) -> bool {
        matches!(self, ConnError::Handshake(HandshakeError::Silent))
    }

    /// The reason a metric counts this failure under.
    pub fn failure(&self) -> Failure {
        match self {
            ConnError::Handshake(
                HandshakeError::Native(ProtoError::UnsupportedVersion(_) | ProtoError::NotNative)
                | HandshakeError::NotAccepted(_)
                | HandshakeError::ClassicTarget
                | HandshakeError::ParkRefused
                | HandshakeError::ParkUnanswered
                | HandshakeError::Classic(ClassicError::NoForwardSecrecy),
            ) => Failure::ProtocolMismatch,
            ConnError::Handshake(HandshakeError::KeyRemoved) => Failure::HandshakeRefused,
            ConnError::Handshake(HandshakeError::Native(ProtoError::PutToUseAfterRetired)) => {
                Failure::RetiredInUse
            }
            ConnError::Handshake(HandshakeError::Native(_) | HandshakeError::Classic(_)) => {
                Failure::HandshakeRefused
            }
            ConnError::Handshake(HandshakeError::Io(_) | HandshakeError::Silent) => Failure::HandshakeClosed,
            ConnError::HandshakeTimeout => Failure::HandshakeTimeout,
            ConnError::Evicted => Failure::Evicted,
            ConnError::Target { .. } => Failure::TargetUnreachable,
            ConnError::TargetTimeout => Failure::TargetTimeout,
            ConnError::Pump(PumpError::Record(RecordError::Truncated)) => Failure::Truncated,
            // A peer that holds the key sends none of these: they are altered records.
            ConnError::Pump(PumpError::Record(
                RecordError::Auth
                | RecordError::TooShort(_)
                | RecordError::BadLength(_)
                | RecordError::UnknownType(_)
                | RecordError::EndWithBody
                | RecordError::AfterEnd
                | RecordError::MisplacedPark
                | RecordError::Failed,
            )) => Failure::Tampered,
            // Our own side's limits (the record counter): as rare as a socket failure, and as local.
            ConnError::Pump(PumpError::Io(_) | PumpError::Record(_)) => Failure::SocketError,
            ConnError::Pump(PumpError::DataAfterIdleClose | PumpError::EndUnsent) => Failure::IdleCloseFailed,
            ConnError::Stopped => Failure::Stopped,
        }
    }
}

/// What a finished connection carried, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Plaintext bytes this end sealed and sent to its peer.
    pub sealed: u64,
    /// Plaintext bytes this end opened from its peer's records.
    pub opened: u64,
    /// `-d`: the fingerprint of the key the peer proved (the end may hold several).
    pub key: Option<Fingerprint>,
    /// How it ended, for the log's `outcome`: closed cleanly on its own, or by this end's idle timeout.
    pub ending: Ending,
}

/// What the accept loop hands a connection besides its socket.
#[derive(Debug)]
pub struct Admission {
    /// `-d`: the connection's place among those not yet authenticated; given up once the peer proves
    /// the key, and its eviction closes the connection.
    pub unproven: Option<Ticket>,
    /// `-d`: the `-n` limit, taken once the peer is authenticated (`-e` takes it before accepting).
    pub limit: Option<Arc<Semaphore>>,
    /// The forced stop.
    pub abort: Abort,
}

/// Handles one accepted connection to the end.
///
/// # Errors
/// [`ConnError`]; the sockets have been closed (reset, where the connection failed) when it returns.
pub async fn handle(accepted: Stream, tunnel: &Tunnel, admission: Admission) -> Result<Summary, ConnError> {
    match tunnel.settings.mode {
        Mode::Encrypt => encrypt_end(accepted, tunnel, admission.abort).await,
        Mode::Decrypt => decrypt_end(accepted, tunnel, admission).await,
    }
}

/// What an initiator needs besides the plaintext side: the `-e` end's settings, or `spipe`'s.
#[derive(Debug, Clone, Copy)]
pub struct Initiator<'a> {
    /// How to reach the `-d` end, and the bound on the handshake.
    pub dialer: &'a Dialer,
    /// The shared key.
    pub psk: &'a Psk,
    /// The protocol to speak: native, or classic for a `-d` end still on spiped 1.x.
    pub protocol: Protocol,
    /// What a classic connection does about forward secrecy (-f, -g).
    pub classic: ForwardSecrecy,
    /// Where the handshake and the connect to the `-d` end are counted and timed.
    pub stats: &'a Stats,
}

/// `-e`: the initiator's side of a connection, with the tunnel's settings.
async fn encrypt_end(plain: Stream, tunnel: &Tunnel, abort: Abort) -> Result<Summary, ConnError> {
    let protocol = match tunnel.settings.protocols {
        Protocols::Only(protocol) => protocol,
        Protocols::Both => Protocol::Native,
    };
    if let Some(spare) = tunnel.pool.as_ref().and_then(|pool| pool.take()) {
        // Boxed: only pooled connections take this way, and the rest should not carry its state.
        return Box::pin(pooled(plain, spare, tunnel, abort)).await;
    }
    let keys = tunnel.keys.current();
    let initiator = Initiator {
        dialer: &tunnel.dialer,
        psk: keys.first(),
        protocol,
        classic: tunnel.settings.classic,
        stats: &tunnel.stats,
    };
    initiate_idling(plain, initiator, abort, tunnel.settings.idle_timeout).await
}

/// `-e --pool`: the client takes a spare, parked at the `-d` end: the record that puts it to use leaves
/// with the client's first bytes if they are already here, and alone at once if not, so that a service
/// that speaks first is heard. While the connection is new, its bytes may go unacknowledged for -o at
/// most, as a connect may take -o at most: a spare whose host has just vanished fails the client.
async fn pooled(plain: Stream, spare: Spare, tunnel: &Tunnel, abort: Abort) -> Result<Summary, ConnError> {
    let Spare { sockets, ready, .. } = spare;
    let bound = Bound::new(&sockets.0, tunnel.dialer.timeout);
    let mut first = Vec::new();
    let (sealer, opener) = ready.take(&mut first).map_err(HandshakeError::from)?.split();
    let established = Established { sealer, opener, first, pending: Vec::new(), key: 0 };
    let idle = tunnel.settings.idle_timeout;
    bound.around(encrypted(established, plain, sockets, abort, idle, &tunnel.stats)).await
}

/// The initiator (`-e`, and `spipe` with standard input and output as `plain`): connect to the
/// `-d` end, run the handshake within -o, then pump. If either fails, `plain` is reset: a client must
/// not take a failed pipe for a service that closed without a word.
///
/// # Errors
/// [`ConnError`]; both connections have been closed (reset, where it failed) when it returns.
pub fn initiate(
    plain: Stream,
    initiator: Initiator<'_>,
    abort: Abort,
) -> impl Future<Output = Result<Summary, ConnError>> {
    // Not an async fn of its own: that would hold the arguments a second time.
    initiate_idling(plain, initiator, abort, None)
}

/// [`initiate`], closing the connection once it has been idle for `idle` (the `-e` end's
/// `--idle-timeout`).
async fn initiate_idling(
    plain: Stream,
    initiator: Initiator<'_>,
    mut abort: Abort,
    idle: Option<Duration>,
) -> Result<Summary, ConnError> {
    let Initiator { dialer, psk, protocol, classic, stats } = initiator;
    let setup = async {
        let (mut er, mut ew) = dial(dialer, stats).await?.into_split();
        let hello = async {
            match protocol {
                Protocol::Classic => {
                    // Boxed: its 288-byte messages would otherwise enlarge every native connection's state.
                    let hello = Box::pin(classic::initiate(&mut er, &mut ew, psk, classic));
                    hello.await.map(Pair::Classic)
                }
                Protocol::Native => native::initiate(&mut er, &mut ew, psk).await.map(Pair::Native),
            }
        };
        let deadline = Instant::now() + dialer.timeout;
        match before(deadline, &mut None, hello).await {
            Ok(established) => {
                stats.handshake_done(protocol, elapsed_since(deadline, dialer.timeout));
                Ok((established, er, ew))
            }
            Err(e) => {
                ew.abort();
                Err(e)
            }
        }
    };
    let set_up = unless_stopped(&mut abort, pin!(setup)).await;
    let (established, er, ew) = match set_up {
        Ok(done) => done,
        Err(e) => {
            plain.abort();
            return Err(e);
        }
    };
    match established {
        Pair::Native(pair) => encrypted(pair, plain, (er, ew), abort, idle, stats).await,
        Pair::Classic(pair) => encrypted(pair, plain, (er, ew), abort, idle, stats).await,
    }
}

/// `-e`, established: pumps between the client and the target.
async fn encrypted<S: Seal, O: Open>(
    established: Established<S, O>,
    plain: Stream,
    target: (ReadHalf, WriteHalf),
    abort: Abort,
    idle: Option<Duration>,
    stats: &Stats,
) -> Result<Summary, ConnError> {
    let Established { sealer, opener, first: confirmation, .. } = established;
    // The key confirmation leaves with the client's first bytes when they are already here.
    let sealing = Direction { state: sealer, bytes: confirmation };
    let opening = Direction { state: opener, bytes: Vec::new() };
    pump(sealing, opening, plain.into_split(), target, abort, idle.map(Watch::new), stats).await
}

/// `-d`: tell the initiator's protocol from its first bytes, run that handshake as responder within
/// the unproven connections' deadline; only once the initiator has proved the key, take a `-n` slot
/// and connect to the target.
async fn decrypt_end(encrypted: Stream, tunnel: &Tunnel, admission: Admission) -> Result<Summary, ConnError> {
    let Admission { unproven, limit, mut abort } = admission;
    let (mut er, mut ew) = encrypted.into_split();
    let deadline = Instant::now() + tunnel.settings.unproven_timeout;
    // One snapshot for the whole handshake: a reload meanwhile changes the keys of later connections.
    let keys = tunnel.keys.current();
    let proof = async {
        let mut ticket = unproven;
        let (spoken, first) =
            before(deadline, &mut ticket, handshake::detect(&mut er, tunnel.settings.protocols)).await?;
        match spoken {
            Protocol::Native => {
                let hello = native::answer_hello(&mut er, &mut ew, keys.psks(), first);
                let (unconfirmed, key) = before(deadline, &mut ticket, hello).await?;
                if let Some(ticket) = &mut ticket {
                    ticket.hello_verified();
                }
                let confirmation = native::read_confirmation(&mut er, unconfirmed, key);
                before(deadline, &mut ticket, confirmation).await
            }
            Protocol::Classic => {
                // Boxed: its 288-byte messages would otherwise enlarge every native connection's state.
                let y =
                    Box::pin(classic::respond(&mut er, &mut ew, keys.psks(), tunnel.settings.classic, first));
                before(deadline, &mut ticket, y).await.map(|pair| Proven::Established(Pair::Classic(pair)))
            }
        }
        // The ticket drops here: the peer is proven and leaves the unproven connections.
    };
    let proven = unless_stopped(&mut abort, pin!(proof)).await;
    let proven = match proven {
        Ok(done) => {
            let protocol = match &done {
                Proven::Established(Pair::Classic(_)) => Protocol::Classic,
                _ => Protocol::Native,
            };
            let took = elapsed_since(deadline, tunnel.settings.unproven_timeout);
            tunnel.stats.handshake_done(protocol, took);
            done
        }
        Err(e) => {
            ew.abort();
            return Err(e);
        }
    };
    let (established, keys) = match proven {
        Proven::Established(pair) => (pair, keys),
        Proven::Park { request, pending, key } => {
            let fingerprint = keys.fingerprint(key);
            // As for any connection, the set itself is not kept while the connection waits: a
            // reload may free it, and a key it removed must serve no parked connection (checked
            // below, once it is put to use).
            drop(keys);
            // Boxed: only pooled connections wait here, and the rest should not carry its state.
            let parked =
                parked::hold((&mut er, &mut ew), request, pending, key, &tunnel.parking, abort.clone());
            match Box::pin(parked).await {
                Ok(Some(mut pair)) => {
                    let keys = tunnel.keys.current();
                    let Some(index) = keys.fingerprints().position(|k| k == fingerprint) else {
                        ew.abort();
                        return Err(HandshakeError::KeyRemoved.into());
                    };
                    pair.key = index;
                    (Pair::Native(pair), keys)
                }
                Ok(None) => {
                    return Ok(Summary {
                        sealed: 0,
                        opened: 0,
                        key: Some(fingerprint),
                        ending: Ending::Unused,
                    });
                }
                Err(e) => {
                    ew.abort();
                    return Err(e);
                }
            }
        }
    };
    let index = match &established {
        Pair::Native(pair) => pair.key,
        Pair::Classic(pair) => pair.key,
    };
    keys.note_used(index);
    let key = keys.fingerprint(index);
    // The connection keeps the key's name, not the whole set: a reload may free the old set.
    drop(keys);
    let served = match established {
        Pair::Native(pair) => decrypted(pair, tunnel, limit, (er, ew), abort).await,
        Pair::Classic(pair) => decrypted(pair, tunnel, limit, (er, ew), abort).await,
    };
    served.map(|summary| Summary { key: Some(key), ..summary })
}

/// `-d`, the peer authenticated: only now does it count against -n, and does the service see it.
/// With --proxy-protocol the service's first bytes are the PROXY header, in the same write as the
/// first data when that came with the handshake.
async fn decrypted<S: Seal, O: Open>(
    established: Established<S, O>,
    tunnel: &Tunnel,
    limit: Option<Arc<Semaphore>>,
    (er, ew): (ReadHalf, WriteHalf),
    mut abort: Abort,
) -> Result<Summary, ConnError> {
    let target = async {
        let permit = take_slot(limit, &tunnel.stats).await;
        Ok((permit, dial(&tunnel.dialer, &tunnel.stats).await?))
    };
    let connected = unless_stopped(&mut abort, pin!(target)).await;
    let (_permit, target) = match connected {
        Ok(done) => done,
        Err(e) => {
            ew.abort();
            return Err(e);
        }
    };
    let (pr, mut pw) = target.into_split();
    let Established { sealer, opener, mut first, pending, .. } = established;
    if tunnel.settings.proxy_protocol {
        let mut header = proxy_header::encode(origin(&er));
        header.append(&mut first);
        first = header;
    }
    if let Err(e) = pw.write_all(&first).await {
        pw.abort();
        ew.abort();
        return Err(PumpError::Io(e).into());
    }
    let sealing = Direction { state: sealer, bytes: Vec::new() };
    let opening = Direction { state: opener, bytes: pending };
    let watch = tunnel.settings.idle_timeout.map(Watch::new);
    pump(sealing, opening, (pr, pw), (er, ew), abort, watch, &tunnel.stats).await
}

/// Where an accepted connection came from, for its PROXY header: read from the socket when the header
/// is written rather than kept from the accept, so that connections carry no addresses in their state
/// (with the flag or without). A unix socket has no address worth telling; a socket whose addresses
/// cannot be read any more has failed, and its pump will say so.
fn origin(accepted: &ReadHalf) -> Origin {
    match accepted {
        ReadHalf::Tcp(socket) => match (socket.peer_addr(), socket.local_addr()) {
            (Ok(peer), Ok(local)) => Origin::Tcp { peer, local },
            _ => Origin::Unknown,
        },
        ReadHalf::Unix(_) => Origin::Unknown,
    }
}

/// Waits for a `-n` slot, if there is a limit; a wait is counted as the limit being hit.
async fn take_slot(limit: Option<Arc<Semaphore>>, stats: &Stats) -> Option<OwnedSemaphorePermit> {
    let sem = limit?;
    if let Ok(permit) = sem.clone().try_acquire_owned() {
        return Some(permit);
    }
    stats.limit_hit();
    Some(sem.acquire_owned().await.expect("the connection limit is never closed"))
}

/// Connects to the target, timing it.
pub(crate) async fn dial(dialer: &Dialer, stats: &Stats) -> Result<Stream, ConnError> {
    let started = Instant::now();
    let target = dialer.connect().await?;
    stats.target_connected(started.elapsed());
    Ok(target)
}

/// How long ago a step began that was given `bound` to finish by `deadline`: the deadline stands for
/// the start, so a connection's state carries no second instant.
fn elapsed_since(deadline: Instant, bound: Duration) -> Duration {
    (Instant::now() + bound).saturating_duration_since(deadline)
}

/// Runs one step of a handshake until `deadline`, unless the connection (an unproven one, with a
/// ticket) is evicted first. The step is polled first, so a connection chosen for eviction whose bytes
/// are already in the socket still takes its step.
async fn before<T>(
    deadline: Instant,
    ticket: &mut Option<Ticket>,
    step: impl Future<Output = Result<T, HandshakeError>>,
) -> Result<T, ConnError> {
    let evicted = async {
        match ticket {
            Some(ticket) => ticket.evicted().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        done = timeout_at(deadline, step) => done.map_err(|_| ConnError::HandshakeTimeout)?.map_err(ConnError::from),
        () = evicted => Err(ConnError::Evicted),
    }
}

/// Runs `work` unless the forced stop comes first. `work` is pinned by the caller, so that it is
/// stored once, in the caller's state: a future passed by value is stored twice in the task.
async fn unless_stopped<T>(
    abort: &mut Abort,
    work: Pin<&mut impl Future<Output = Result<T, ConnError>>>,
) -> Result<T, ConnError> {
    tokio::select! {
        done = work => done,
        () = abort.requested() => Err(ConnError::Stopped),
    }
}

/// One direction's record state and the bytes it starts with.
struct Direction<S> {
    /// The sealer or opener.
    state: S,
    /// Sealing: records sealed before the pump started, sent first. Opening: bytes already read from
    /// the peer, opened first.
    bytes: Vec<u8>,
}

/// Runs both directions until both are done; on any failure, or the forced stop, resets both sockets,
/// so a truncated or tampered stream never reaches either side as a clean end. With an idle `watch`
/// (made as the pump starts), its timer watches both directions and ends them cleanly once neither
/// has moved data for the timeout.
async fn pump<S: Seal, O: Open>(
    sealing: Direction<S>,
    opening: Direction<O>,
    (mut pr, mut pw): (ReadHalf, WriteHalf),
    (mut er, mut ew): (ReadHalf, WriteHalf),
    mut abort: Abort,
    mut watch: Option<Box<Watch>>,
    stats: &Stats,
) -> Result<Summary, ConnError> {
    let (activity, mut timer) = match watch.as_deref_mut() {
        Some(watch) => {
            let (activity, timer) = watch.parts();
            (Some(activity), Some(timer))
        }
        None => (None, None),
    };
    let mut ending = Ending::Clean;
    let ended = {
        // The directions are pinned here and polled in place: a future passed by value into another
        // is stored twice in the task, and these are the state of every idle connection.
        let lane = |side| activity.map(|activity| activity.lane(side));
        let (to_peer, from_peer) = stats.byte_counters();
        let seal = seal_stream(sealing.state, sealing.bytes, &mut pr, &mut ew, lane(Side::Sealing), to_peer);
        let mut seal = pin!(seal);
        let open =
            open_stream(opening.state, opening.bytes, &mut er, &mut pw, lane(Side::Opening), from_peer);
        let mut open = pin!(open);
        let (mut sealed, mut opened) = (None, None);
        // Each turn polls every direction still running: after a phase change, that is how they see it.
        loop {
            tokio::select! {
                done = &mut seal, if sealed.is_none() => match done {
                    Ok(carried) => sealed = Some(carried),
                    Err(e) => break Err(ConnError::from(e)),
                },
                done = &mut open, if opened.is_none() => match done {
                    Ok(carried) => opened = Some(carried),
                    Err(e) => break Err(ConnError::from(e)),
                },
                phase = idle::next_phase(timer.as_deref_mut(), activity) => {
                    ending = Ending::Idle;
                    note_idle(phase, timer.as_deref().map(Timer::timeout));
                }
                () = abort.requested() => break Err(ConnError::Stopped),
            }
            if let (Some(sealed), Some(opened)) = (sealed, opened) {
                break Ok(Summary { sealed, opened, key: None, ending });
            }
        }
    };
    if ended.is_err() {
        pw.abort();
        ew.abort();
    }
    ended
}

/// Logs a step of the idle close.
fn note_idle(phase: Phase, timeout: Option<Duration>) {
    let timeout = timeout.unwrap_or_default();
    match phase {
        Phase::Open => {}
        Phase::Closing => {
            tracing::debug!(?timeout, "no data either way for the idle timeout: closing cleanly")
        }
        Phase::Over => tracing::debug!(
            ?timeout,
            "the peer end did not end its stream within the idle timeout after ours: closing"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyRing, KeySet};
    use crate::tunnel::addr::{Addr, SocketSpec, TargetAddrs};
    use crate::tunnel::stream::TcpOptions;
    use crate::tunnel::{MAX_UNPROVEN, Settings, Stats, UNPROVEN_TIMEOUT};
    use tokio::net::{TcpListener, TcpStream};

    /// An end of `mode` whose target is `target`, with or without an idle timeout.
    fn tunnel(mode: Mode, target: std::net::SocketAddr, idle_timeout: Option<Duration>) -> Tunnel {
        let tcp = TcpOptions { keepalive: true };
        Tunnel {
            settings: Settings {
                mode,
                protocols: Protocols::Only(Protocol::Native),
                classic: ForwardSecrecy::Offer,
                unproven_timeout: UNPROVEN_TIMEOUT,
                max_connections: 0,
                max_unproven: MAX_UNPROVEN,
                proxy_protocol: false,
                idle_timeout,
            },
            keys: KeyRing::new(KeySet::single(Psk::from_key_file(b"future size"))),
            dialer: Dialer {
                target: TargetAddrs::new(SocketSpec::Ip(target), vec![Addr::Tcp(target)]),
                bind: None,
                timeout: Duration::from_secs(5),
                tcp,
            },
            stats: Stats::default(),
            parking: crate::tunnel::Parking::new(0, Duration::from_secs(1)),
            pool: None,
        }
    }

    /// What every connection's task holds for its whole life, idle or not (the task adds its own
    /// header and rounds up): printed, not asserted, as it moves with the compiler and the profile.
    /// One figure serves every end: the idle watch is behind a pointer either way.
    #[tokio::test]
    async fn the_connection_future_size() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnel = tunnel(Mode::Decrypt, addr, Some(Duration::from_secs(60)));
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let admission = Admission { unproven: None, limit: None, abort: Abort::never() };
        let future = handle(Stream::Tcp(accepted), &tunnel, admission);
        println!("the connection future: {} bytes", std::mem::size_of_val(&future));
    }
}
