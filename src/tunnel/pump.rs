//! Moving bytes once a connection is established: plaintext in, records out, and records in,
//! plaintext out, with half-close carried across and truncation turned into an abort.

use std::io::{self, IoSlice, IoSliceMut};
use std::ops::Range;
use std::pin::Pin;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::stream::ReadHalf;

use crate::proto::{MAX_RECORD_DATA, Opener, ProtoError, RECORD_MAX_LEN, RECORD_OVERHEAD, Record, Sealer};

/// Where the body of a record starts within its frame: after the length and the type byte.
const BODY_OFFSET: usize = crate::proto::RECORD_HEADER_LEN + 1;

/// The first read of a burst asks for this much: a small write costs a small buffer.
const FIRST_READ: usize = 4 * 1024;
/// The most memory one direction of a connection holds for data in flight, whatever its peers do: with
/// the connection's other state, a reader that stops reading pins less than 256 KiB on each end
/// (docs/performance.md has the figures). Three 64 KiB records per syscall run as fast as eight did.
pub const MAX_BUFFER: usize = 192 * 1024;
/// Most records sealed from one read, and sent with one write, while reads keep coming back full.
const MAX_BATCH: usize = 3;
/// The largest record body the sealing side makes: [`MAX_BATCH`] whole frames fit in [`MAX_BUFFER`]
/// (a byte short of the wire's largest, [`MAX_RECORD_DATA`]).
const MAX_BODY: usize = MAX_BUFFER / MAX_BATCH - RECORD_OVERHEAD;
/// Most bytes asked of the socket at once on the encrypted side.
const MAX_READ: usize = MAX_BUFFER;

// The frames are records the wire can carry, within a few bytes of the largest; and the opening side,
// which holds at most part of one record between reads, always has room to read the rest of it.
const _: () = assert!(MAX_BODY <= MAX_RECORD_DATA && MAX_RECORD_DATA - MAX_BODY < 16);
const _: () = assert!(RECORD_MAX_LEN < MAX_BUFFER);

/// Why a direction stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// A socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer's records were not acceptable: tampering, truncation or a protocol error.
    #[error("{0}")]
    Proto(#[from] ProtoError),
}

/// Bytes a direction carried, for the log.
pub type Carried = u64;

/// Reads plaintext from `from` and writes it to `to` as records, then the authenticated end of stream
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
pub async fn seal_stream<W>(
    mut tx: Sealer,
    mut prefix: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
) -> Result<Carried, PumpError>
where
    W: AsyncWrite + Unpin,
{
    // Frames side by side, `[header | type | body | tag]`: one read scatters into the bodies, each is
    // sealed in place, and the records, contiguous up to the last, leave in one write.
    let mut frames: Vec<u8> = Vec::new();
    let mut layout = Layout::FIRST;
    let mut carried = 0;
    loop {
        if frames.is_empty() && prefix.is_empty() {
            from.readable().await?;
        }
        frames.resize(layout.len(), 0);
        let read = from.try_read_vectored(&mut layout.bodies(&mut frames)[..layout.count]);
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !prefix.is_empty() {
                    to.write_all(&prefix).await?;
                    prefix = Vec::new();
                }
                frames = Vec::new(); // idle: give the buffer back until data comes
                layout = Layout::FIRST;
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
            let frame = &mut frames[sent..sent + RECORD_OVERHEAD + body];
            tx.seal_data_frame(frame)?;
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
        layout = layout.after(n);
    }
}

/// How the sealing side's buffer is cut into frames: `count` frames with room for `body` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    body: usize,
    count: usize,
}

impl Layout {
    /// A burst starts with one small frame.
    const FIRST: Layout = Layout { body: FIRST_READ, count: 1 };

    fn frame(self) -> usize {
        RECORD_OVERHEAD + self.body
    }

    fn len(self) -> usize {
        self.count * self.frame()
    }

    /// The most one read can bring: every body full.
    fn room(self) -> usize {
        self.count * self.body
    }

    /// The body of each frame, for one scattering read, in a fixed array so that a read allocates
    /// nothing: the first `count` are the bodies, the rest empty.
    fn bodies(self, frames: &mut [u8]) -> [IoSliceMut<'_>; MAX_BATCH] {
        let mut frames = frames.chunks_exact_mut(self.frame());
        core::array::from_fn(|_| match frames.next() {
            Some(frame) => IoSliceMut::new(&mut frame[BODY_OFFSET..BODY_OFFSET + self.body]),
            None => IoSliceMut::new(&mut []),
        })
    }

    /// The body lengths a read of `n` bytes filled: whole frames, then perhaps a partial one.
    fn split(self, n: usize) -> impl Iterator<Item = usize> {
        let whole = n / self.body;
        let rest = n % self.body;
        core::iter::repeat_n(self.body, whole).chain((rest > 0).then_some(rest))
    }

    /// The layout for the next read: larger frames, then more of them, while reads fill the buffer.
    fn after(self, n: usize) -> Layout {
        match self {
            _ if n < self.room() => self,
            Layout { body, count } if body < MAX_BODY => Layout { body: (body * 4).min(MAX_BODY), count },
            Layout { body, count } => Layout { body, count: (count * 2).min(MAX_BATCH) },
        }
    }
}

/// Reads records from `from` (after the `pending` bytes already read) and writes their plaintext to
/// `to`; the peer's end of stream becomes a FIN on `to`. Returns the plaintext bytes carried. The read
/// buffer holds memory only while a record is incomplete or data is arriving; it starts small and
/// grows while reads come back full.
///
/// # Errors
/// A socket error, or a record error, including [`ProtoError::Truncated`] when `from` closes without
/// an authenticated end of stream. The caller then aborts `to` rather than closing it cleanly.
pub async fn open_stream<W>(
    mut rx: Opener,
    pending: Vec<u8>,
    from: &mut ReadHalf,
    to: &mut W,
) -> Result<Carried, PumpError>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = pending;
    let mut want = FIRST_READ;
    let mut carried = 0;
    // Where the opened records' data lies in `buf`: written together, in one syscall when possible.
    let mut ranges: Vec<Range<usize>> = Vec::new();
    loop {
        let mut at = 0;
        let mut ended = false;
        while let Some(opened) = rx.open(&mut buf[at..])? {
            match opened.record {
                Record::Data(data) if !data.is_empty() => {
                    let start = at + BODY_OFFSET;
                    ranges.push(start..start + data.len());
                    carried += data.len() as u64;
                }
                Record::Data(_) => {}
                Record::End => ended = true,
            }
            at += opened.consumed;
        }
        write_ranges(to, &buf, &mut ranges).await?;
        if ended {
            to.shutdown().await?;
        }
        buf.drain(..at);
        if buf.is_empty() {
            buf = Vec::new(); // nothing pending: hold no memory while the peer is quiet
            want = FIRST_READ;
        }
        from.readable().await?;
        // What is left is less than one record, so there is always room for the rest of it.
        let room = want.min(MAX_BUFFER - buf.len());
        if buf.capacity() - buf.len() < room {
            buf.reserve_exact(room);
        }
        let room = buf.capacity() - buf.len();
        match from.try_read_buf(&mut buf) {
            Ok(0) => {
                rx.finish(&buf)?;
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

    #[test]
    fn a_read_fills_whole_frames_then_at_most_one_partial_one() {
        let layout = Layout { body: 100, count: 3 };
        assert_eq!(layout.split(250).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(layout.split(300).collect::<Vec<_>>(), [100, 100, 100]);
        assert_eq!(layout.split(7).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn bodies_sit_between_each_frames_header_and_tag() {
        let layout = Layout { body: 10, count: 2 };
        let mut frames = vec![0u8; layout.len()];
        let mut bodies = layout.bodies(&mut frames);
        assert!(bodies[layout.count..].iter().all(|b| b.is_empty()), "only `count` bodies are used");
        for slice in &mut bodies[..layout.count] {
            slice.fill(1);
        }
        let frame = [vec![0; BODY_OFFSET], vec![1; 10], vec![0; RECORD_OVERHEAD - BODY_OFFSET]].concat();
        assert_eq!(frames, [frame.clone(), frame].concat());
    }

    #[test]
    fn frames_grow_while_reads_come_back_full_and_stay_when_they_do_not() {
        let mut layout = Layout::FIRST;
        assert_eq!(layout.after(FIRST_READ - 1), layout, "a short read keeps the layout");
        let mut seen = vec![layout];
        while layout != layout.after(layout.room()) {
            layout = layout.after(layout.room());
            seen.push(layout);
        }
        assert_eq!(layout, Layout { body: MAX_BODY, count: MAX_BATCH });
        assert!(seen.windows(2).all(|w| w[1].len() > w[0].len()), "each step asks for more: {seen:?}");
        assert!(layout.len() <= MAX_BUFFER, "a stalled reader pins at most MAX_BUFFER");
    }
}
