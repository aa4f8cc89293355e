//! Moving bytes once a connection is established: plaintext in, records out, and records in,
//! plaintext out, with half-close carried across and truncation turned into an abort. With an idle
//! timeout, each direction tells the connection's [`idle`](super::idle) watch when it parks and wakes,
//! and ends itself cleanly when the watch says the connection has been idle.

use std::io::{self, IoSlice, IoSliceMut};
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::idle::{Lane, Phase};
use super::stream::ReadHalf;

use crate::proto::{Open, Record, RecordError, Seal};

/// The first read of a burst asks for this much: a small write costs a small buffer.
const FIRST_READ: usize = 4 * 1024;
/// The most memory one direction of a connection holds for data in flight, whatever its peers do: with
/// the connection's other state, a reader that stops reading pins less than 256 KiB on each end
/// (docs/performance.md has the figures). Three 64 KiB records per syscall run as fast as eight did.
pub const MAX_BUFFER: usize = 192 * 1024;
/// Fewest frames the sealing side fills from one read once reads come back full: large frames (native
/// records) stop growing at a third of [`MAX_BUFFER`]; three 64 KiB records per syscall run as fast as
/// eight did.
const MIN_BATCH: usize = 3;
/// Most frames filled from one read and sent with one write: enough for small fixed-size frames
/// (classic spiped's 1 KiB packets) to fill [`MAX_BUFFER`].
const MAX_BATCH: usize = 192;
/// Most bytes asked of the socket at once on the encrypted side.
const MAX_READ: usize = MAX_BUFFER;

/// Why a direction stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// A socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer's records were not acceptable: tampering, truncation or a protocol error.
    #[error("{0}")]
    Record(#[from] RecordError),
    /// The peer end sent data after this end closed the connection for being idle: there is nowhere
    /// left to deliver it, so the connection is reset rather than let it vanish.
    #[error("data arrived after the idle close (--idle-timeout)")]
    DataAfterIdleClose,
    /// The peer end read nothing for a whole idle timeout after the idle close, so this end's end of
    /// stream could not be sent: the connection is reset rather than left hanging.
    #[error("the peer end stopped reading before the idle close could end the stream (--idle-timeout)")]
    EndUnsent,
}

/// What woke a direction parked on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// The socket has something: data, an end or an error.
    Readable,
    /// The idle watch moved to this phase.
    Idle(Phase),
}

/// Bytes a direction carried, for the log.
pub type Carried = u64;

/// Reads plaintext from `from` and writes it to `to` as frames, then the protocol's end of stream
/// and a FIN when `from` ends. Whatever one read returns is sealed and sent at once. Returns the
/// plaintext bytes carried. The buffer exists only while data moves: it is released whenever `from`
/// has nothing more to give, and starts small again for the next burst.
///
/// `prefix` holds records sealed before the pump started (the `-e` end's key confirmation). They
/// leave in the same write as the first data when some is already waiting, and alone at once when
/// none is, so a service that speaks first is not held up.
///
/// With an idle `lane`, the direction marks it quiet where it parks with nothing in hand and busy
/// when it wakes, and once the connection has been idle it ends as if `from` had ended.
///
/// # Errors
/// A socket error, or a sealing error (counter exhaustion).
pub async fn seal_stream<S, W>(
    mut tx: S,
    mut prefix: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
    lane: Option<Lane<'_>>,
    counted: &AtomicU64,
) -> Result<Carried, PumpError>
where
    S: Seal,
    W: AsyncWrite + Unpin,
{
    // Frames side by side, `[header | type | body | tag]`: one read scatters into the bodies, each is
    // sealed in place, and the records, contiguous up to the last, leave in one write.
    let mut frames: Vec<u8> = Vec::new();
    let mut layout = Layout::first::<S>();
    let mut carried = 0;
    loop {
        if frames.is_empty()
            && prefix.is_empty()
            && let Woken::Idle(_) = park(from, lane, false, Phase::Open).await?
        {
            break; // idle: end the stream as if `from` had ended
        }
        frames.resize(layout.len(), 0);
        let read = from.try_read_vectored(&mut layout.bodies::<S>(&mut frames)[..layout.count]);
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !prefix.is_empty() {
                    to.write_all(&prefix).await?;
                    prefix = Vec::new();
                }
                frames = Vec::new(); // idle: give the buffer back until data comes
                layout = Layout::first::<S>();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        let mut sent = 0;
        for body in layout.split(n) {
            let frame = &mut frames[sent..sent + S::frame_len(body)];
            tx.seal_frame(frame, body)?;
            sent += frame.len();
        }
        if prefix.is_empty() {
            to.write_all(&frames[..sent]).await?;
        } else {
            // The first read of a connection: at most FIRST_READ bytes to copy behind the prefix.
            prefix.extend_from_slice(&frames[..sent]);
            to.write_all(&prefix).await?;
            prefix = Vec::new();
        }
        carried += n as u64;
        counted.fetch_add(n as u64, Ordering::Relaxed);
        layout = layout.after::<S>(n);
    }
    tx.seal_end(&mut prefix)?;
    end_stream(to, &prefix, lane).await?;
    if let Some(lane) = lane {
        lane.quiet(); // a direction that has ended never holds the connection open
    }
    Ok(carried)
}

/// How the sealing side's buffer is cut into frames: `count` frames with room for `body` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Bytes of data each frame has room for.
    body: usize,
    /// Frames filled by one read.
    count: usize,
    /// Bytes of each frame on the wire.
    frame: usize,
}

impl Layout {
    /// A burst starts with [`FIRST_READ`] bytes of room: one frame, or as many small ones as that takes.
    fn first<S: Seal>() -> Layout {
        let body = FIRST_READ.min(S::MAX_BODY);
        Layout { body, count: FIRST_READ.div_ceil(body), frame: S::frame_len(body) }
    }

    /// The largest body the sealing side makes: [`MIN_BATCH`] whole frames fit in [`MAX_BUFFER`] (for
    /// native records, a byte short of the wire's largest).
    fn max_body<S: Seal>() -> usize {
        S::MAX_BODY.min(MAX_BUFFER / MIN_BATCH - S::frame_len(0))
    }

    fn len(self) -> usize {
        self.count * self.frame
    }

    /// The most one read can bring: every body full.
    fn room(self) -> usize {
        self.count * self.body
    }

    /// The body of each frame, for one scattering read, in a fixed array so that a read allocates
    /// nothing: the first `count` are the bodies, the rest empty.
    fn bodies<S: Seal>(self, frames: &mut [u8]) -> [IoSliceMut<'_>; MAX_BATCH] {
        let mut frames = frames.chunks_exact_mut(self.frame);
        core::array::from_fn(|_| match frames.next() {
            Some(frame) => IoSliceMut::new(&mut frame[S::BODY_OFFSET..S::BODY_OFFSET + self.body]),
            None => IoSliceMut::new(&mut []),
        })
    }

    /// The body lengths a read of `n` bytes filled: whole frames, then perhaps a partial one.
    fn split(self, n: usize) -> impl Iterator<Item = usize> {
        let whole = n / self.body;
        let rest = n % self.body;
        core::iter::repeat_n(self.body, whole).chain((rest > 0).then_some(rest))
    }

    /// The layout for the next read: larger frames, then more of them, while reads fill the buffer;
    /// never more than [`MAX_BUFFER`] in all.
    fn after<S: Seal>(self, n: usize) -> Layout {
        if n < self.room() {
            return self;
        }
        let max_body = Self::max_body::<S>();
        if self.body < max_body {
            let body = (self.body * 4).min(max_body);
            let frame = S::frame_len(body);
            return Layout { body, count: self.count.min(MAX_BUFFER / frame), frame };
        }
        let most = (MAX_BUFFER / self.frame).min(MAX_BATCH);
        Layout { count: (self.count * 2).min(most), ..self }
    }
}

/// Reads frames from `from` (after the `pending` bytes already read) and writes their plaintext to
/// `to`; the peer's end of stream (the native end record, or a clean close where the protocol allows
/// one) becomes a FIN on `to`. Returns the plaintext bytes carried. The read
/// buffer holds memory only while a record is incomplete or data is arriving; it starts small and
/// grows while reads come back full.
///
/// With an idle `lane`, the direction marks it quiet where it parks with nothing in hand (part of a
/// record is something) and busy when it wakes. Once the connection has been idle it half-closes `to`
/// and goes on reading only to see the peer's end of stream; it stops waiting for that when the watch
/// says the connection is over.
///
/// # Errors
/// A socket error, or a record error, including [`RecordError::Truncated`] when `from` closes where the
/// protocol allows no clean end. The caller then aborts `to` rather than closing it cleanly.
/// [`PumpError::DataAfterIdleClose`] for data that arrives once `to` was closed for being idle.
pub async fn open_stream<O, W>(
    mut rx: O,
    pending: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
    lane: Option<Lane<'_>>,
    counted: &AtomicU64,
) -> Result<Carried, PumpError>
where
    O: Open,
    W: AsyncWrite + Unpin,
{
    const { assert!(O::MAX_FRAME < MAX_BUFFER, "a partly read frame always has room for the rest") };
    let mut buf = pending;
    let mut want = FIRST_READ;
    let mut carried = 0;
    // Where the opened records' data lies in `buf`: written together, in one syscall when possible.
    let mut ranges: Vec<Range<usize>> = Vec::new();
    // Set once `to` has been sent a FIN: for the peer's end of stream, or for the idle close.
    let mut ended = false;
    // The idle phase this direction has acted on.
    let mut seen = Phase::Open;
    loop {
        let mut at = 0;
        let mut ending = false;
        let before = carried;
        while let Some(opened) = rx.open(&mut buf[at..])? {
            match opened.record {
                Record::Data(data) if !data.is_empty() => {
                    let start = at + O::BODY_OFFSET;
                    ranges.push(start..start + data.len());
                    carried += data.len() as u64;
                }
                Record::Data(_) => {}
                Record::End => ending = true,
            }
            at += opened.consumed;
        }
        counted.fetch_add(carried - before, Ordering::Relaxed); // once per read, not per record
        if seen != Phase::Open && !ranges.is_empty() {
            return Err(PumpError::DataAfterIdleClose);
        }
        write_ranges(to, &buf, &mut ranges).await?;
        if ending && !ended {
            to.shutdown().await?;
            ended = true;
        }
        buf.drain(..at);
        if buf.is_empty() {
            buf = Vec::new(); // nothing pending: hold no memory while the peer is quiet
            want = FIRST_READ;
        }
        if let Woken::Idle(phase) = park(from, lane, !buf.is_empty(), seen).await? {
            seen = phase;
            if !ended {
                to.shutdown().await?;
                ended = true;
            }
            if phase == Phase::Over {
                return Ok(carried); // the peer end did not end its stream in time; ours are closed
            }
            continue;
        }
        // What is left is less than one frame, and a frame is at most `O::MAX_FRAME`, which is less
        // than MAX_BUFFER: there is always room for the rest of it.
        let room = want.min(MAX_BUFFER - buf.len());
        if buf.capacity() - buf.len() < room {
            buf.reserve_exact(room);
        }
        let room = buf.capacity() - buf.len();
        match from.try_read_buf(&mut buf) {
            Ok(0) => {
                rx.finish(&buf)?;
                if !ended {
                    to.shutdown().await?;
                }
                if let Some(lane) = lane {
                    lane.quiet(); // a direction that has ended never holds the connection open
                }
                return Ok(carried);
            }
            Ok(n) if n == room => want = (want * 2).min(MAX_READ), // more is waiting: ask for more
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `last` (the records that end the stream: the native end record, nothing on classic) and a
/// FIN. With an idle `lane`, gives up once the connection's idle phase is [`Phase::Over`]: a peer end
/// that has read nothing for a whole timeout after the idle close is not reading.
///
/// # Errors
/// The socket's error; [`PumpError::EndUnsent`] when the idle watch gave up.
async fn end_stream<W>(to: &mut W, last: &[u8], lane: Option<Lane<'_>>) -> Result<(), PumpError>
where
    W: AsyncWrite + Unpin,
{
    let send = async {
        to.write_all(last).await?;
        to.shutdown().await
    };
    match lane {
        None => send.await?,
        Some(lane) => tokio::select! {
            biased;
            sent = send => sent?,
            _ = lane.past(Phase::Closing) => return Err(PumpError::EndUnsent),
        },
    }
    Ok(())
}

/// Parks until `from` has something to read, or, with an idle `lane`, until the connection's idle phase
/// moves past `seen`. `holding` says whether the direction keeps data meanwhile (part of a record), in
/// which case the connection is not idle however long the wait.
///
/// The wait is a poll, [`ReadHalf::poll_readable`], not tokio's `readable()` future: that future is 184
/// bytes, held by each direction of every parked connection for as long as it is idle, where this
/// holds its three arguments. The direction is the socket's only reader, so the one waker the socket
/// keeps is enough. A wake-up with nothing to read is the caller's to see: its read returns
/// `WouldBlock`, which clears the readiness, and it parks here again.
///
/// # Errors
/// The runtime's, once its I/O driver has shut down; the socket's own errors come from the read.
fn park<'a>(
    from: &'a ReadHalf,
    lane: Option<Lane<'a>>,
    holding: bool,
    seen: Phase,
) -> impl Future<Output = io::Result<Woken>> + 'a {
    if let Some(lane) = lane {
        if holding { lane.busy() } else { lane.quiet() }
    }
    std::future::poll_fn(move |cx| {
        if let Some(lane) = lane {
            // The phase needs no waker: the pump polls every direction after each change of phase.
            let phase = lane.phase();
            if phase > seen {
                return Poll::Ready(Ok(Woken::Idle(phase)));
            }
        }
        from.poll_readable(cx).map_ok(|()| {
            if let Some(lane) = lane {
                lane.busy();
            }
            Woken::Readable
        })
    })
}

/// Writes the parts of `buf` that `ranges` name, in order, with as few syscalls as the writer allows.
async fn write_ranges<W>(to: &mut W, buf: &[u8], ranges: &mut Vec<Range<usize>>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    /// Most slices handed to one `writev`.
    const MAX_SLICES: usize = 64;
    let mut first = 0;
    while first < ranges.len() {
        // The iovecs live on the stack of each poll, not in this future: a connection's task would
        // otherwise carry a kilobyte of them for its whole life, idle or not.
        let mut written = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = (ranges.len() - first).min(MAX_SLICES);
            for (slice, range) in slices.iter_mut().zip(&ranges[first..first + count]) {
                *slice = IoSlice::new(&buf[range.clone()]);
            }
            Pin::new(&mut *to).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let range = &mut ranges[first];
            if written >= range.len() {
                written -= range.len();
                first += 1;
            } else {
                range.start += written;
                written = 0;
            }
        }
    }
    ranges.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte counter the tests' pumps add to (an end's is in its `Stats`).
    static COUNTED: AtomicU64 = AtomicU64::new(0);
    use crate::proto::native::{self, Confirm, EphemeralKey, Initiator, Responder};
    use crate::proto::{Opened, Psk};
    use crate::tunnel::idle::{Side, Watch};
    use crate::tunnel::stream::{Stream, WriteHalf};
    use std::os::fd::AsFd;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// Native records' geometry.
    type Native = native::Sealer;

    /// One direction's record states at each end of a real native handshake: (initiator's sealer,
    /// responder's opener).
    fn native_direction() -> (native::Sealer, native::Opener) {
        let psk = Psk::from_key_file(b"idle timeout");
        let (initiator, hello) = Initiator::start(&psk, EphemeralKey::from_bytes([1; 32]));
        let keys = std::slice::from_ref(&psk);
        let (unconfirmed, msg2, _) =
            Responder::accept(keys, &hello, EphemeralKey::from_bytes([2; 32])).unwrap();
        let mut first = Vec::new();
        let client = initiator.read_response(&msg2, &mut first).expect("the same key");
        let Ok(Confirm::Confirmed { transport: server, .. }) = unconfirmed.confirm(&mut first) else {
            panic!("the whole confirmation record is in the buffer");
        };
        (client.split().0, server.split().1)
    }

    /// A connected loopback TCP pair, split: (near read half, near write half, far end).
    async fn socket_pair() -> (ReadHalf, WriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let far = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (near, _) = listener.accept().await.unwrap();
        let (r, w) = Stream::Tcp(near).into_split();
        (r, w, far)
    }

    /// The kinds of socket a direction reads from.
    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Tcp,
        Unix,
    }

    /// A connected pair of `kind`: (near end, a second descriptor for the near end's socket, far end).
    async fn connected(kind: Kind) -> (Stream, socket2::Socket, Stream) {
        let (near, far) = match kind {
            Kind::Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let far = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
                (Stream::Tcp(listener.accept().await.unwrap().0), Stream::Tcp(far))
            }
            Kind::Unix => {
                let (near, far) = tokio::net::UnixStream::pair().unwrap();
                (Stream::Unix(near), Stream::Unix(far))
            }
        };
        let second = match &near {
            Stream::Tcp(s) => s.as_fd().try_clone_to_owned(),
            Stream::Unix(s) => s.as_fd().try_clone_to_owned(),
        };
        (near, socket2::Socket::from(second.unwrap()), far)
    }

    /// A connected pair of `kind` whose near end is readable with nothing to read, as after a
    /// spurious wake-up: bytes arrive, the runtime marks the socket readable, and another descriptor
    /// for the socket takes them. Returns the near end's halves and the far end's writing half.
    async fn readable_with_nothing(kind: Kind) -> (ReadHalf, WriteHalf, WriteHalf) {
        let (near, thief, far) = connected(kind).await;
        let ((from, near_w), (_, mut far_w)) = (near.into_split(), far.into_split());
        far_w.write_all(b"taken").await.unwrap();
        std::future::poll_fn(|cx| from.poll_readable(cx)).await.unwrap();
        let mut taken = [0; 8];
        assert_eq!(std::io::Read::read(&mut &thief, &mut taken).unwrap(), 5);
        (from, near_w, far_w)
    }

    /// Polls `future` once with a waker that counts its wake-ups, then lets the runtime run what it
    /// deferred: whether it finished, and how often it asked to be polled again. A future that spins
    /// on a readiness it never clears runs out of the task's cooperative budget, which yields with a
    /// deferred wake-up, so it shows here as one.
    async fn poll_counting<F: Future>(future: Pin<&mut F>) -> (bool, usize) {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let count = std::sync::Arc::new(Count(0.into()));
        let waker = std::task::Waker::from(count.clone());
        let done = future.poll(&mut std::task::Context::from_waker(&waker)).is_ready();
        tokio::task::yield_now().await;
        (done, count.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The records a native `rx` opens from `wire`, in order, as (data, or `None` for the end).
    fn opened(rx: &mut native::Opener, wire: &mut [u8]) -> Vec<Option<Vec<u8>>> {
        let (mut records, mut at) = (Vec::new(), 0);
        while let Some(Opened { record, consumed }) = rx.open(&mut wire[at..]).unwrap() {
            records.push(match record {
                Record::Data(data) => Some(data.to_vec()),
                Record::End => None,
            });
            at += consumed;
        }
        assert_eq!(at, wire.len(), "whole records");
        records
    }

    #[tokio::test]
    async fn a_wake_up_with_nothing_to_read_parks_the_sealing_direction_again_on_tcp_and_unix() {
        for kind in [Kind::Tcp, Kind::Unix] {
            let (mut from, _near_w, mut far_w) = readable_with_nothing(kind).await;
            let (tx, mut rx) = native_direction();
            let (mut to, mut wire) = tokio::io::duplex(64 * 1024);
            let mut sealing = std::pin::pin!(seal_stream(tx, Vec::new(), &mut from, &mut to, None, &COUNTED));
            assert_eq!(
                poll_counting(sealing.as_mut()).await,
                (false, 0),
                "{kind:?}: parked again, not spinning"
            );
            far_w.write_all(b"data").await.unwrap();
            far_w.shutdown().await.unwrap();
            assert_eq!(sealing.await.unwrap(), 4, "{kind:?}: the data, then the end of stream, are seen");
            let mut records = Vec::new();
            wire.read_to_end(&mut records).await.unwrap();
            assert_eq!(opened(&mut rx, &mut records), [Some(b"data".to_vec()), None], "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_wake_up_with_nothing_to_read_parks_the_opening_direction_again_on_tcp_and_unix() {
        for kind in [Kind::Tcp, Kind::Unix] {
            let (mut from, _near_w, mut far_w) = readable_with_nothing(kind).await;
            let (mut tx, rx) = native_direction();
            let (mut to, mut plain) = tokio::io::duplex(64 * 1024);
            // With an idle lane, as under --idle-timeout: the wake-up marks it busy, the parking quiet.
            let mut watch = Watch::new(Duration::from_secs(3600));
            let lane = Some(watch.parts().0.lane(Side::Opening));
            let mut opening = std::pin::pin!(open_stream(rx, Vec::new(), &mut from, &mut to, lane, &COUNTED));
            assert_eq!(
                poll_counting(opening.as_mut()).await,
                (false, 0),
                "{kind:?}: parked again, not spinning"
            );
            let mut records = Vec::new();
            tx.seal_data(b"data", &mut records).unwrap();
            tx.seal_end(&mut records).unwrap();
            far_w.write_all(&records).await.unwrap();
            far_w.shutdown().await.unwrap();
            assert_eq!(opening.await.unwrap(), 4, "{kind:?}: the record, then the end of stream, are seen");
            let mut got = Vec::new();
            plain.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"data", "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_reset_is_an_error_for_either_direction_not_an_end() {
        for sealing in [true, false] {
            let (near, _, far) = connected(Kind::Tcp).await;
            let (mut from, _near_w) = near.into_split();
            let (far_r, far_w) = far.into_split();
            far_w.abort();
            drop(far_r);
            let (tx, rx) = native_direction();
            let (mut to, _plain) = tokio::io::duplex(1024);
            let done = match sealing {
                true => seal_stream(tx, Vec::new(), &mut from, &mut to, None, &COUNTED).await,
                false => open_stream(rx, Vec::new(), &mut from, &mut to, None, &COUNTED).await,
            };
            let reset = matches!(&done, Err(PumpError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset);
            assert!(reset, "sealing {sealing}: {done:?}");
        }
    }

    #[tokio::test]
    async fn data_from_the_peer_end_after_the_idle_close_is_refused_not_dropped() {
        let (mut peer_tx, rx) = native_direction();
        let (mut from, _near_w, mut peer) = socket_pair().await;
        let (mut to, mut plain) = tokio::io::duplex(1024);
        let mut watch = Watch::new(Duration::from_millis(20));
        let (activity, timer) = watch.parts();
        let opening =
            open_stream(rx, Vec::new(), &mut from, &mut to, Some(activity.lane(Side::Opening)), &COUNTED);
        let mut opening = std::pin::pin!(opening);
        // As the pump, except that the timer stops after the idle close: the connection is never over,
        // so the late data finds the direction still waiting for the peer end's end of stream.
        let pump = async {
            let closing = timer.next_phase(activity);
            tokio::select! {
                done = &mut opening => return done,
                phase = closing => assert_eq!(phase, Phase::Closing),
            }
            opening.await
        };
        let peer_end = async {
            let mut got = Vec::new();
            plain.read_to_end(&mut got).await.expect("the idle close half-closes the plaintext side");
            assert!(got.is_empty());
            let mut late = Vec::new();
            peer_tx.seal_data(b"late", &mut late).unwrap();
            peer.write_all(&late).await.unwrap();
            peer
        };
        let (done, _peer) = tokio::join!(pump, peer_end);
        assert!(matches!(done, Err(PumpError::DataAfterIdleClose)), "{done:?}");
    }

    #[tokio::test]
    async fn an_end_of_stream_the_peer_end_never_reads_gives_up_when_the_connection_is_over() {
        let (tx, mut peer_rx) = native_direction();
        let (mut from, _near_w, mut client) = socket_pair().await;
        // The record for these 8 bytes fills the pipe to the peer end but for 5 bytes, which the end
        // record cannot fit in; and the peer end reads nothing until the direction has given up.
        let (mut to, mut peer) = tokio::io::duplex(Native::frame_len(8) + 5);
        let mut watch = Watch::new(Duration::from_millis(20));
        let (activity, timer) = watch.parts();
        client.write_all(b"8 bytes.").await.unwrap();
        let done = {
            let lane = Some(activity.lane(Side::Sealing));
            let mut sealing = std::pin::pin!(seal_stream(tx, Vec::new(), &mut from, &mut to, lane, &COUNTED));
            // As the pump: every turn polls the direction again, so it sees each new phase.
            loop {
                tokio::select! {
                    done = &mut sealing => break done,
                    _ = timer.next_phase(activity) => {}
                }
            }
        };
        assert!(matches!(done, Err(PumpError::EndUnsent)), "{done:?}");
        assert_eq!(activity.phase(), Phase::Over);
        drop(to);
        let mut wire = Vec::new();
        peer.read_to_end(&mut wire).await.unwrap();
        let Some(Opened { record, consumed }) = peer_rx.open(&mut wire).unwrap() else { panic!("a record") };
        assert_eq!(record, Record::Data(&b"8 bytes."[..]), "the data arrived whole");
        assert!(wire.len() - consumed < Native::frame_len(0), "and no end record: {wire:?}");
    }

    #[test]
    fn a_read_fills_whole_frames_then_at_most_one_partial_one() {
        let layout = Layout { body: 100, count: 3, frame: 119 };
        assert_eq!(layout.split(250).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(layout.split(300).collect::<Vec<_>>(), [100, 100, 100]);
        assert_eq!(layout.split(7).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn bodies_sit_between_each_frames_header_and_tag() {
        let layout = Layout { body: 10, count: 2, frame: Native::frame_len(10) };
        let mut frames = vec![0u8; layout.len()];
        let mut bodies = layout.bodies::<Native>(&mut frames);
        assert!(bodies[layout.count..].iter().all(|b| b.is_empty()), "only `count` bodies are used");
        for slice in &mut bodies[..layout.count] {
            slice.fill(1);
        }
        let head = Native::BODY_OFFSET;
        let frame = [vec![0; head], vec![1; 10], vec![0; Native::frame_len(10) - head - 10]].concat();
        assert_eq!(frames, [frame.clone(), frame].concat());
    }

    #[test]
    fn native_frames_grow_to_three_of_the_largest_records_and_stay_when_reads_are_short() {
        let mut layout = Layout::first::<Native>();
        assert_eq!(
            layout,
            Layout { body: FIRST_READ, count: 1, frame: FIRST_READ + native::RECORD_OVERHEAD }
        );
        assert_eq!(layout.after::<Native>(FIRST_READ - 1), layout, "a short read keeps the layout");
        let mut seen = vec![layout];
        while layout != layout.after::<Native>(layout.room()) {
            layout = layout.after::<Native>(layout.room());
            seen.push(layout);
        }
        assert_eq!(layout.count, MIN_BATCH);
        assert_eq!(layout.len(), MAX_BUFFER, "three records of {} bytes", layout.frame);
        assert!(native::MAX_RECORD_DATA - layout.body < 16, "within a few bytes of the largest record");
        assert!(seen.windows(2).all(|w| w[1].len() > w[0].len()), "each step asks for more: {seen:?}");
    }
}
