//! Both ends in memory, and against the independent `snow` implementation in both roles.

mod common;

use common::*;
use spiped::proto::native::{
    Confirm, EphemeralKey, Initiator, MAX_RECORD_DATA, ProtoError, RECORD_OVERHEAD, Responder, TYPE_DATA,
    TYPE_END,
};
use spiped::proto::{Open, Psk, Record, RecordError, Seal};

const KEY_FILE: &[u8] = b"round trip test key file, 32 bytes or more";

fn psk() -> Psk {
    Psk::from_key_file(KEY_FILE)
}

/// K computed independently of our code, for snow.
fn k() -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(KEY_FILE).into()
}

#[test]
fn both_directions_with_half_close() {
    let mut p = establish(&psk());
    let request: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();

    // The client sends its request and half-closes; the server still answers afterwards.
    let mut c2s = Vec::new();
    p.client_tx.seal_data(&request, &mut c2s).unwrap();
    p.client_tx.seal_end(&mut c2s).unwrap();
    let got = receive(&mut p.server_rx, &c2s, &[1000]);
    assert_eq!(got, Received { data: request.clone(), error: None });
    assert!(p.server_rx.is_ended());

    let mut s2c = Vec::new();
    p.server_tx.seal_data(b"reply after the client's half-close", &mut s2c).unwrap();
    p.server_tx.seal_end(&mut s2c).unwrap();
    let got = receive(&mut p.client_rx, &s2c, &[7]);
    assert_eq!(got, Received { data: b"reply after the client's half-close".to_vec(), error: None });
}

#[test]
fn stream_without_end_is_truncated_but_delivers_what_was_authenticated() {
    let mut p = establish(&psk());
    let mut wire = Vec::new();
    p.server_tx.seal_data(b"authenticated part", &mut wire).unwrap();
    let got = receive(&mut p.client_rx, &wire, &[3]);
    assert_eq!(got, Received { data: b"authenticated part".to_vec(), error: Some(RecordError::Truncated) });
}

#[test]
fn records_of_the_other_direction_are_refused() {
    let mut p = establish(&psk());
    let mut wire = Vec::new();
    p.client_tx.seal_data(b"to the server", &mut wire).unwrap();
    // Reflected back to the client, which holds the other direction's key.
    assert_eq!(p.client_rx.open(&mut wire.clone()), Err(RecordError::Auth));
}

#[test]
fn wrong_key_fails_at_message_one_and_reaches_nothing() {
    let mut rng = rand::rng();
    let (_, hello) = Initiator::start(&psk(), EphemeralKey::generate(&mut rng));
    let other = Psk::from_key_file(b"a different key file, 32 bytes or more");
    let err = Responder::accept(std::slice::from_ref(&other), &hello, EphemeralKey::generate(&mut rng))
        .unwrap_err();
    assert_eq!(err, ProtoError::HandshakeAuth);
}

#[test]
fn replayed_hello_cannot_be_confirmed() {
    let mut rng = rand::rng();
    let (initiator, hello) = Initiator::start(&psk(), EphemeralKey::generate(&mut rng));
    let (first, msg2, _) = Responder::accept(&[psk()], &hello, EphemeralKey::generate(&mut rng)).unwrap();
    let mut confirmation = Vec::new();
    initiator.read_response(&msg2, &mut confirmation).unwrap();
    assert!(matches!(first.confirm(&mut confirmation.clone()), Ok(Confirm::Confirmed { .. })));

    // An eavesdropper replays the hello and the confirmation record to a new responder. Message 1 is
    // accepted (it cannot be told from a fresh one), but the new ephemeral makes the record useless.
    let (replayed, _, _) = Responder::accept(&[psk()], &hello, EphemeralKey::generate(&mut rng)).unwrap();
    assert_eq!(replayed.confirm(&mut confirmation).unwrap_err(), ProtoError::Record(RecordError::Auth));
}

#[test]
fn confirmation_waits_for_the_whole_record() {
    let mut rng = rand::rng();
    let (initiator, hello) = Initiator::start(&psk(), EphemeralKey::generate(&mut rng));
    let (mut unconfirmed, msg2, _) =
        Responder::accept(&[psk()], &hello, EphemeralKey::generate(&mut rng)).unwrap();
    let mut wire = Vec::new();
    let (mut tx, _) = initiator.read_response(&msg2, &mut wire).unwrap().split();
    tx.seal_data(b"early data", &mut wire).unwrap();
    for cut in 0..RECORD_OVERHEAD {
        match unconfirmed.confirm(&mut wire[..cut].to_vec()).unwrap() {
            Confirm::NeedMore(u) => unconfirmed = u,
            Confirm::Confirmed { .. } | Confirm::Park { .. } => panic!("confirmed from {cut} bytes"),
        }
    }
    let Confirm::Confirmed { transport, consumed, data } = unconfirmed.confirm(&mut wire).unwrap() else {
        panic!("the record is whole");
    };
    assert_eq!((data.len(), consumed), (0, RECORD_OVERHEAD));
    let (_, mut rx) = transport.split();
    assert_eq!(rx.open(&mut wire[consumed..]).unwrap().unwrap().record, Record::Data(b"early data"));
}

#[test]
fn snow_initiator_talks_to_our_responder() {
    let psk = psk();
    let k = k();
    let mut hs = snow_builder(&k, None).build_initiator().unwrap();
    let hello = snow_hello(&mut hs);
    let (unconfirmed, msg2, _) =
        Responder::accept(std::slice::from_ref(&psk), &hello, EphemeralKey::generate(&mut rand::rng()))
            .unwrap();
    hs.read_message(&msg2, &mut []).unwrap();
    let mut snow_tx = hs.into_transport_mode().unwrap();

    let big = vec![0xa5u8; MAX_RECORD_DATA * 3];
    let mut wire = snow_record(&mut snow_tx, TYPE_DATA, b"");
    wire.extend(snow_record(&mut snow_tx, TYPE_DATA, b"hello from snow"));
    let large = vec![0x5au8; 60_000];
    wire.extend(snow_record(&mut snow_tx, TYPE_DATA, &large));
    wire.extend(snow_record(&mut snow_tx, TYPE_END, b""));
    let Confirm::Confirmed { transport, consumed, .. } = unconfirmed.confirm(&mut wire).unwrap() else {
        panic!("snow's first record is whole");
    };
    let (mut our_tx, mut our_rx) = transport.split();
    let got = receive(&mut our_rx, &wire[consumed..], &[4096]);
    assert_eq!(got.error, None);
    assert_eq!(got.data, [&b"hello from snow"[..], &large].concat());

    let mut back = Vec::new();
    our_tx.seal_data(&big, &mut back).unwrap();
    our_tx.seal_end(&mut back).unwrap();
    let records = snow_read_records(&mut snow_tx, &back);
    assert_eq!(records.len(), 4, "three full records and an end");
    assert_eq!(
        records.iter().filter(|(t, _)| *t == TYPE_DATA).flat_map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        big
    );
    assert_eq!(records.last().unwrap(), &(TYPE_END, Vec::new()));
}

#[test]
fn our_initiator_talks_to_snow_responder() {
    let psk = psk();
    let k = k();
    let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rand::rng()));
    let mut hs = snow_builder(&k, None).build_responder().unwrap();
    let msg2 = snow_msg2(&mut hs, &hello).unwrap();
    let mut wire = Vec::new();
    let (mut our_tx, mut our_rx) = initiator.read_response(&msg2, &mut wire).unwrap().split();
    our_tx.seal_data(b"hello from spiped-rs", &mut wire).unwrap();
    our_tx.seal_end(&mut wire).unwrap();
    let mut snow_ts = hs.into_transport_mode().unwrap();
    let records = snow_read_records(&mut snow_ts, &wire);
    assert_eq!(
        records,
        vec![(TYPE_DATA, vec![]), (TYPE_DATA, b"hello from spiped-rs".to_vec()), (TYPE_END, vec![])]
    );

    let mut back = snow_record(&mut snow_ts, TYPE_DATA, b"hello from snow");
    back.extend(snow_record(&mut snow_ts, TYPE_END, b""));
    assert_eq!(
        receive(&mut our_rx, &back, &[5]),
        Received { data: b"hello from snow".to_vec(), error: None }
    );
}

#[test]
fn snow_with_another_key_is_refused_both_ways() {
    let ours = psk();
    let theirs = [9u8; 32];
    let mut hs = snow_builder(&theirs, None).build_initiator().unwrap();
    let hello = snow_hello(&mut hs);
    let err =
        Responder::accept(std::slice::from_ref(&ours), &hello, EphemeralKey::generate(&mut rand::rng()))
            .unwrap_err();
    assert_eq!(err, ProtoError::HandshakeAuth);

    let (_, hello) = Initiator::start(&ours, EphemeralKey::generate(&mut rand::rng()));
    let mut hs = snow_builder(&theirs, None).build_responder().unwrap();
    assert!(snow_msg2(&mut hs, &hello).is_err(), "snow refuses our hello under another key");
}
