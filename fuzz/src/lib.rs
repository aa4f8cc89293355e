//! Helpers shared by the fuzz targets: fixed keys, an in-memory handshake, a cursor over the fuzzer's
//! bytes, and a record reader that checks every opened record against what was sealed.

use spiped::proto::native::{
    Confirm, EphemeralKey, Initiator, Opener, RECORD_HEADER_LEN, RECORD_MIN_CIPHERTEXT, RECORD_OVERHEAD,
    Responder, Transport,
};
use spiped::proto::{Open, Opened, Psk, Record, RecordError};

/// The key file both ends hold. Fixed, so every run is deterministic and crashes reproduce.
pub const KEY_FILE: &[u8] = b"spiped-rs fuzzing key file: fixed, public, at least 32 bytes";
/// Key files a `-d` end holds besides [`KEY_FILE`], which no initiator here uses: the responders
/// hold all three (see [`responder_keys`]), so every hello and every y is checked under several keys.
pub const OTHER_KEY_FILES: [&[u8]; 2] =
    [b"spiped-rs fuzzing: a -d end's older key, never an initiator's", b"spiped-rs fuzzing: its newer key"];
/// Where [`KEY_FILE`]'s K sits in [`responder_keys`]: every handshake a responder accepts names it.
pub const SHARED_KEY_INDEX: usize = 1;
/// The initiator's ephemeral secret.
pub const INITIATOR_SECRET: [u8; 32] = [0x11; 32];
/// The responder's ephemeral secret.
pub const RESPONDER_SECRET: [u8; 32] = [0x22; 32];

/// K for [`KEY_FILE`].
pub fn psk() -> Psk {
    Psk::from_key_file(KEY_FILE)
}

/// The keys a `-d` end holds, in the order it tries them: [`KEY_FILE`]'s K at [`SHARED_KEY_INDEX`],
/// between the two [`OTHER_KEY_FILES`].
pub fn responder_keys() -> [Psk; 3] {
    let [older, newer] = OTHER_KEY_FILES.map(Psk::from_key_file);
    [older, psk(), newer]
}

/// The initiator's fixed ephemeral key.
pub fn initiator_key() -> EphemeralKey {
    EphemeralKey::from_bytes(INITIATOR_SECRET)
}

/// The responder's fixed ephemeral key.
pub fn responder_key() -> EphemeralKey {
    EphemeralKey::from_bytes(RESPONDER_SECRET)
}

/// A connection established in memory from the fixed keys.
pub struct Established {
    /// The `-e` end's transport, after it sealed its confirmation record.
    pub initiator: Transport,
    /// The `-d` end's transport, after that record opened.
    pub responder: Transport,
}

/// Runs the whole handshake, key confirmation included, through the public API. Every input here is
/// fixed and honest, so a failure is a bug in the protocol code, not in the fuzzer's bytes.
///
/// # Panics
/// If the honest handshake fails: a bug in the protocol code.
pub fn establish() -> Established {
    let psk = psk();
    let (initiator, hello) = Initiator::start(&psk, initiator_key());
    let (unconfirmed, msg2, key) =
        Responder::accept(&responder_keys(), &hello, responder_key()).expect("an honest hello is accepted");
    assert_eq!(key, SHARED_KEY_INDEX, "the hello was made with the shared key");
    let mut wire = Vec::new();
    let initiator = initiator.read_response(&msg2, &mut wire).expect("an honest message 2 is accepted");
    match unconfirmed.confirm(&mut wire).expect("an honest confirmation record opens") {
        Confirm::Confirmed { transport, data, consumed } => {
            assert!(data.is_empty(), "the confirmation record is empty");
            assert_eq!(consumed, wire.len(), "the confirmation record is all that was sent");
            Established { initiator, responder: transport }
        }
        Confirm::NeedMore(_) | Confirm::Park { .. } => {
            panic!("the whole confirmation record was in the buffer, a data record")
        }
    }
}

/// A cursor over the fuzzer's bytes. Reads past the end yield nothing (or zeros, where a number is
/// needed), so every input, however short, is a valid program.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    /// The next byte, if any.
    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// The next `N` bytes as a little-endian number, missing bytes read as zero.
    pub fn le<const N: usize>(&mut self) -> usize {
        self.take(N).iter().rev().fold(0, |acc, &b| acc << 8 | usize::from(b))
    }

    /// Up to `n` bytes: fewer only when the input runs out.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// Exactly `N` bytes, or `None` (consuming what is left) when fewer remain.
    pub fn array<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        self.take(N).try_into().ok()
    }

    /// Everything not yet read.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// What a sealed record must open to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// A data record and its exact body.
    Data(Vec<u8>),
    /// The end-of-stream record.
    End,
}

impl Sealed {
    fn matches(&self, record: &Record<'_>) -> bool {
        match (self, record) {
            (Sealed::Data(want), Record::Data(got)) => want == got,
            (Sealed::End, Record::End) => true,
            _ => false,
        }
    }
}

/// Drives an [`Opener`] over a byte stream that arrives in pieces, checking the invariants the API
/// promises and, when the sealed records are known, that nothing but those records ever opens, in order.
pub struct Reader<'s> {
    opener: Opener,
    /// Bytes received so far; `buf[at..]` is not yet opened.
    buf: Vec<u8>,
    at: usize,
    /// The records the peer sealed, when known: the `n`-th record opened must be `expected[n]`.
    expected: Option<&'s [Sealed]>,
    opened: usize,
    /// The first error, after which the direction is dead.
    error: Option<RecordError>,
}

impl<'s> Reader<'s> {
    /// A reader over `opener`. With `expected`, every record that opens must be the next of those.
    pub fn new(opener: Opener, expected: Option<&'s [Sealed]>) -> Self {
        Reader { opener, buf: Vec::new(), at: 0, expected, opened: 0, error: None }
    }

    /// Appends `chunk` to what has arrived and opens every whole record now in the buffer.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        self.drain();
    }

    /// How many records have opened.
    pub fn opened(&self) -> usize {
        self.opened
    }

    /// The error that killed the direction, if one did.
    pub fn error(&self) -> Option<RecordError> {
        self.error
    }

    fn drain(&mut self) {
        if let Some(first) = self.error {
            // A dead direction stays dead, whatever arrives, and opens nothing more.
            assert_eq!(
                self.opener.open(&mut self.buf[self.at..]),
                Err(RecordError::Failed),
                "after {first:?}"
            );
            return;
        }
        loop {
            let pending = self.buf.len() - self.at;
            let header =
                self.buf[self.at..].first_chunk::<RECORD_HEADER_LEN>().map(|h| u16::from_be_bytes(*h));
            let ended = self.opener.is_ended();
            match self.opener.open(&mut self.buf[self.at..]) {
                Ok(None) => {
                    // Incomplete: no header yet, or the announced record is not all here.
                    if ended {
                        assert_eq!(pending, 0, "after end-of-stream only an empty buffer waits");
                    } else if let Some(len) = header {
                        assert!(usize::from(len) >= RECORD_MIN_CIPHERTEXT);
                        assert!(
                            RECORD_HEADER_LEN + usize::from(len) > pending,
                            "a whole record was left unopened"
                        );
                    }
                    return;
                }
                Ok(Some(Opened { record, consumed })) => {
                    assert!(!ended, "a record opened after end-of-stream");
                    let len = header.expect("a record opened, so its header was there");
                    assert_eq!(
                        consumed,
                        RECORD_HEADER_LEN + usize::from(len),
                        "consumed disagrees with the header"
                    );
                    assert!(consumed <= pending);
                    match record {
                        Record::Data(data) => assert_eq!(data.len(), consumed - RECORD_OVERHEAD),
                        Record::End => {
                            assert_eq!(consumed, RECORD_OVERHEAD, "an end-of-stream has no body");
                            assert!(self.opener.is_ended());
                        }
                    }
                    if let Some(expected) = self.expected {
                        let Some(want) = expected.get(self.opened) else {
                            panic!(
                                "record {} opened, but only {} were sealed: {record:?}",
                                self.opened,
                                expected.len()
                            );
                        };
                        assert!(
                            want.matches(&record),
                            "record {} opened as {record:?}, sealed as {want:?}",
                            self.opened
                        );
                    }
                    self.opened += 1;
                    self.at += consumed;
                }
                Err(e) => {
                    assert!(
                        !matches!(
                            e,
                            RecordError::Failed | RecordError::Truncated | RecordError::SealAfterEnd
                        ),
                        "open reported {e:?} on a live direction"
                    );
                    assert_eq!(e == RecordError::AfterEnd, ended, "{e:?} with ended = {ended}");
                    if let RecordError::TooShort(len) = e {
                        assert_eq!(Some(len), header);
                        assert!(usize::from(len) < RECORD_MIN_CIPHERTEXT);
                    }
                    self.error = Some(e);
                    assert_eq!(self.opener.open(&mut self.buf[self.at..]), Err(RecordError::Failed));
                    return;
                }
            }
        }
    }

    /// The transport closed: calls [`Opener::finish`] on the leftover bytes and checks its verdict.
    /// Returns whether the stream ended cleanly.
    ///
    /// # Panics
    /// When the verdict contradicts what was opened: a bug in the protocol code.
    pub fn finish(self) -> bool {
        let leftover = &self.buf[self.at..];
        let result = self.opener.finish(leftover);
        match (self.error, self.opener.is_ended()) {
            (Some(_), _) => assert_eq!(result, Err(RecordError::Failed)),
            (None, true) => assert_eq!(result.is_ok(), leftover.is_empty(), "{result:?}"),
            (None, false) => assert_eq!(result, Err(RecordError::Truncated)),
        }
        let clean = result.is_ok();
        if clean && let Some(expected) = self.expected {
            // A clean end means every record up to and including the sealed end-of-stream arrived.
            assert_eq!(self.opened, expected.len(), "a clean end before every sealed record arrived");
            assert_eq!(expected.last(), Some(&Sealed::End));
        }
        clean
    }
}
