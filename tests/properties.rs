//! Property tests: any delivery of a valid stream decodes to the same plaintext; any single bit flip is
//! refused and never yields plaintext that was not sent.

mod common;

use common::*;
use proptest::prelude::*;
use spiped::proto::native::{
    Accepted, Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, ProtoError, Responder, Wake,
};
use spiped::proto::{Psk, Seal};

fn psk() -> Psk {
    Psk::from_key_file(b"property test key file, 32 bytes or more")
}

/// A sequence of writes: each one sealed as it comes, like a daemon forwarding reads.
fn writes() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..64),
            1 => prop::collection::vec(any::<u8>(), 0..40_000),
        ],
        0..8,
    )
}

/// Seals `writes` with the client's sealer, ending the stream if `end`.
fn seal(pair: &mut Pair, writes: &[Vec<u8>], end: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    for w in writes {
        pair.client_tx.seal_data(w, &mut wire).unwrap();
    }
    if end {
        pair.client_tx.seal_end(&mut wire).unwrap();
    }
    wire
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_decodes_to_the_same_plaintext(
        writes in writes(),
        pieces in prop::collection::vec(1usize..70_000, 1..16),
        end in any::<bool>(),
    ) {
        let mut pair = establish(&psk());
        let wire = seal(&mut pair, &writes, end);
        let got = receive(&mut pair.server_rx, &wire, &pieces);
        prop_assert_eq!(got.data, writes.concat());
        prop_assert_eq!(got.error, if end { None } else { Some(spiped::proto::RecordError::Truncated) });
    }

    #[test]
    fn a_flipped_bit_in_the_records_is_refused_and_never_yields_wrong_plaintext(
        writes in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..6),
        bit in any::<prop::sample::Index>(),
        pieces in prop::collection::vec(1usize..5000, 1..4),
    ) {
        let mut pair = establish(&psk());
        let mut wire = seal(&mut pair, &writes, true);
        let bit = bit.index(wire.len() * 8);
        wire[bit / 8] ^= 1 << (bit % 8);
        let got = receive(&mut pair.server_rx, &wire, &pieces);
        prop_assert!(got.error.is_some(), "flipping bit {} went unnoticed", bit);
        prop_assert!(writes.concat().starts_with(&got.data), "delivered bytes that were never sent");
    }

    #[test]
    fn a_flipped_bit_in_the_handshake_is_refused(
        ei in any::<[u8; 32]>(),
        er in any::<[u8; 32]>(),
        bit in 0..(HELLO_LEN + MSG2_LEN) * 8,
    ) {
        let psk = psk();
        let (initiator, mut hello) = Initiator::start(&psk, EphemeralKey::from_bytes(ei));
        if bit < HELLO_LEN * 8 {
            hello[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Responder::accept(std::slice::from_ref(&psk), &hello, EphemeralKey::from_bytes(er)).is_err());
        } else {
            let (_, mut msg2, _) = Responder::accept(std::slice::from_ref(&psk), &hello, EphemeralKey::from_bytes(er)).unwrap();
            let bit = bit - HELLO_LEN * 8;
            msg2[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(initiator.read_response(&msg2, &mut Vec::new()).is_err());
        }
    }

    /// A responder holding any set of keys accepts an initiator under any one of them and names it
    /// (the first copy, if the set holds it twice); the session carries data both ways. An initiator
    /// under a key outside the set is refused at message 1.
    #[test]
    fn a_responder_accepts_any_key_of_its_set_and_names_it(
        ei in any::<[u8; 32]>(),
        er in any::<[u8; 32]>(),
        set in key_set(),
        to_responder in writes(),
        to_initiator in writes(),
    ) {
        let (initiator, hello) = Initiator::start(&set.member, EphemeralKey::from_bytes(ei));
        let (unconfirmed, msg2, index) = Responder::accept(&set.keys, &hello, EphemeralKey::from_bytes(er)).unwrap();
        prop_assert_eq!(index, set.index);
        let mut i2r = Vec::new();
        let (mut client_tx, mut client_rx) = initiator.read_response(&msg2, &mut i2r).unwrap().split();
        for w in &to_responder {
            client_tx.seal_data(w, &mut i2r).unwrap();
        }
        let Confirm::Confirmed { transport, consumed, .. } = unconfirmed.confirm(&mut i2r).unwrap() else {
            panic!("the whole confirmation record is in the buffer");
        };
        let (mut server_tx, mut server_rx) = transport.split();
        let got = receive(&mut server_rx, &i2r[consumed..], &[i2r.len()]);
        prop_assert_eq!(got.data, to_responder.concat());
        let mut r2i = Vec::new();
        for w in &to_initiator {
            server_tx.seal_data(w, &mut r2i).unwrap();
        }
        server_tx.seal_end(&mut r2i).unwrap();
        prop_assert_eq!(receive(&mut client_rx, &r2i, &[r2i.len().max(1)]), Received { data: to_initiator.concat(), error: None });
        let (_, hello) = Initiator::start(&set.stranger, EphemeralKey::from_bytes(ei));
        let refused = Responder::accept(&set.keys, &hello, EphemeralKey::from_bytes(er)).map(|(_, _, index)| index);
        prop_assert_eq!(refused, Err(ProtoError::HandshakeAuth));
    }

    /// A parked connection (docs/PROTOCOL.md 4.6), put to use, carries any writes as any other
    /// connection does, whatever the chunks they arrive in; the records that park it and put it to
    /// use carry nothing of the stream.
    #[test]
    fn a_parked_connection_put_to_use_carries_the_same_plaintext(
        writes in writes(),
        pieces in prop::collection::vec(1usize..70_000, 1..16),
    ) {
        let mut rng = rand::rng();
        let (initiator, hello) = Initiator::start(&psk(), EphemeralKey::generate(&mut rng));
        let (unconfirmed, msg2, _) = Responder::accept(&[psk()], &hello, EphemeralKey::generate(&mut rng)).unwrap();
        let mut i2r = Vec::new();
        let spare = initiator.read_response_parked(&msg2, &mut i2r).unwrap();
        let Confirm::Park { request, consumed } = unconfirmed.confirm(&mut i2r).unwrap() else {
            panic!("a park request");
        };
        i2r.drain(..consumed);
        let mut r2i = Vec::new();
        let parked = request.accept(&mut r2i).unwrap();
        let Accepted::Ready { ready, .. } = spare.accepted(&mut r2i).unwrap() else { panic!("parked") };
        let (mut tx, _) = ready.take(&mut i2r).unwrap().split();
        for w in &writes {
            tx.seal_data(w, &mut i2r).unwrap();
        }
        tx.seal_end(&mut i2r).unwrap();
        let Wake::Used { transport, data, consumed } = parked.wake(&mut i2r).unwrap() else { panic!("used") };
        prop_assert!(data.is_empty());
        let (_, mut rx) = transport.split();
        let got = receive(&mut rx, &i2r[consumed..], &pieces);
        prop_assert_eq!(got, Received { data: writes.concat(), error: None });
    }
}
