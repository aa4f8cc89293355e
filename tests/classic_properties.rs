//! Property tests of the classic protocol, both ends in memory: any data in any chunking arrives as
//! sent; a close is clean exactly at a packet boundary and a truncation anywhere else; any single
//! flipped bit of the handshake or of the packets is refused, never accepted, never a panic.

mod common;

use common::key_set;
use proptest::prelude::*;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, HandshakeError, Initiator, MAX_DATA, NONCE_LEN, Opener, PACKET_LEN, Responder,
    Sealer, Y_AND_MAC_LEN,
};
use spiped::proto::{Open, Psk, Record, RecordError};

fn psk() -> Psk {
    Psk::from_key_file(b"classic property tests: any length will do")
}

/// The pairs of `-f`/`-g` settings that make a session (`-g` against `-f` is refused by design):
/// (the initiator's, the responder's).
fn settings() -> impl Strategy<Value = (ForwardSecrecy, ForwardSecrecy)> {
    use ForwardSecrecy::{Offer, Require, Skip};
    prop::sample::select(vec![
        (Offer, Offer),
        (Offer, Require),
        (Require, Offer),
        (Require, Require),
        (Skip, Skip),
        (Skip, Offer),
        (Offer, Skip),
    ])
}

/// What each end draws at random: its nonce and its Diffie-Hellman x.
#[derive(Debug, Clone)]
struct Randomness {
    nonce_c: [u8; NONCE_LEN],
    nonce_s: [u8; NONCE_LEN],
    x_c: [u8; 32],
    x_s: [u8; 32],
}

fn randomness() -> impl Strategy<Value = Randomness> {
    any::<([u8; NONCE_LEN], [u8; NONCE_LEN], [u8; 32], [u8; 32])>()
        .prop_map(|(nonce_c, nonce_s, x_c, x_s)| Randomness { nonce_c, nonce_s, x_c, x_s })
}

/// Both ends' directions after a handshake.
struct Ends {
    client: (Sealer, Opener),
    server: (Sealer, Opener),
}

/// The handshake's four messages as sent, with `bit` (counted over nonce_C || y_C || nonce_S || y_S,
/// each end's wire in turn) flipped on the way; returns how it ended. The messages go in spiped's
/// order: both nonces, y_C, then y_S.
fn handshake(
    settings: (ForwardSecrecy, ForwardSecrecy),
    r: &Randomness,
    bit: Option<usize>,
) -> Result<Ends, HandshakeError> {
    among(settings, r, bit, &psk(), &[psk()]).map(|(ends, _)| ends)
}

/// As [`handshake`], with the initiator under `psk_c` and the responder holding `keys`: also
/// returns the index of the key the responder reports.
fn among(
    (fs_c, fs_s): (ForwardSecrecy, ForwardSecrecy),
    r: &Randomness,
    bit: Option<usize>,
    psk_c: &Psk,
    keys: &[Psk],
) -> Result<(Ends, usize), HandshakeError> {
    const SIDE: usize = NONCE_LEN + Y_AND_MAC_LEN;
    let flip = |at: usize, bytes: &mut [u8]| {
        if let Some(bit) = bit
            && (at * 8..(at + bytes.len()) * 8).contains(&bit)
        {
            bytes[bit / 8 - at] ^= 1 << (bit % 8);
        }
    };
    let (initiator, mut nonce_c) = Initiator::start(psk_c, fs_c, r.nonce_c);
    let (responder, mut nonce_s) = Responder::start(keys, fs_s, r.nonce_s);
    flip(0, &mut nonce_c);
    flip(SIDE, &mut nonce_s);
    let (initiator, mut y_c) = initiator.read_nonce(&nonce_s, DhPrivate::from_bytes(r.x_c));
    flip(NONCE_LEN, &mut y_c);
    let (server, mut y_s, index) =
        responder.read_nonce(&nonce_c).read_y(&y_c, DhPrivate::from_bytes(r.x_s))?;
    flip(SIDE + NONCE_LEN, &mut y_s);
    let client = initiator.read_y(&y_s)?;
    Ok((Ends { client: client.split(), server: server.split() }, index))
}

/// A sequence of writes, each sealed as it comes, as the pump seals its reads.
fn writes() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..100),
            2 => prop::collection::vec(any::<u8>(), 1000..1100),
            1 => prop::collection::vec(any::<u8>(), 0..9000),
        ],
        0..8,
    )
}

/// Seals `writes` with `tx`: the wire, and each packet's data in order.
fn seal(tx: &mut Sealer, writes: &[Vec<u8>]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    for w in writes {
        tx.seal_data(w, &mut wire).unwrap();
    }
    let packets = writes.iter().flat_map(|w| w.chunks(MAX_DATA)).map(<[u8]>::to_vec).collect();
    (wire, packets)
}

/// What a receiver made of a byte stream that has ended.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    data: Vec<u8>,
    /// The first error, if any: the data before it was delivered, nothing after.
    error: Option<RecordError>,
}

/// Feeds `stream` to `rx` in pieces of the given sizes (cycled), as a socket might deliver it,
/// opening whatever is whole after each, then reports the end of the stream.
fn receive(rx: &mut Opener, stream: &[u8], pieces: &[usize]) -> Received {
    let mut buf = Vec::new();
    let mut data = Vec::new();
    let mut fed = 0;
    let mut sizes = pieces.iter().copied().cycle();
    loop {
        loop {
            match rx.open(&mut buf) {
                Ok(Some(opened)) => {
                    let Record::Data(d) = opened.record else { panic!("classic packets carry data only") };
                    assert!(!d.is_empty() && d.len() <= MAX_DATA);
                    data.extend_from_slice(d);
                    let consumed = opened.consumed;
                    assert_eq!(consumed, PACKET_LEN);
                    buf.drain(..consumed);
                }
                Ok(None) => {
                    assert!(buf.len() < PACKET_LEN, "a whole packet left unopened");
                    break;
                }
                Err(e) => return Received { data, error: Some(e) },
            }
        }
        if fed == stream.len() {
            return Received { data, error: rx.finish(&buf).err() };
        }
        let n = sizes.next().unwrap_or(stream.len()).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Either direction, any data, any chunking, the stream closed at any byte: the whole packets
    /// before the close arrive as sent; the close is clean exactly at a packet boundary.
    #[test]
    fn any_chunking_delivers_what_was_sent_and_only_a_close_between_packets_is_clean(
        settings in settings(),
        r in randomness(),
        writes in writes(),
        pieces in prop::collection::vec(1usize..3000, 1..8),
        from_responder in any::<bool>(),
        close_at in 0..3u8,
        close in any::<prop::sample::Index>(),
    ) {
        let Ends { mut client, mut server } = handshake(settings, &r, None).unwrap();
        let (tx, rx) = if from_responder { (&mut server.0, &mut client.1) } else { (&mut client.0, &mut server.1) };
        let (wire, packets) = seal(tx, &writes);
        prop_assert_eq!(wire.len(), packets.len() * PACKET_LEN);
        // A third of the cases close after the last byte, a third at another packet boundary, the
        // rest at any byte (a boundary would be rare).
        let close = match close_at {
            0 => wire.len(),
            1 => close.index(packets.len() + 1) * PACKET_LEN,
            _ => close.index(wire.len() + 1),
        };
        let got = receive(rx, &wire[..close], &pieces);
        prop_assert_eq!(got.data, packets[..close / PACKET_LEN].concat());
        let expected = if close % PACKET_LEN == 0 { None } else { Some(RecordError::Truncated) };
        prop_assert_eq!(got.error, expected, "closed after {} of {} bytes", close, wire.len());
    }

    /// A responder holding any set of keys accepts an initiator under any one of them and names it
    /// (the first copy, if the set holds it twice); the session carries data both ways. An initiator
    /// under a key outside the set is refused at its MAC.
    #[test]
    fn a_responder_accepts_any_key_of_its_set_and_names_it(
        settings in settings(),
        r in randomness(),
        set in key_set(),
        to_responder in writes(),
        to_initiator in writes(),
    ) {
        let (Ends { mut client, mut server }, index) = among(settings, &r, None, &set.member, &set.keys).unwrap();
        prop_assert_eq!(index, set.index);
        for (tx, rx, writes) in [(&mut client.0, &mut server.1, &to_responder), (&mut server.0, &mut client.1, &to_initiator)] {
            let (wire, _) = seal(tx, writes);
            let got = receive(rx, &wire, &[wire.len().max(1)]);
            prop_assert_eq!(got, Received { data: writes.concat(), error: None });
        }
        prop_assert_eq!(among(settings, &r, None, &set.stranger, &set.keys).err(), Some(HandshakeError::BadMac));
    }

    /// Any single bit flipped in any of the four handshake messages: the end that reads the altered
    /// bytes (or the y made from them) refuses the MAC.
    #[test]
    fn a_flipped_bit_in_the_handshake_is_refused(
        settings in settings(),
        r in randomness(),
        bit in 0..2 * (NONCE_LEN + Y_AND_MAC_LEN) * 8,
    ) {
        prop_assert_eq!(handshake(settings, &r, Some(bit)).err(), Some(HandshakeError::BadMac));
    }

    /// Any single bit flipped anywhere in the packets: the packets before the altered one arrive,
    /// then the direction is refused, whatever the chunking.
    #[test]
    fn a_flipped_bit_in_the_packets_is_refused(
        settings in settings(),
        r in randomness(),
        writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..3000), 1..5),
        bit in any::<prop::sample::Index>(),
        pieces in prop::collection::vec(1usize..3000, 1..4),
        from_responder in any::<bool>(),
    ) {
        let Ends { mut client, mut server } = handshake(settings, &r, None).unwrap();
        let (tx, rx) = if from_responder { (&mut server.0, &mut client.1) } else { (&mut client.0, &mut server.1) };
        let (mut wire, packets) = seal(tx, &writes);
        let bit = bit.index(wire.len() * 8);
        wire[bit / 8] ^= 1 << (bit % 8);
        let got = receive(rx, &wire, &pieces);
        prop_assert_eq!(got.error, Some(RecordError::Auth), "flipping bit {} went unnoticed", bit);
        prop_assert_eq!(got.data, packets[..bit / 8 / PACKET_LEN].concat());
    }
}
