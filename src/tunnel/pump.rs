//! Moving bytes once a connection is established: plaintext in, records out, and records in,
//! plaintext out, with half-close carried across and truncation turned into an abort.

use std::io::{self, IoSlice};
use std::ops::Range;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::stream::ReadHalf;

use crate::proto::{MAX_RECORD_DATA, Opener, ProtoError, RECORD_OVERHEAD, Record, Sealer};

/// Where the body of a record starts within its frame: after the length and the type byte.
const BODY_OFFSET: usize = crate::proto::RECORD_HEADER_LEN + 1;

/// How much to ask the socket for at once on the encrypted side.
const READ_CHUNK: usize = 64 * 1024;

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

/// Reads plaintext from `from` and writes it to `to` as records, one per read, then the authenticated
/// end of stream and a FIN when `from` ends. Returns the plaintext bytes carried. The frame buffer
/// exists only while data moves: it is released whenever `from` has nothing more to give.
///
/// # Errors
/// A socket error, or a sealing error (counter exhaustion).
pub async fn seal_stream<W>(mut tx: Sealer, from: &mut ReadHalf, to: &mut W) -> Result<Carried, PumpError>
where
    W: AsyncWrite + Unpin,
{
    // One frame while data flows: each read lands where the record body goes and is sealed in place.
    let mut frame: Vec<u8> = Vec::new();
    let mut carried = 0;
    loop {
        if frame.is_empty() {
            from.readable().await?;
            frame.resize(RECORD_OVERHEAD + MAX_RECORD_DATA, 0);
        }
        let n = match from.try_read(&mut frame[BODY_OFFSET..BODY_OFFSET + MAX_RECORD_DATA]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                frame = Vec::new(); // idle: give the buffer back until data comes
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            let mut end = Vec::with_capacity(RECORD_OVERHEAD);
            tx.seal_end(&mut end)?;
            to.write_all(&end).await?;
            to.shutdown().await?;
            return Ok(carried);
        }
        let record = &mut frame[..RECORD_OVERHEAD + n];
        tx.seal_data_frame(record)?;
        to.write_all(record).await?;
        carried += n as u64;
    }
}

/// Reads records from `from` (after the `pending` bytes already read) and writes their plaintext to
/// `to`; the peer's end of stream becomes a FIN on `to`. Returns the plaintext bytes carried. The read
/// buffer holds memory only while a record is incomplete or data is arriving.
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
        }
        from.readable().await?;
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(READ_CHUNK);
        }
        match from.try_read_buf(&mut buf) {
            Ok(0) => {
                rx.finish(&buf)?;
                return Ok(carried);
            }
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
        let slices: Vec<IoSlice<'_>> =
            ranges[first..].iter().take(MAX_SLICES).map(|r| IoSlice::new(&buf[r.clone()])).collect();
        let mut written = to.write_vectored(&slices).await?;
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
