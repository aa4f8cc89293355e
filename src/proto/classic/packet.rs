//! Classic packets: each direction's 1060-byte frames after the handshake (the layout is in the module
//! docs). Sealing and opening work in place in the caller's buffer and allocate nothing.

use core::fmt;

use subtle::ConstantTimeEq;

use super::keys::DirectionKeys;
use super::{ENCRYPTED_LEN, MAC_LEN, MAX_DATA, PACKET_LEN};
use crate::proto::crypto::aes_ctr::{self, AesCtr};
use crate::proto::crypto::hmac::{self, HmacSha256};
use crate::proto::framing::{Open, Opened, Record, RecordError, Seal};

/// Both directions of an established classic connection.
#[derive(Debug)]
pub struct Transport {
    /// Our direction.
    sealer: Sealer,
    /// The peer's direction.
    opener: Opener,
}

impl Transport {
    /// The session from our direction's keys and the peer's.
    pub(super) fn new(ours: &DirectionKeys, theirs: &DirectionKeys) -> Self {
        Transport {
            sealer: Sealer { keys: Box::new(PacketKeys::new(ours)), ended: false },
            opener: Opener { keys: Box::new(PacketKeys::new(theirs)), failed: false },
        }
    }

    /// Separates the directions, so each can be driven by its own task.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

/// A packet number: from 0, one per packet in its direction, never wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PacketNumber(Option<u64>);

impl PacketNumber {
    /// Returns the next packet's number and moves past it.
    ///
    /// # Errors
    /// [`RecordError::CounterExhausted`] once 2^64 packets have been numbered.
    fn next(&mut self) -> Result<u64, RecordError> {
        let n = self.0.ok_or(RecordError::CounterExhausted)?;
        self.0 = n.checked_add(1);
        Ok(n)
    }
}

/// One direction's keys, expanded, and the number of its next packet.
struct PacketKeys {
    /// Encrypts (or decrypts) the padded data and the length.
    aes: aes_ctr::Backend,
    /// Authenticates the encrypted part and the packet number.
    mac: hmac::Backend,
    /// The next packet's number: its counter block and the end of its MAC'd bytes.
    next: PacketNumber,
}

impl PacketKeys {
    fn new(keys: &DirectionKeys) -> Self {
        PacketKeys {
            aes: aes_ctr::Backend::new(keys.aes()),
            mac: hmac::Backend::new(keys.mac()),
            next: PacketNumber(Some(0)),
        }
    }

    /// The tag of packet `n`'s encrypted part.
    fn tag(&self, encrypted: &[u8], n: u64) -> [u8; MAC_LEN] {
        self.mac.mac(&[encrypted, &n.to_be_bytes()])
    }
}

/// The sending direction: stream data into packets.
pub struct Sealer {
    /// The keys and the packet number, on the heap: the expanded keys are 600 bytes, and the I/O
    /// shell moves a sealer through several layers of its connection's state.
    keys: Box<PacketKeys>,
    /// Set by [`Seal::seal_end`]: the FIN follows, and no packet may.
    ended: bool,
}

impl Sealer {
    /// Appends packets carrying `data` to `out`, [`MAX_DATA`] bytes each but the last. Empty `data`
    /// appends nothing: a classic packet carries at least one byte.
    ///
    /// # Errors
    /// As [`Seal::seal_frame`]; what was appended before the error stays.
    pub fn seal_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        out.reserve(data.len().div_ceil(MAX_DATA) * PACKET_LEN);
        for chunk in data.chunks(MAX_DATA) {
            let start = out.len();
            out.resize(start + PACKET_LEN, 0);
            out[start..start + chunk.len()].copy_from_slice(chunk);
            if let Err(e) = self.seal_frame(&mut out[start..], chunk.len()) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Seal for Sealer {
    const BODY_OFFSET: usize = 0;
    const MAX_BODY: usize = MAX_DATA;

    fn frame_len(_body: usize) -> usize {
        PACKET_LEN
    }

    /// Seals packet `frame` in place: zero-pads the data, writes the length, encrypts, appends the
    /// tag.
    ///
    /// # Panics
    /// When `frame` is not [`PACKET_LEN`] bytes or `body` is not in 1..=[`MAX_DATA`] (the peer
    /// refuses an empty packet): caller bugs.
    fn seal_frame(&mut self, frame: &mut [u8], body: usize) -> Result<(), RecordError> {
        assert_eq!(frame.len(), PACKET_LEN, "a classic packet is always PACKET_LEN bytes");
        assert!((1..=MAX_DATA).contains(&body), "a classic packet carries 1..=MAX_DATA bytes");
        if self.ended {
            return Err(RecordError::SealAfterEnd);
        }
        let n = self.keys.next.next()?;
        let (encrypted, tag) = frame.split_at_mut(ENCRYPTED_LEN);
        let (data, length) = encrypted.split_at_mut(MAX_DATA);
        data[body..].fill(0);
        length.copy_from_slice(&u32::try_from(body).expect("at most MAX_DATA").to_be_bytes());
        self.keys.aes.apply(&aes_ctr::iv(n), encrypted);
        tag.copy_from_slice(&self.keys.tag(encrypted, n));
        Ok(())
    }

    fn seal_end(&mut self, _out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.ended {
            return Err(RecordError::SealAfterEnd);
        }
        self.ended = true;
        Ok(())
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("next", &self.keys.next.0).field("ended", &self.ended).finish()
    }
}

/// The receiving direction: packets back into stream data, in place.
pub struct Opener {
    /// The keys and the packet number, on the heap, as the sealer's.
    keys: Box<PacketKeys>,
    /// Set by the first refused packet: the direction is dead.
    failed: bool,
}

impl Opener {
    /// Checks and decrypts packet `packet` in place; returns its data length.
    fn open_packet(&mut self, packet: &mut [u8]) -> Result<usize, RecordError> {
        let n = self.keys.next.next()?;
        let (encrypted, tag) = packet.split_at_mut(ENCRYPTED_LEN);
        if !bool::from(self.keys.tag(encrypted, n).ct_eq(tag)) {
            return Err(RecordError::Auth);
        }
        self.keys.aes.apply(&aes_ctr::iv(n), encrypted);
        let length = encrypted.last_chunk::<4>().expect("the length ends the encrypted part");
        let length = u32::from_be_bytes(*length);
        match usize::try_from(length) {
            Ok(len @ 1..=MAX_DATA) => Ok(len),
            _ => Err(RecordError::BadLength(length)),
        }
    }
}

impl Open for Opener {
    const BODY_OFFSET: usize = 0;
    const MAX_FRAME: usize = PACKET_LEN;

    fn open<'a>(&mut self, buf: &'a mut [u8]) -> Result<Option<Opened<'a>>, RecordError> {
        if self.failed {
            return Err(RecordError::Failed);
        }
        let Some(packet) = buf.get_mut(..PACKET_LEN) else {
            return Ok(None);
        };
        match self.open_packet(packet) {
            Ok(len) => Ok(Some(Opened { record: Record::Data(&packet[..len]), consumed: PACKET_LEN })),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// A close is clean only between packets: `leftover` empty.
    fn finish(&self, leftover: &[u8]) -> Result<(), RecordError> {
        match (self.failed, leftover.is_empty()) {
            (true, _) => Err(RecordError::Failed),
            (false, true) => Ok(()),
            (false, false) => Err(RecordError::Truncated),
        }
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener").field("next", &self.keys.next.0).field("failed", &self.failed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::session_keys;
    use super::*;
    use crate::proto::Psk;

    /// The two ends of a session: (initiator's, responder's).
    fn pair() -> (Transport, Transport) {
        let (c, s) = session_keys(&Psk::from_key_file(b"packet tests"), &[7; 64], &[9; 256]);
        (Transport::new(&c, &s), Transport::new(&s, &c))
    }

    /// One packet from `tx`, carrying `body`.
    fn packet(tx: &mut Sealer, body: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; PACKET_LEN];
        frame[..body.len()].copy_from_slice(body);
        tx.seal_frame(&mut frame, body.len()).unwrap();
        frame
    }

    /// Packet number `n` of the initiator's direction, with any 1028 bytes of plaintext: a correct
    /// tag over whatever length field they hold, as only a peer with the key could make.
    fn forged(plaintext: &[u8; ENCRYPTED_LEN], n: u64) -> Vec<u8> {
        let (c, _) = session_keys(&Psk::from_key_file(b"packet tests"), &[7; 64], &[9; 256]);
        let mut keys = PacketKeys::new(&c);
        let mut frame = plaintext.to_vec();
        keys.aes.apply(&aes_ctr::iv(n), &mut frame);
        let tag = keys.tag(&frame, n);
        frame.extend_from_slice(&tag);
        frame
    }

    #[test]
    fn packets_of_every_size_round_trip_and_open_only_when_whole() {
        let (client, server) = pair();
        let ((mut tx, _), (_, mut rx)) = (client.split(), server.split());
        for len in [1, 2, 15, 16, 17, 1000, 1023, 1024] {
            let body: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut wire = packet(&mut tx, &body);
            assert_eq!(wire.len(), Sealer::frame_len(len));
            for short in [0, 1, PACKET_LEN - 1] {
                assert_eq!(
                    rx.open(&mut wire[..short].to_vec()).unwrap(),
                    None,
                    "{short} bytes are not a packet"
                );
            }
            wire.extend_from_slice(b"next");
            let opened = rx.open(&mut wire).unwrap().expect("a whole packet");
            assert_eq!(opened, Opened { record: Record::Data(&body), consumed: PACKET_LEN });
        }
    }

    #[test]
    fn padding_is_zeros_whatever_the_frame_held() {
        let (client, server) = pair();
        let ((mut tx, _), (_, mut rx)) = (client.split(), server.split());
        let mut frame = vec![0xee; PACKET_LEN];
        frame[0] = b'a';
        tx.seal_frame(&mut frame, 1).unwrap();
        // Decrypt by hand: the tag is right and every padding byte is zero.
        let (c, _) = session_keys(&Psk::from_key_file(b"packet tests"), &[7; 64], &[9; 256]);
        let mut aes = aes_ctr::Backend::new(c.aes());
        let mut plain = frame[..ENCRYPTED_LEN].to_vec();
        aes.apply(&aes_ctr::iv(0), &mut plain);
        assert_eq!(plain[0], b'a');
        assert!(plain[1..MAX_DATA].iter().all(|&b| b == 0));
        assert_eq!(plain[MAX_DATA..], 1u32.to_be_bytes());
        assert_eq!(rx.open(&mut frame).unwrap().unwrap().record, Record::Data(b"a"));
    }

    /// A length field of 0 or above 1024 is refused even under a valid tag, and kills the direction.
    #[test]
    fn lengths_0_and_1025_are_refused() {
        for (length, n) in [(0u32, 0u64), (1025, 0), (u32::MAX, 0), (0, 1)] {
            let (_, server) = pair();
            let (_, mut rx) = server.split();
            let mut plaintext = [0u8; ENCRYPTED_LEN];
            plaintext[MAX_DATA..].copy_from_slice(&length.to_be_bytes());
            if n == 1 {
                let mut good = [0u8; ENCRYPTED_LEN];
                good[MAX_DATA..].copy_from_slice(&1u32.to_be_bytes());
                assert_eq!(rx.open(&mut forged(&good, 0)).unwrap().unwrap().record, Record::Data(&[0]));
            }
            assert_eq!(rx.open(&mut forged(&plaintext, n)), Err(RecordError::BadLength(length)));
            assert_eq!(rx.open(&mut forged(&plaintext, n + 1)), Err(RecordError::Failed));
        }
        // The forgery helper makes real packets: 1024 passes.
        let (_, mut rx) = pair().1.split();
        let mut plaintext = [0u8; ENCRYPTED_LEN];
        plaintext[MAX_DATA..].copy_from_slice(&1024u32.to_be_bytes());
        assert_eq!(rx.open(&mut forged(&plaintext, 0)).unwrap().unwrap().record, Record::Data(&[0; 1024]));
    }

    /// Every flipped bit of a packet is refused, and the direction is dead afterwards.
    #[test]
    fn any_flipped_bit_is_refused() {
        let (client, _) = pair();
        let (mut tx, _) = client.split();
        let sealed = packet(&mut tx, b"some data");
        for bit in 0..PACKET_LEN * 8 {
            let (_, mut rx) = pair().1.split();
            let mut wire = sealed.clone();
            wire[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(rx.open(&mut wire), Err(RecordError::Auth), "bit {bit}");
            assert_eq!(rx.open(&mut sealed.clone()), Err(RecordError::Failed));
            assert_eq!(rx.finish(&[]), Err(RecordError::Failed));
        }
        let (_, mut rx) = pair().1.split();
        assert_eq!(rx.open(&mut sealed.clone()).unwrap().unwrap().record, Record::Data(b"some data"));
    }

    /// Packets replayed, reordered, reflected or from another session are refused.
    #[test]
    fn replayed_reordered_and_reflected_packets_are_refused() {
        let (client, server) = pair();
        let ((mut c_tx, _), (mut s_tx, _)) = (client.split(), server.split());
        let (first, second) = (packet(&mut c_tx, b"one"), packet(&mut c_tx, b"two"));
        let reflected = packet(&mut s_tx, b"one");

        let (_, mut rx) = pair().1.split();
        assert_eq!(rx.open(&mut second.clone()), Err(RecordError::Auth), "reordered");
        let (_, mut rx) = pair().1.split();
        rx.open(&mut first.clone()).unwrap().unwrap();
        assert_eq!(rx.open(&mut first.clone()), Err(RecordError::Auth), "replayed");
        let (_, mut rx) = pair().1.split();
        assert_eq!(rx.open(&mut reflected.clone()), Err(RecordError::Auth), "reflected");
        let (_, mut c_rx) = pair().0.split();
        assert_eq!(c_rx.open(&mut first.clone()), Err(RecordError::Auth), "our own packet back");
    }

    /// A close between packets is clean; inside one it is a truncation.
    #[test]
    fn finish_is_clean_only_at_a_packet_boundary() {
        let (client, server) = pair();
        let ((mut tx, _), (_, mut rx)) = (client.split(), server.split());
        assert_eq!(rx.finish(&[]), Ok(()), "no packet at all");
        let mut wire = packet(&mut tx, b"whole");
        rx.open(&mut wire).unwrap().unwrap();
        assert_eq!(rx.finish(&[]), Ok(()));
        let wire = packet(&mut tx, b"cut");
        for cut in [1, 500, PACKET_LEN - 1] {
            assert_eq!(rx.finish(&wire[..cut]), Err(RecordError::Truncated), "{cut} bytes");
        }
    }

    #[test]
    fn seal_end_appends_nothing_and_ends_the_direction() {
        let (mut tx, _) = pair().0.split();
        let mut out = Vec::new();
        tx.seal_end(&mut out).unwrap();
        assert!(out.is_empty(), "the classic end of a direction is the FIN alone");
        let mut frame = vec![0; PACKET_LEN];
        assert_eq!(tx.seal_frame(&mut frame, 1), Err(RecordError::SealAfterEnd));
        assert_eq!(tx.seal_end(&mut out), Err(RecordError::SealAfterEnd));
        assert_eq!(tx.seal_data(b"late", &mut out), Err(RecordError::SealAfterEnd));
        assert!(out.is_empty());
    }

    /// The packet number never wraps: packet 2^64 - 1 is the last either way.
    #[test]
    fn packet_numbers_never_wrap() {
        let ((mut tx, _), (_, mut rx)) = (pair().0.split(), pair().1.split());
        tx.keys.next = PacketNumber(Some(u64::MAX));
        rx.keys.next = PacketNumber(Some(u64::MAX));
        let mut last = packet(&mut tx, b"last");
        assert_eq!(rx.open(&mut last).unwrap().unwrap().record, Record::Data(b"last"));
        let mut frame = vec![0; PACKET_LEN];
        assert_eq!(tx.seal_frame(&mut frame, 1), Err(RecordError::CounterExhausted));
        assert_eq!(rx.open(&mut last), Err(RecordError::CounterExhausted));
    }

    #[test]
    #[should_panic(expected = "1..=MAX_DATA")]
    fn an_empty_packet_is_a_caller_bug() {
        let (mut tx, _) = pair().0.split();
        let _ = tx.seal_frame(&mut [0; PACKET_LEN], 0);
    }

    #[test]
    fn seal_data_cuts_at_max_data_and_sends_nothing_for_nothing() {
        let (client, server) = pair();
        let ((mut tx, _), (_, mut rx)) = (client.split(), server.split());
        let mut wire = Vec::new();
        tx.seal_data(&[], &mut wire).unwrap();
        assert!(wire.is_empty());
        tx.seal_data(&[5; 2049], &mut wire).unwrap();
        assert_eq!(wire.len(), 3 * PACKET_LEN);
        let lengths: Vec<usize> = wire
            .chunks_mut(PACKET_LEN)
            .map(|p| match rx.open(p).unwrap().unwrap().record {
                Record::Data(d) => d.len(),
                Record::End => unreachable!("classic packets carry data only"),
            })
            .collect();
        assert_eq!(lengths, [1024, 1024, 1]);
    }
}
