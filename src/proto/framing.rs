//! What every protocol's established connection looks like to the I/O shell: a [`Seal`] for the sending
//! direction and an [`Open`] for the receiving one, each with its frame geometry as associated
//! constants. The pump is generic over them and monomorphised per protocol, so nothing dispatches per
//! record, and no size or offset of a frame is re-derived outside the protocol that defines it.

/// A decrypted frame's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// The next bytes of the stream (possibly none).
    Data(&'a [u8]),
    /// The sender's authenticated end of stream: nothing more comes in this direction.
    End,
}

/// A frame opened from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What the frame said, decrypted in place in the caller's buffer. Data always starts
    /// [`Open::BODY_OFFSET`] bytes into the frame.
    pub record: Record<'a>,
    /// How many bytes of the buffer the frame took; the caller discards them.
    pub consumed: usize,
}

/// Why a frame could not be sealed or opened. Each is fatal for its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A native record header announced fewer bytes than a type byte and a tag need.
    #[error("record length {0} is below the minimum of 17")]
    TooShort(u16),
    /// A classic packet's decrypted length field is 0 or more than a packet carries.
    #[error("packet length {0} is outside 1..=1024")]
    BadLength(u32),
    /// A frame failed authentication: altered, reordered, replayed, reflected or under another key.
    #[error("record authentication failed (altered, reordered, replayed or wrong key)")]
    Auth,
    /// A record decrypted to a type byte this version does not define.
    #[error("record of unknown type {0:#04x}")]
    UnknownType(u8),
    /// An end-of-stream record carried a body.
    #[error("end-of-stream record with a body")]
    EndWithBody,
    /// A park record (docs/PROTOCOL.md, 4.6) where none may be, or with a body.
    #[error("park record out of place, or with a body")]
    MisplacedPark,
    /// Bytes arrived after the peer's authenticated end-of-stream.
    #[error("data after the peer's end-of-stream")]
    AfterEnd,
    /// The transport closed where the protocol does not allow a clean end: before the native
    /// authenticated end-of-stream, or inside a classic packet.
    #[error("stream truncated: the connection closed where the protocol allows no clean end")]
    Truncated,
    /// The frame counter reached its limit.
    #[error("record counter exhausted")]
    CounterExhausted,
    /// Local misuse: data was sealed after this direction's end-of-stream.
    #[error("sealing after end-of-stream")]
    SealAfterEnd,
    /// A frame was opened after this direction already failed.
    #[error("receiving direction already failed")]
    Failed,
}

/// The sending direction of an established connection: stream data in, frames out, sealed in place.
///
/// A frame is `[BODY_OFFSET bytes | body | frame_len(body) - BODY_OFFSET - body bytes]`: the caller
/// reads plaintext straight into the body and [`Seal::seal_frame`] fills in the rest.
pub trait Seal: Send + 'static {
    /// Where the body starts within a frame.
    const BODY_OFFSET: usize;
    /// The most stream data one frame carries.
    const MAX_BODY: usize;

    /// The length on the wire of a frame carrying `body` bytes (at most [`Seal::MAX_BODY`]).
    fn frame_len(body: usize) -> usize;

    /// Seals, in place, a frame of [`Seal::frame_len`]`(body)` bytes whose body the caller has written
    /// at `BODY_OFFSET..BODY_OFFSET + body`.
    ///
    /// # Errors
    /// [`RecordError::SealAfterEnd`] after [`Seal::seal_end`], [`RecordError::CounterExhausted`] at
    /// the counter's limit. A frame of the wrong length is a caller bug and panics.
    fn seal_frame(&mut self, frame: &mut [u8], body: usize) -> Result<(), RecordError>;

    /// Appends to `out` whatever ends this direction before the transport's FIN (the native
    /// authenticated end-of-stream; nothing for classic spiped, whose end is the FIN alone).
    ///
    /// # Errors
    /// As [`Seal::seal_frame`].
    fn seal_end(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError>;
}

/// The receiving direction of an established connection: frames in, stream data out, in place.
pub trait Open: Send + 'static {
    /// Where a frame's data starts within it.
    const BODY_OFFSET: usize;
    /// The longest frame on the wire: a reader holding part of one always has room for the rest
    /// within this.
    const MAX_FRAME: usize;

    /// Opens the frame at the front of `buf`, decrypting it in place. `Ok(None)` means `buf` does not
    /// hold a whole frame yet: read more and call again with the bytes appended.
    ///
    /// # Errors
    /// Every [`RecordError`] a frame can cause; the direction is then dead and later calls fail.
    fn open<'a>(&mut self, buf: &'a mut [u8]) -> Result<Option<Opened<'a>>, RecordError>;

    /// Called when the transport has closed, with the bytes left unopened. `Ok` means the stream ended
    /// cleanly and the pump passes the end on (if no [`Record::End`] already did).
    ///
    /// # Errors
    /// [`RecordError::Truncated`] when the close is not a clean end for this protocol.
    fn finish(&self, leftover: &[u8]) -> Result<(), RecordError>;
}
