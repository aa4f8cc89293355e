//! Records: the framing of each direction after the handshake (docs/PROTOCOL.md, section 5).
//!
//! ```text
//! record     = length (u16, big-endian) || ciphertext
//! ciphertext = ChaCha20-Poly1305(k, n, ad = "", type || body)   (one Noise transport message)
//! ```

use core::fmt;

use super::TAG_LEN;
use super::cipher::CipherState;
use crate::proto::{Open, Opened, Record, RecordError, Seal};

/// Bytes of the length header in front of every record.
pub const RECORD_HEADER_LEN: usize = 2;
/// Smallest ciphertext: the type byte and the tag.
pub const RECORD_MIN_CIPHERTEXT: usize = 1 + TAG_LEN;
/// Largest ciphertext: what the header can express, and Noise's message limit.
pub const RECORD_MAX_CIPHERTEXT: usize = u16::MAX as usize;
/// Largest body a record can carry.
pub const RECORD_MAX_BODY: usize = RECORD_MAX_CIPHERTEXT - RECORD_MIN_CIPHERTEXT;
/// Largest record on the wire, header included: the buffer a receiver needs at most.
pub const RECORD_MAX_LEN: usize = RECORD_HEADER_LEN + RECORD_MAX_CIPHERTEXT;
/// Bytes a record adds to its data: header, type byte and tag.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + RECORD_MIN_CIPHERTEXT;
/// Most data this implementation puts in one record: the largest the wire allows. Measured with
/// iperf3 through a pair on loopback, 64 KiB records moved 3.9-5.4 Gbit/s against 3.5-4.0 with 16 KiB
/// ones. A short read still leaves at once as a short record.
pub const MAX_RECORD_DATA: usize = RECORD_MAX_BODY;

/// Type byte of a record carrying stream data.
pub const TYPE_DATA: u8 = 0x00;
/// Type byte of the authenticated end of stream for one direction.
pub const TYPE_END: u8 = 0x01;
/// Type byte of a parked connection's first record in each direction (docs/PROTOCOL.md, 4.6).
pub const TYPE_PARK: u8 = 0x02;

/// Offset of the type byte within a record.
const TYPE_OFFSET: usize = RECORD_HEADER_LEN;
/// Offset of the body within a record.
const BODY_OFFSET: usize = TYPE_OFFSET + 1;

/// Both directions of an established connection.
#[derive(Debug)]
pub struct Transport {
    sealer: Sealer,
    opener: Opener,
}

impl Transport {
    pub(crate) fn new(sealer: Sealer, opener: Opener) -> Self {
        Transport { sealer, opener }
    }

    /// Separates the directions, so each can be driven by its own task.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }

    pub(crate) fn sealer_mut(&mut self) -> &mut Sealer {
        &mut self.sealer
    }

    pub(crate) fn opener_mut(&mut self) -> &mut Opener {
        &mut self.opener
    }
}

/// The sending direction: turns stream data into records.
pub struct Sealer {
    cipher: CipherState,
    /// Set once the end-of-stream record is sealed; nothing may follow it.
    ended: bool,
}

impl Sealer {
    pub(crate) fn new(cipher: CipherState) -> Self {
        Sealer { cipher, ended: false }
    }

    /// Appends records carrying `data` to `out`, at most [`MAX_RECORD_DATA`] bytes each. Empty `data`
    /// makes one empty record.
    ///
    /// # Errors
    /// [`RecordError::SealAfterEnd`] after [`Seal::seal_end`], [`RecordError::CounterExhausted`] after
    /// 2^64 - 1 records.
    pub fn seal_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if data.is_empty() {
            return self.seal_record(TYPE_DATA, &[], out);
        }
        out.reserve(data.len() + data.len().div_ceil(MAX_RECORD_DATA) * RECORD_OVERHEAD);
        data.chunks(MAX_RECORD_DATA).try_for_each(|chunk| self.seal_record(TYPE_DATA, chunk, out))
    }

    /// Appends a [`TYPE_PARK`] record to `out`: a parked connection's first record.
    pub(crate) fn seal_park(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_record(TYPE_PARK, &[], out)
    }

    /// Seals a frame of any type byte; sealing [`TYPE_END`] finishes the direction.
    pub(crate) fn seal_kind(&mut self, kind: u8, frame: &mut [u8]) -> Result<(), RecordError> {
        assert!(
            (RECORD_OVERHEAD..=RECORD_MAX_LEN).contains(&frame.len()),
            "a frame holds header, type, body and tag, at most {RECORD_MAX_LEN} bytes"
        );
        if self.ended {
            return Err(RecordError::SealAfterEnd);
        }
        let ciphertext_len =
            u16::try_from(frame.len() - RECORD_HEADER_LEN).expect("checked against RECORD_MAX_LEN");
        let (header, rest) = frame.split_at_mut(RECORD_HEADER_LEN);
        header.copy_from_slice(&ciphertext_len.to_be_bytes());
        rest[0] = kind;
        let (plaintext, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        tag.copy_from_slice(&self.cipher.seal(&[], plaintext)?);
        self.ended = kind == TYPE_END;
        Ok(())
    }

    /// Makes the next record use counter `n` (vectors for skipped and repeated counters).
    #[cfg(test)]
    pub(crate) fn set_counter(&mut self, n: u64) {
        self.cipher.set_counter(super::cipher::Counter::starting_at(n));
    }

    fn seal_record(&mut self, kind: u8, body: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        let start = out.len();
        out.resize(start + RECORD_OVERHEAD + body.len(), 0);
        out[start + BODY_OFFSET..start + BODY_OFFSET + body.len()].copy_from_slice(body);
        let sealed = self.seal_kind(kind, &mut out[start..]);
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }
}

impl Seal for Sealer {
    const BODY_OFFSET: usize = BODY_OFFSET;
    const MAX_BODY: usize = RECORD_MAX_BODY;

    fn frame_len(body: usize) -> usize {
        RECORD_OVERHEAD + body
    }

    fn seal_frame(&mut self, frame: &mut [u8], body: usize) -> Result<(), RecordError> {
        assert_eq!(frame.len(), RECORD_OVERHEAD + body, "a frame is the body and the record's overhead");
        self.seal_kind(TYPE_DATA, frame)
    }

    /// Appends the end-of-stream record to `out`; this direction is then finished.
    fn seal_end(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.seal_record(TYPE_END, &[], out)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next", &self.cipher.counter()).field("ended", &self.ended).finish()
    }
}

/// Where the receiving direction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenerState {
    /// Records may arrive.
    Open,
    /// The peer's end-of-stream arrived; only the transport's close may follow.
    Ended,
    /// A record failed; the direction is dead.
    Failed,
}

/// The receiving direction: turns records back into stream data, in place.
pub struct Opener {
    cipher: CipherState,
    state: OpenerState,
}

/// The whole length, header included, of the record at the front of `buf`, once its header is in:
/// how much a reader must hold to open it.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let header = buf.first_chunk::<RECORD_HEADER_LEN>()?;
    Some(RECORD_HEADER_LEN + usize::from(u16::from_be_bytes(*header)))
}

impl Opener {
    pub(crate) fn new(cipher: CipherState) -> Self {
        Opener { cipher, state: OpenerState::Open }
    }

    /// Whether the peer's end-of-stream has arrived.
    pub fn is_ended(&self) -> bool {
        self.state == OpenerState::Ended
    }

    fn fail<T>(&mut self, e: RecordError) -> Result<T, RecordError> {
        self.state = OpenerState::Failed;
        Err(e)
    }

    #[cfg(test)]
    pub(crate) fn cipher_mut(&mut self) -> &mut CipherState {
        &mut self.cipher
    }
}

impl Open for Opener {
    const BODY_OFFSET: usize = BODY_OFFSET;
    const MAX_FRAME: usize = RECORD_MAX_LEN;

    /// Opens the record at the front of `buf`, decrypting it in place. `Ok(None)` means `buf` does not
    /// hold a whole record yet: read more and call again with the bytes appended.
    ///
    /// # Errors
    /// Every [`RecordError`] a record can cause; the direction is then dead and every later call fails.
    fn open<'a>(&mut self, buf: &'a mut [u8]) -> Result<Option<Opened<'a>>, RecordError> {
        match self.open_as(buf, false)? {
            None => Ok(None),
            Some((First::Record(record), consumed)) => Ok(Some(Opened { record, consumed })),
            // Never returned unless asked for: refused as out of place all the same.
            Some((First::Park, _)) => Err(RecordError::MisplacedPark),
        }
    }

    /// Called when the transport has closed, with whatever bytes were left unopened.
    ///
    /// # Errors
    /// [`RecordError::Truncated`] unless the peer's end-of-stream arrived and nothing followed it: a
    /// close without one must never pass for a clean end.
    fn finish(&self, leftover: &[u8]) -> Result<(), RecordError> {
        match self.state {
            OpenerState::Ended if leftover.is_empty() => Ok(()),
            OpenerState::Ended => Err(RecordError::AfterEnd),
            OpenerState::Open => Err(RecordError::Truncated),
            OpenerState::Failed => Err(RecordError::Failed),
        }
    }
}

/// What a direction's first record may be on a connection that may be parked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First<'a> {
    /// A [`TYPE_PARK`] record.
    Park,
    /// Any other record.
    Record(Record<'a>),
}

impl Opener {
    /// Opens the record at the front of `buf` as [`Open::open`] does, and, where `park` allows it (a
    /// direction's first record), takes a [`TYPE_PARK`] record too. Returns it with its length.
    ///
    /// # Errors
    /// As [`Open::open`], and [`RecordError::MisplacedPark`] for a park record where none may be.
    pub(crate) fn open_as<'a>(
        &mut self,
        buf: &'a mut [u8],
        park: bool,
    ) -> Result<Option<(First<'a>, usize)>, RecordError> {
        match self.state {
            OpenerState::Failed => return Err(RecordError::Failed),
            OpenerState::Ended if buf.is_empty() => return Ok(None),
            OpenerState::Ended => return self.fail(RecordError::AfterEnd),
            OpenerState::Open => {}
        }
        let Some((header, rest)) = buf.split_first_chunk_mut::<RECORD_HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u16::from_be_bytes(*header);
        if usize::from(len) < RECORD_MIN_CIPHERTEXT {
            return self.fail(RecordError::TooShort(len));
        }
        let Some(ciphertext) = rest.get_mut(..usize::from(len)) else {
            return Ok(None);
        };
        let (plaintext, tag) = ciphertext.split_at_mut(ciphertext.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("split TAG_LEN bytes off the end");
        if let Err(e) = self.cipher.open(&[], plaintext, tag) {
            return self.fail(e);
        }
        let consumed = RECORD_HEADER_LEN + usize::from(len);
        let (&mut kind, body) =
            plaintext.split_first_mut().expect("a ciphertext holds at least the type byte");
        let first = match kind {
            TYPE_DATA => First::Record(Record::Data(body)),
            TYPE_END if body.is_empty() => {
                self.state = OpenerState::Ended;
                First::Record(Record::End)
            }
            TYPE_END => return self.fail(RecordError::EndWithBody),
            TYPE_PARK if park && body.is_empty() => First::Park,
            TYPE_PARK => return self.fail(RecordError::MisplacedPark),
            other => return self.fail(RecordError::UnknownType(other)),
        };
        Ok(Some((first, consumed)))
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener").field("next", &self.cipher.counter()).field("state", &self.state).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::native::cipher::Counter;
    use crate::proto::{Open, Seal};

    fn pair() -> (Sealer, Opener) {
        (Sealer::new(CipherState::new(&[7; 32])), Opener::new(CipherState::new(&[7; 32])))
    }

    fn open_all(rx: &mut Opener, mut wire: Vec<u8>) -> Result<(Vec<u8>, bool), RecordError> {
        let (mut data, mut at) = (Vec::new(), 0);
        while let Some(opened) = rx.open(&mut wire[at..])? {
            match opened.record {
                Record::Data(d) => data.extend_from_slice(d),
                Record::End => {}
            }
            at += opened.consumed;
        }
        rx.finish(&wire[at..])?;
        Ok((data, rx.is_ended()))
    }

    #[test]
    fn data_is_chunked_at_the_maximum_and_ends_cleanly() {
        let (mut tx, mut rx) = pair();
        let data: Vec<u8> = (0..MAX_RECORD_DATA * 2 + 5).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        tx.seal_data(&data, &mut wire).unwrap();
        tx.seal_end(&mut wire).unwrap();
        assert_eq!(wire.len(), data.len() + 4 * RECORD_OVERHEAD, "three data records and an end");
        assert_eq!(open_all(&mut rx, wire), Ok((data, true)));
    }

    #[test]
    fn empty_data_is_one_empty_record() {
        let (mut tx, mut rx) = pair();
        let mut wire = Vec::new();
        tx.seal_data(&[], &mut wire).unwrap();
        assert_eq!(wire.len(), RECORD_OVERHEAD);
        assert_eq!(rx.open(&mut wire).unwrap(), Some(Opened { record: Record::Data(&[]), consumed: 19 }));
    }

    #[test]
    fn close_without_end_is_truncation() {
        let (mut tx, mut rx) = pair();
        let mut wire = Vec::new();
        tx.seal_data(b"complete record", &mut wire).unwrap();
        assert_eq!(open_all(&mut rx, wire), Err(RecordError::Truncated));
    }

    #[test]
    fn close_inside_a_record_is_truncation() {
        let (mut tx, mut rx) = pair();
        let mut wire = Vec::new();
        tx.seal_data(b"abc", &mut wire).unwrap();
        wire.truncate(wire.len() - 1);
        assert_eq!(rx.open(&mut wire).unwrap(), None);
        assert_eq!(rx.finish(&wire), Err(RecordError::Truncated));
    }

    #[test]
    fn anything_after_end_is_refused() {
        let (mut tx, mut rx) = pair();
        let mut wire = Vec::new();
        tx.seal_end(&mut wire).unwrap();
        assert_eq!(tx.seal_data(b"late", &mut wire), Err(RecordError::SealAfterEnd));
        assert_eq!(wire.len(), RECORD_OVERHEAD, "a refused seal leaves nothing behind");
        wire.push(0);
        let opened = rx.open(&mut wire).unwrap().unwrap();
        assert_eq!(opened.record, Record::End);
        assert_eq!(rx.open(&mut wire[19..]), Err(RecordError::AfterEnd));
        assert_eq!(rx.open(&mut []), Err(RecordError::Failed), "a failed direction stays failed");
    }

    #[test]
    fn short_length_unknown_type_end_with_body_and_a_stray_park_are_refused() {
        let (_, mut rx) = pair();
        assert_eq!(rx.open(&mut [0, 16, 0]), Err(RecordError::TooShort(16)));

        for (kind, body, expected) in [
            (0x03, &b""[..], RecordError::UnknownType(3)),
            (0xff, b"x", RecordError::UnknownType(0xff)),
            (TYPE_END, b"x", RecordError::EndWithBody),
            // A park record is taken only as a direction's first, and only where a caller asks.
            (TYPE_PARK, b"", RecordError::MisplacedPark),
        ] {
            let (mut tx, mut rx) = pair();
            let mut frame = vec![0; RECORD_OVERHEAD + body.len()];
            frame[BODY_OFFSET..BODY_OFFSET + body.len()].copy_from_slice(body);
            tx.seal_kind(kind, &mut frame).unwrap();
            assert_eq!(rx.open(&mut frame), Err(expected));
        }

        // Where a park record may come, one with a body is refused all the same.
        let (mut tx, mut rx) = pair();
        let mut frame = vec![0; RECORD_OVERHEAD + 1];
        tx.seal_kind(TYPE_PARK, &mut frame).unwrap();
        assert_eq!(rx.open_as(&mut frame, true), Err(RecordError::MisplacedPark));
    }

    #[test]
    fn records_out_of_order_fail() {
        let (mut tx, mut rx) = pair();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        tx.seal_data(b"first", &mut first).unwrap();
        tx.seal_data(b"second", &mut second).unwrap();
        assert_eq!(rx.open(&mut second), Err(RecordError::Auth));
    }

    #[test]
    fn a_full_size_record_from_another_implementation_is_accepted() {
        let (mut tx, mut rx) = pair();
        let mut frame = vec![0x5a; RECORD_MAX_LEN];
        tx.seal_kind(TYPE_DATA, &mut frame).unwrap();
        assert_eq!(&frame[..2], &[0xff, 0xff]);
        let opened = rx.open(&mut frame).unwrap().unwrap();
        assert_eq!(opened.consumed, RECORD_MAX_LEN);
        assert_eq!(opened.record, Record::Data(&[0x5a; RECORD_MAX_BODY][..]));
    }

    #[test]
    fn counters_stop_before_wrapping() {
        let (mut tx, mut rx) = pair();
        tx.set_counter(u64::MAX - 1);
        rx.cipher_mut().set_counter(Counter::starting_at(u64::MAX - 1));
        let mut wire = Vec::new();
        tx.seal_data(b"last", &mut wire).unwrap();
        assert_eq!(tx.seal_data(b"one too many", &mut wire), Err(RecordError::CounterExhausted));
        let opened = rx.open(&mut wire).unwrap().unwrap();
        assert_eq!(opened.record, Record::Data(b"last"));
        let mut forged = wire.clone();
        assert_eq!(rx.open(&mut forged), Err(RecordError::CounterExhausted));
    }
}
