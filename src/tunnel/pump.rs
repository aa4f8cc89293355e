//! Moving bytes once a connection is established: plaintext in, records out, and records in,
//! plaintext out, with half-close carried across and truncation turned into an abort.

use std::io::{self, IoSlice, IoSliceMut};
use std::ops::Range;
use std::pin::Pin;

use tokio::io::{AsyncWrite, AsyncWriteExt};

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
/// # Errors
/// A socket error, or a sealing error (counter exhaustion).
pub async fn seal_stream<S, W>(
    mut tx: S,
    mut prefix: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
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
        if frames.is_empty() && prefix.is_empty() {
            from.readable().await?;
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
            tx.seal_end(&mut prefix)?;
            to.write_all(&prefix).await?;
            to.shutdown().await?;
            return Ok(carried);
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
        layout = layout.after::<S>(n);
    }
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
/// # Errors
/// A socket error, or a record error, including [`RecordError::Truncated`] when `from` closes where the
/// protocol allows no clean end. The caller then aborts `to` rather than closing it cleanly.
pub async fn open_stream<O, W>(
    mut rx: O,
    pending: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
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
    // Set once the peer's end of stream has been passed on as a FIN.
    let mut ended = false;
    loop {
        let mut at = 0;
        let mut ending = false;
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
        write_ranges(to, &buf, &mut ranges).await?;
        if ending {
            to.shutdown().await?;
            ended = true;
        }
        buf.drain(..at);
        if buf.is_empty() {
            buf = Vec::new(); // nothing pending: hold no memory while the peer is quiet
            want = FIRST_READ;
        }
        from.readable().await?;
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
                return Ok(carried);
            }
            Ok(n) if n == room => want = (want * 2).min(MAX_READ), // more is waiting: ask for more
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
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
    use crate::proto::native;

    /// Native records' geometry.
    type Native = native::Sealer;

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
