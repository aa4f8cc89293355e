//! Fuzzes classic spiped's handshake in both roles and its packet reader: `Initiator::read_nonce` and
//! `InitiatorAwaitingY::read_y`, `Responder::read_nonce` and `ResponderAwaitingY::read_y`, then the
//! `Opener` fed in pieces and `Opener::finish` on what is left.
//!
//! Every run uses fixed keys, nonces and Diffie-Hellman secrets; every responder holds three keys
//! (`responder_keys`), the initiator one of them, and a y it accepts must be under that one. The first byte picks a mode (modulo
//! 4); the rest is that mode's input:
//!
//! - 0, raw handshake: one byte for each end's `-f`/`-g` (modulo 3: neither, `-g`, `-f`); then, for
//!   an initiator that sent the fixed nonce_C, a nonce_S (32 bytes) and a y_S with its MAC (288); for a
//!   responder that sent the fixed nonce_S, a nonce_C and a y_C with its MAC; the rest is the packet
//!   stream for whichever end accepted, as `[n, n bytes]*` chunks. A y is accepted only if its MAC is
//!   the one an honest peer would send for those nonces, and a refusal is the one that MAC's validity
//!   and the end's `-g` call for.
//! - 1, tampered handshake: one byte for the two ends' settings (modulo 9), then masks XOR-ed over the
//!   four messages as sent (nonce_C, nonce_S, y_C and MAC, y_S and MAC). The unchanged run is accepted
//!   unless `-g` meets `-f`; any change is refused with a MAC failure by the first end to read what it
//!   altered; an accepted run carries a packet each way.
//! - 2, raw packets: `[n, n bytes]*` chunks appended to an established responder's receive buffer,
//!   every whole packet in it opened after each, so the incomplete-packet (`Ok(None)`) paths run at
//!   every offset.
//! - 3, tampered packets: the initiator's `Sealer` seals fuzzer-chosen writes, fuzzer-chosen edits
//!   (XOR, truncation, deletion, duplication, insertion) are applied to the wire, and the result is
//!   fed in fuzzer-chosen chunks. Any packet that opens must be exactly the packet sealed in that
//!   position; the unedited wire must open completely and end cleanly, whatever the chunking.
//!
//! Nothing may panic on any input; every assertion is a property of the protocol.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, HandshakeError, Initiator, MAX_DATA, NONCE_LEN, Opener, PACKET_LEN, Responder,
    Sealer, Transport, Y_AND_MAC_LEN, Y_LEN,
};
use spiped::proto::{Open, Opened, Record, RecordError, Seal};
use spiped_rs_fuzz::{Input, SHARED_KEY_INDEX, psk, responder_keys};

/// The initiator's nonce.
const NONCE_C: [u8; NONCE_LEN] = [0xc1; NONCE_LEN];
/// The responder's nonce.
const NONCE_S: [u8; NONCE_LEN] = [0x5e; NONCE_LEN];
/// The initiator's Diffie-Hellman x.
const X_C: [u8; 32] = [0x11; 32];
/// The responder's Diffie-Hellman x.
const X_S: [u8; 32] = [0x22; 32];
/// Most plaintext one run seals, to keep runs fast.
const MAX_TOTAL_PLAINTEXT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut input = Input::new(rest);
    match mode % 4 {
        0 => raw_handshake(&mut input),
        1 => tampered_handshake(&mut input),
        2 => {
            let mut reader = PacketReader::new(established().1.split().1, None);
            feed_chunks(&mut reader, &mut input);
            reader.finish();
        }
        _ => tampered_packets(&mut input),
    }
});

/// `-f`, `-g` or neither, from a byte.
fn fs(b: u8) -> ForwardSecrecy {
    match b % 3 {
        0 => ForwardSecrecy::Offer,
        1 => ForwardSecrecy::Require,
        _ => ForwardSecrecy::Skip,
    }
}

/// y = 1, as an end with `-f` sends it.
fn one() -> [u8; Y_LEN] {
    let mut one = [0; Y_LEN];
    one[Y_LEN - 1] = 1;
    one
}

/// The y an end sent is 1 exactly under `-f`.
fn check_own_y(fs: ForwardSecrecy, message: &[u8; Y_AND_MAC_LEN]) {
    assert_eq!(message[..Y_LEN] == one(), fs == ForwardSecrecy::Skip, "y = 1 exactly under -f");
}

/// The fixed honest session, `-f` at both ends (no exponentiation): (the initiator's, the
/// responder's).
fn established() -> (Transport, Transport) {
    let psk = psk();
    let (initiator, nonce_c) = Initiator::start(&psk, ForwardSecrecy::Skip, NONCE_C);
    let (responder, nonce_s) = Responder::start(&responder_keys(), ForwardSecrecy::Skip, NONCE_S);
    let (initiator, y_c) = initiator.read_nonce(&nonce_s, DhPrivate::from_bytes(X_C));
    let (server, y_s, key) = responder
        .read_nonce(&nonce_c)
        .read_y(&y_c, DhPrivate::from_bytes(X_S))
        .expect("an honest y_C is accepted");
    assert_eq!(key, SHARED_KEY_INDEX, "accepted under the shared key");
    (initiator.read_y(&y_s).expect("an honest y_S is accepted"), server)
}

/// Checks an end's verdict on a peer's y and MAC that the fuzzer wrote. The fuzzer cannot forge a MAC:
/// only an honest peer's message for these nonces verifies, which is `honest(Skip)` (y = 1, cheap) or
/// `honest(Offer)` (y from the fixed x: an exponentiation, so made only when the verdict needs it).
fn check_verdict(
    fs: ForwardSecrecy,
    message: &[u8; Y_AND_MAC_LEN],
    result: &Result<Transport, HandshakeError>,
    honest: impl Fn(ForwardSecrecy) -> [u8; Y_AND_MAC_LEN],
) {
    let is_one = message[..Y_LEN] == one();
    match result {
        Err(HandshakeError::BadMac) => {
            assert_ne!(*message, honest(ForwardSecrecy::Skip), "an honest y = 1 refused as a bad MAC");
            return;
        }
        Err(HandshakeError::NoForwardSecrecy) => assert!(is_one && fs == ForwardSecrecy::Require),
        Err(e) => panic!("{e:?}: only an honest MAC reaches the y checks, and no honest y is invalid"),
        Ok(_) => assert!(!(is_one && fs == ForwardSecrecy::Require), "-g accepted y = 1"),
    }
    let expected = if is_one { ForwardSecrecy::Skip } else { ForwardSecrecy::Offer };
    assert_eq!(*message, honest(expected), "a y with a forged MAC passed the MAC check");
}

/// Mode 0: the peer's nonce and y and MAC come from the fuzzer, for each role.
fn raw_handshake(input: &mut Input<'_>) {
    let settings = input.byte().unwrap_or(0);
    let (fs_c, fs_s) = (fs(settings), fs(settings / 3));
    let psk = psk();

    // The initiator.
    let (initiator, nonce_c) = Initiator::start(&psk, fs_c, NONCE_C);
    assert_eq!(nonce_c, NONCE_C);
    let mut accepted = None;
    if let Some(nonce_s) = input.array::<NONCE_LEN>() {
        let (initiator, y_c) = initiator.read_nonce(nonce_s, DhPrivate::from_bytes(X_C));
        check_own_y(fs_c, &y_c);
        if let Some(y_s) = input.array::<Y_AND_MAC_LEN>() {
            let result = initiator.read_y(y_s);
            // What an honest responder with this nonce_S sends after our y_C.
            let honest = |fs| {
                let (responder, _) = Responder::start(std::slice::from_ref(&psk), fs, *nonce_s);
                let responder = responder.read_nonce(&NONCE_C);
                responder.read_y(&y_c, DhPrivate::from_bytes(X_S)).expect("our own y_C verifies").1
            };
            check_verdict(fs_c, y_s, &result, honest);
            accepted = result.ok();
        }
    }

    // The responder.
    let (responder, nonce_s) = Responder::start(&responder_keys(), fs_s, NONCE_S);
    assert_eq!(nonce_s, NONCE_S);
    if let Some(nonce_c) = input.array::<NONCE_LEN>() {
        let responder = responder.read_nonce(nonce_c);
        if let Some(y_c) = input.array::<Y_AND_MAC_LEN>() {
            let result = responder.read_y(y_c, DhPrivate::from_bytes(X_S));
            if let Ok((_, y_s, key)) = &result {
                check_own_y(fs_s, y_s);
                assert_eq!(*key, SHARED_KEY_INDEX, "accepted under an unused key");
            }
            let result = result.map(|(transport, _, _)| transport);
            // What an honest initiator with this nonce_C sends after our nonce_S.
            let honest = |fs| {
                let (initiator, _) = Initiator::start(&psk, fs, *nonce_c);
                initiator.read_nonce(&NONCE_S, DhPrivate::from_bytes(X_C)).1
            };
            check_verdict(fs_s, y_c, &result, honest);
            accepted = accepted.or(result.ok());
        }
    }

    if let Some(transport) = accepted {
        let mut reader = PacketReader::new(transport.split().1, None);
        feed_chunks(&mut reader, input);
        reader.finish();
    }
}

/// XORs `mask` over the start of `bytes` (as far as both go); returns whether anything changed.
fn xor(bytes: &mut [u8], mask: &[u8]) -> bool {
    bytes.iter_mut().zip(mask).for_each(|(b, m)| *b ^= m);
    mask.iter().take(bytes.len()).any(|&m| m != 0)
}

/// Mode 1: an honest handshake with masks XOR-ed over its four messages.
fn tampered_handshake(input: &mut Input<'_>) {
    let settings = input.byte().unwrap_or(0) % 9;
    let (fs_c, fs_s) = (fs(settings), fs(settings / 3));
    let psk = psk();
    let (initiator, mut nonce_c) = Initiator::start(&psk, fs_c, NONCE_C);
    let (responder, mut nonce_s) = Responder::start(&responder_keys(), fs_s, NONCE_S);
    let altered_nonce_c = xor(&mut nonce_c, input.take(NONCE_LEN));
    let altered_nonce_s = xor(&mut nonce_s, input.take(NONCE_LEN));
    let (initiator, mut y_c) = initiator.read_nonce(&nonce_s, DhPrivate::from_bytes(X_C));
    check_own_y(fs_c, &y_c);
    let altered_y_c = xor(&mut y_c, input.take(Y_AND_MAC_LEN));
    let y_c_is_one = y_c[..Y_LEN] == one();

    // The responder reads nonce_C and y_C; a change to either, or to the nonce_S the initiator's MAC
    // key came from, fails its MAC.
    let result = responder.read_nonce(&nonce_c).read_y(&y_c, DhPrivate::from_bytes(X_S));
    let expected = if altered_nonce_c || altered_nonce_s || altered_y_c {
        Some(HandshakeError::BadMac)
    } else if fs_s == ForwardSecrecy::Require && y_c_is_one {
        Some(HandshakeError::NoForwardSecrecy)
    } else {
        None
    };
    assert_eq!(result.as_ref().err(), expected.as_ref(), "the responder's verdict");
    let Ok((server, mut y_s, key)) = result else { return };
    assert_eq!(key, SHARED_KEY_INDEX, "accepted under the shared key");
    check_own_y(fs_s, &y_s);
    let altered_y_s = xor(&mut y_s, input.take(Y_AND_MAC_LEN));
    let y_s_is_one = y_s[..Y_LEN] == one();

    let result = initiator.read_y(&y_s);
    let expected = if altered_y_s {
        Some(HandshakeError::BadMac)
    } else if fs_c == ForwardSecrecy::Require && y_s_is_one {
        Some(HandshakeError::NoForwardSecrecy)
    } else {
        None
    };
    assert_eq!(result.as_ref().err(), expected.as_ref(), "the initiator's verdict");
    let Ok(client) = result else { return };

    // Both ends derived the same keys: a packet each way opens.
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = (client.split(), server.split());
    for (tx, rx, data) in [(&mut c_tx, &mut s_rx, &b"to the -d end"[..]), (&mut s_tx, &mut c_rx, b"back")] {
        let mut wire = Vec::new();
        tx.seal_data(data, &mut wire).expect("a fresh sealer seals");
        let opened = rx.open(&mut wire).expect("an honest packet opens").expect("a whole packet");
        assert_eq!(opened, Opened { record: Record::Data(data), consumed: PACKET_LEN });
        assert_eq!(rx.finish(&[]), Ok(()));
    }
}

/// Mode 3: packets sealed as the input says, edited, fed in chunks.
fn tampered_packets(input: &mut Input<'_>) {
    let (client, server) = established();
    let (wire, sealed) = seal(client.split().0, input);
    let honest = wire.clone();
    let wire = edit(wire, input);
    let mut reader = PacketReader::new(server.split().1, Some(&sealed));
    let mut at = 0;
    while at < wire.len() {
        // A chunk: 0..=127 bytes, or 512..=65536 in steps of 512; all the rest once the input runs out.
        let n = match input.byte() {
            Some(b) if b < 0x80 => usize::from(b),
            Some(b) => (usize::from(b & 0x7f) + 1) * 512,
            None => wire.len(),
        };
        let end = wire.len().min(at + n);
        reader.feed(&wire[at..end]);
        at = end;
    }
    let (opened, error) = (reader.opened, reader.error);
    let clean = reader.finish();
    if wire == honest {
        assert_eq!(error, None, "the honest wire failed after {opened} packets");
        assert_eq!(opened, sealed.len(), "the honest wire did not open completely");
        assert!(clean, "the honest wire ends between packets");
    }
}

/// Feeds `[n, n bytes]*` chunks from the input to `reader`.
fn feed_chunks(reader: &mut PacketReader<'_>, input: &mut Input<'_>) {
    while let Some(n) = input.byte() {
        reader.feed(input.take(usize::from(n)));
    }
}

/// Seals writes as the input says: a count byte (modulo 16), then per write a kind byte and its
/// length. Returns the wire bytes and the data each packet must open to.
fn seal(mut sealer: Sealer, input: &mut Input<'_>) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut sealed = Vec::new();
    let mut budget = MAX_TOTAL_PLAINTEXT;
    let writes = input.byte().unwrap_or(0) % 16;
    for _ in 0..writes {
        let Some(kind) = input.byte() else { break };
        let before = wire.len();
        match kind % 3 {
            // seal_data, short or long (it cuts into packets of MAX_DATA).
            k @ (0 | 1) => {
                let len = if k == 0 { input.le::<1>() } else { input.le::<2>() }.min(budget);
                let data = pattern(MAX_TOTAL_PLAINTEXT - budget, len);
                budget -= len;
                sealer.seal_data(&data, &mut wire).expect("a live sealer seals");
                assert_eq!(wire.len() - before, len.div_ceil(MAX_DATA) * PACKET_LEN);
                sealed.extend(data.chunks(MAX_DATA).map(<[u8]>::to_vec));
            }
            // The in-place path the pump takes, with any body size a packet carries.
            _ => {
                let len = (input.le::<2>() % MAX_DATA + 1).min(budget.max(1));
                let body = pattern(MAX_TOTAL_PLAINTEXT - budget, len);
                budget = budget.saturating_sub(len);
                let mut frame = vec![0xa5; <Sealer as Seal>::frame_len(len)];
                frame[<Sealer as Seal>::BODY_OFFSET..][..len].copy_from_slice(&body);
                sealer.seal_frame(&mut frame, len).expect("a live sealer seals");
                wire.extend_from_slice(&frame);
                sealed.push(body);
            }
        }
    }
    (wire, sealed)
}

/// `len` bytes of plaintext starting at offset `start` of everything sealed: a pseudo-random sequence,
/// so no two packets' data are alike and a packet opened in the wrong place cannot pass for the right one.
fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|x| ((x as u32).wrapping_mul(0x9e37_79b1) >> 24) as u8).collect()
}

/// Applies edits to the wire as the input says. The first byte is the number of edits (modulo 16); each
/// is a kind byte, a 3-byte position (modulo the wire length plus one) and a 2-byte argument: the byte
/// to XOR or insert (its low byte), or the length to delete or duplicate.
fn edit(mut wire: Vec<u8>, input: &mut Input<'_>) -> Vec<u8> {
    let edits = input.byte().unwrap_or(0) % 16;
    for _ in 0..edits {
        let Some(kind) = input.byte() else { break };
        let pos = input.le::<3>() % (wire.len() + 1);
        let arg = input.le::<2>();
        let end = wire.len().min(pos + arg);
        let byte = arg.to_le_bytes()[0];
        match kind % 5 {
            0 => {
                if let Some(b) = wire.get_mut(pos) {
                    *b ^= byte;
                }
            }
            1 => wire.truncate(pos),
            2 => {
                wire.drain(pos..end);
            }
            // Replay: the bytes at pos..end again, right after themselves.
            3 => {
                let copy = wire[pos..end].to_vec();
                wire.splice(end..end, copy);
            }
            _ => wire.insert(pos, byte),
        }
    }
    wire
}

/// Drives an [`Opener`] over a byte stream that arrives in pieces, checking the invariants the API
/// promises and, when the sealed packets are known, that nothing but those packets ever opens, in
/// order.
struct PacketReader<'s> {
    opener: Opener,
    /// Bytes received so far; `buf[at..]` is not yet opened.
    buf: Vec<u8>,
    at: usize,
    /// The data of the packets the peer sealed, when known: the `n`-th packet opened must carry
    /// `expected[n]`.
    expected: Option<&'s [Vec<u8>]>,
    opened: usize,
    /// The first error, after which the direction is dead.
    error: Option<RecordError>,
}

impl<'s> PacketReader<'s> {
    fn new(opener: Opener, expected: Option<&'s [Vec<u8>]>) -> Self {
        PacketReader { opener, buf: Vec::new(), at: 0, expected, opened: 0, error: None }
    }

    /// Appends `chunk` to what has arrived and opens every whole packet now in the buffer.
    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
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
            match self.opener.open(&mut self.buf[self.at..]) {
                Ok(None) => {
                    assert!(pending < PACKET_LEN, "a whole packet was left unopened");
                    return;
                }
                Ok(Some(Opened { record, consumed })) => {
                    assert_eq!(consumed, PACKET_LEN, "a classic packet is always PACKET_LEN bytes");
                    let Record::Data(data) = record else { panic!("a classic packet opened as {record:?}") };
                    assert!((1..=MAX_DATA).contains(&data.len()), "{} bytes of data", data.len());
                    if let Some(expected) = self.expected {
                        let Some(want) = expected.get(self.opened) else {
                            panic!("packet {} opened, but only {} were sealed", self.opened, expected.len());
                        };
                        assert_eq!(data, &want[..], "packet {} opened to other data", self.opened);
                    }
                    self.opened += 1;
                    self.at += consumed;
                }
                Err(e) => {
                    // A bad length needs a valid tag (which needs the key) over it; the packet number
                    // cannot reach 2^64 here.
                    assert_eq!(e, RecordError::Auth, "open on a live direction");
                    self.error = Some(e);
                    assert_eq!(self.opener.open(&mut self.buf[self.at..]), Err(RecordError::Failed));
                    return;
                }
            }
        }
    }

    /// The transport closed: calls [`Opener::finish`] on the leftover bytes and checks its verdict.
    /// Returns whether the stream ended cleanly.
    fn finish(self) -> bool {
        let leftover = &self.buf[self.at..];
        let result = self.opener.finish(leftover);
        match self.error {
            Some(_) => assert_eq!(result, Err(RecordError::Failed)),
            None if leftover.is_empty() => assert_eq!(result, Ok(())),
            None => assert_eq!(result, Err(RecordError::Truncated)),
        }
        result.is_ok()
    }
}
