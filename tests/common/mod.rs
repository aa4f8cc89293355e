//! Helpers shared by the protocol tests: both ends in memory, the `snow` crate as an independent
//! Noise implementation configured for the same protocol, and the key sets of the property tests.

#![allow(dead_code)]

use proptest::prelude::*;
use spiped::proto::native::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, Opener, PREAMBLE, PROLOGUE, PROTOCOL_NAME,
    Responder, Sealer,
};
use spiped::proto::{Open, Psk, Record, RecordError};

/// Both ends of one connection: the initiator's and the responder's directions.
pub struct Pair {
    pub client_tx: Sealer,
    pub client_rx: Opener,
    pub server_tx: Sealer,
    pub server_rx: Opener,
}

/// Runs a whole handshake in memory with fresh random ephemerals; the confirmation record is consumed.
pub fn establish(psk: &Psk) -> Pair {
    let mut rng = rand::rng();
    let (initiator, hello) = Initiator::start(psk, EphemeralKey::generate(&mut rng));
    let (unconfirmed, msg2, _) =
        Responder::accept(std::slice::from_ref(psk), &hello, EphemeralKey::generate(&mut rng)).unwrap();
    let mut first = Vec::new();
    let (client_tx, client_rx) = initiator.read_response(&msg2, &mut first).unwrap().split();
    let Confirm::Confirmed { transport, data, consumed } = unconfirmed.confirm(&mut first).unwrap() else {
        panic!("the confirmation record is whole");
    };
    assert!(data.is_empty(), "the confirmation record is empty");
    assert_eq!(consumed, spiped::proto::native::RECORD_OVERHEAD);
    let (server_tx, server_rx) = transport.split();
    Pair { client_tx, client_rx, server_tx, server_rx }
}

/// What a receiver made of a byte stream that has ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    pub data: Vec<u8>,
    /// The first error, if any: the data before it was delivered, nothing after.
    pub error: Option<RecordError>,
}

/// Feeds `stream` to `rx` in pieces of the given sizes (cycled), as a socket might deliver it, then
/// reports the end of the stream.
pub fn receive(rx: &mut Opener, stream: &[u8], pieces: &[usize]) -> Received {
    let mut buf = Vec::new();
    let mut data = Vec::new();
    let mut fed = 0;
    let mut sizes = pieces.iter().copied().filter(|&n| n > 0).cycle();
    loop {
        loop {
            match rx.open(&mut buf) {
                Ok(Some(opened)) => {
                    if let Record::Data(d) = opened.record {
                        data.extend_from_slice(d);
                    }
                    let consumed = opened.consumed;
                    buf.drain(..consumed);
                }
                Ok(None) => break,
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

/// A snow handshake builder for our protocol.
pub fn snow_builder<'a>(psk: &'a [u8; 32], fixed_ephemeral: Option<&'a [u8; 32]>) -> snow::Builder<'a> {
    let name = std::str::from_utf8(PROTOCOL_NAME).unwrap();
    let mut builder =
        snow::Builder::new(name.parse().unwrap()).psk(0, psk).unwrap().prologue(PROLOGUE).unwrap();
    if let Some(e) = fixed_ephemeral {
        builder = builder.fixed_ephemeral_key_for_testing_only(e);
    }
    builder
}

/// snow as the initiator: our hello (preamble + message 1).
pub fn snow_hello(hs: &mut snow::HandshakeState) -> [u8; HELLO_LEN] {
    let mut hello = [0u8; HELLO_LEN];
    hello[..PREAMBLE.len()].copy_from_slice(&PREAMBLE);
    let n = hs.write_message(&[], &mut hello[PREAMBLE.len()..]).unwrap();
    assert_eq!(PREAMBLE.len() + n, HELLO_LEN);
    hello
}

/// snow as the responder: message 2 after reading our hello.
pub fn snow_msg2(
    hs: &mut snow::HandshakeState,
    hello: &[u8; HELLO_LEN],
) -> Result<[u8; MSG2_LEN], snow::Error> {
    assert_eq!(&hello[..PREAMBLE.len()], &PREAMBLE);
    let mut payload = [0u8; 0];
    hs.read_message(&hello[PREAMBLE.len()..], &mut payload)?;
    let mut msg2 = [0u8; MSG2_LEN];
    let n = hs.write_message(&[], &mut msg2)?;
    assert_eq!(n, MSG2_LEN);
    Ok(msg2)
}

/// One record written by snow: length header, then the Noise transport message of `type || body`.
pub fn snow_record(ts: &mut snow::TransportState, kind: u8, body: &[u8]) -> Vec<u8> {
    let plaintext = [&[kind], body].concat();
    let mut message = vec![0u8; plaintext.len() + 16];
    let n = ts.write_message(&plaintext, &mut message).unwrap();
    [&u16::try_from(n).unwrap().to_be_bytes()[..], &message[..n]].concat()
}

/// Reads every record of `stream` with snow, returning `(type, body)` pairs.
pub fn snow_read_records(ts: &mut snow::TransportState, mut stream: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let len = usize::from(u16::from_be_bytes([stream[0], stream[1]]));
        let mut plaintext = vec![0u8; len];
        let n = ts.read_message(&stream[2..2 + len], &mut plaintext).unwrap();
        out.push((plaintext[0], plaintext[1..n].to_vec()));
        stream = &stream[2 + len..];
    }
    out
}

/// A responder's key set for a property test, the key an initiator holds, and one it must refuse.
#[derive(Debug, Clone)]
pub struct KeySetCase {
    /// The key files, shown when a case fails (a [`Psk`] prints nothing of itself).
    pub files: Vec<Vec<u8>>,
    /// The set, in the order the responder tries it.
    pub keys: Vec<Psk>,
    /// The key the initiator holds.
    pub member: Psk,
    /// Where the responder must report it: its first copy in the set.
    pub index: usize,
    /// A key outside the set: its file is longer than every file of the set.
    pub stranger: Psk,
}

/// One to five keys from any files (perhaps the same file twice), and a random member of the set.
pub fn key_set() -> impl Strategy<Value = KeySetCase> {
    let files = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..6);
    (files, any::<prop::sample::Index>()).prop_map(|(files, member)| {
        let keys: Vec<Psk> = files.iter().map(|file| Psk::from_key_file(file)).collect();
        let member = keys[member.index(keys.len())].clone();
        let index = keys.iter().position(|k| *k == member).expect("the member is in the set");
        let stranger = Psk::from_key_file(&[files.concat(), b"!".to_vec()].concat());
        KeySetCase { files, keys, member, index, stranger }
    })
}
