//! Known-answer replay of the classic sessions in `tests/vectors/classic/`, captured between two
//! unmodified Debian spiped 1.6.2 processes (its README says what each holds and what a replaying test
//! should check). Every capture is played through `spiped::proto::classic` in each role the capture
//! determines:
//!
//! - sessions with `-f` on either end (their session keys follow from the key file and the nonces):
//!   our nonces, and our y and MAC wherever our end sends y = 1, equal the wire bytes; every packet
//!   opens to the captured plaintext and re-seals byte for byte under the same packet number; each
//!   direction ends cleanly at the FIN;
//! - `e_dh`, a real Diffie-Hellman exchange: both y MACs verify and both y are in 2..p-2; the packets
//!   are whole and, without the secret exponents, open under no key we derive;
//! - the `fail_*` sessions: our code refuses at the step spiped did, with the matching error;
//! - mutations of our own: a flipped bit anywhere in a nonce, a y, a MAC or a packet, reordered,
//!   replayed, dropped and reflected packets, and length fields of 0 and 1025 under a valid MAC.
//!
//! The oracle values of each file are re-derived here with the `sha2` and `hmac` crates directly
//! (PBKDF2 with one iteration is one HMAC per 32-byte block), independently of the classic module.

use std::path::{Path, PathBuf};

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use sha2::Digest;
use spiped::proto::classic::{
    DhPrivate, ForwardSecrecy, HandshakeError, Initiator, MAX_DATA, NONCE_LEN, Opener, PACKET_LEN, Responder,
    Sealer, Transport, Y_AND_MAC_LEN, Y_LEN,
};
use spiped::proto::{Open, Psk, Record, RecordError, Seal};

/// Where the handshake ends and packets start in each direction: nonce, y, MAC.
const HANDSHAKE_LEN: usize = NONCE_LEN + Y_AND_MAC_LEN;

/// RFC 3526 group 14's prime, big-endian.
const P_HEX: &str = concat!(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
);

/// One capture file (the README's "Fields").
#[derive(Deserialize)]
struct Capture {
    name: String,
    key_file_hex: String,
    responder_key_file_hex: Option<String>,
    initiator_flags: Vec<String>,
    responder_flags: Vec<String>,
    initiator_to_responder: Direction,
    responder_to_initiator: Direction,
    fails: Option<String>,
    oracle: Oracle,
}

#[derive(Deserialize)]
struct Direction {
    wire_hex: String,
    plaintext_hex: String,
    ended_with_fin: bool,
}

#[derive(Deserialize)]
struct Oracle {
    #[serde(rename = "K_hex")]
    k_hex: String,
    nonce_c_hex: String,
    nonce_s_hex: String,
    dk_1_hex: String,
    dhmac_c_hex: String,
    dhmac_s_hex: String,
    y_c_hex: Option<String>,
    y_c_mac_hex: Option<String>,
    y_s_hex: Option<String>,
    y_s_mac_hex: Option<String>,
    y_sc_hex: Option<String>,
    dk_2_hex: Option<String>,
    e_c_hex: Option<String>,
    h_c_hex: Option<String>,
    e_s_hex: Option<String>,
    h_s_hex: Option<String>,
    packets: Option<Packets>,
    packet_counts: Option<PacketCounts>,
    fully_checkable: bool,
    #[serde(rename = "responder_K_hex")]
    responder_k_hex: Option<String>,
    responder_dhmac_c_hex: Option<String>,
}

#[derive(Deserialize)]
struct Packets {
    i2r: Vec<PacketVector>,
    r2i: Vec<PacketVector>,
}

#[derive(Deserialize)]
struct PacketVector {
    packet_number: u64,
    data_len: usize,
    data_hex: String,
    decrypted_hex: String,
}

#[derive(Deserialize)]
struct PacketCounts {
    i2r: usize,
    r2i: usize,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/classic")
}

fn load(name: &str) -> Capture {
    let path = dir().join(format!("{name}.json"));
    let capture: Capture = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(capture.name, name);
    capture
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap()
}

fn fs(flags: &[String]) -> ForwardSecrecy {
    match (flags.iter().any(|f| f == "-f"), flags.iter().any(|f| f == "-g")) {
        (true, false) => ForwardSecrecy::Skip,
        (false, true) => ForwardSecrecy::Require,
        (false, false) => ForwardSecrecy::Offer,
        (true, true) => panic!("spiped refuses -f with -g"),
    }
}

fn fresh_private() -> DhPrivate {
    DhPrivate::generate(&mut rand::rng())
}

/// HMAC-SHA256 with the `hmac` crate.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with one iteration: block i (from 1) is HMAC(password, salt || i).
fn pbkdf2_once(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let blocks = (1..=len.div_ceil(32) as u32).flat_map(|i| hmac_sha256(password, &[salt, &i.to_be_bytes()]));
    blocks.take(len).collect()
}

/// A capture's bytes, parsed once.
struct Session {
    capture: Capture,
    /// K of the initiator's key file, and of the responder's (another in `fail_wrong_key` only).
    psk_c: Psk,
    psk_s: Psk,
    nonce_c: [u8; NONCE_LEN],
    nonce_s: [u8; NONCE_LEN],
    /// Each direction's whole wire.
    i2r: Vec<u8>,
    r2i: Vec<u8>,
}

impl Session {
    /// Loads `name` and checks the oracle's derivations against our own reading of them.
    fn load(name: &str) -> Session {
        let capture = load(name);
        let key_c = unhex(&capture.key_file_hex);
        let key_s = capture.responder_key_file_hex.as_deref().map_or_else(|| key_c.clone(), unhex);
        let (i2r, r2i) = (
            unhex(&capture.initiator_to_responder.wire_hex),
            unhex(&capture.responder_to_initiator.wire_hex),
        );
        let o = &capture.oracle;
        let k = sha2::Sha256::digest(&key_c).to_vec();
        assert_eq!(hex::encode(&k), o.k_hex, "K = SHA-256(key file)");
        assert_eq!(&i2r[..NONCE_LEN], &unhex(&o.nonce_c_hex)[..], "nonce_C opens the -e end's stream");
        assert_eq!(&r2i[..NONCE_LEN], &unhex(&o.nonce_s_hex)[..], "nonce_S opens the -d end's stream");
        let nonces = [&i2r[..NONCE_LEN], &r2i[..NONCE_LEN]].concat();
        let dk_1 = pbkdf2_once(&k, &nonces, 64);
        assert_eq!(hex::encode(&dk_1), o.dk_1_hex);
        assert_eq!(hex::encode(&dk_1[..32]), o.dhmac_c_hex);
        assert_eq!(hex::encode(&dk_1[32..]), o.dhmac_s_hex);
        if let Some(y_sc) = &o.y_sc_hex {
            let dk_2 = pbkdf2_once(&k, &[&nonces[..], &unhex(y_sc)].concat(), 128);
            assert_eq!(Some(hex::encode(&dk_2)), o.dk_2_hex);
            let quarters: Vec<String> = dk_2.chunks(32).map(hex::encode).collect();
            let oracle = [&o.e_c_hex, &o.h_c_hex, &o.e_s_hex, &o.h_s_hex].map(|q| q.clone().unwrap());
            assert_eq!(quarters, oracle, "dk_2's quarters are e_C, h_C, e_S, h_S");
        }
        if let Some(k_s) = &o.responder_k_hex {
            let k_s_ours = sha2::Sha256::digest(&key_s).to_vec();
            assert_eq!(&hex::encode(&k_s_ours), k_s);
            let dhmac_c = &pbkdf2_once(&k_s_ours, &nonces, 64)[..32];
            assert_eq!(Some(hex::encode(dhmac_c)), o.responder_dhmac_c_hex);
        }
        Session {
            psk_c: Psk::from_key_file(&key_c),
            psk_s: Psk::from_key_file(&key_s),
            nonce_c: array(&i2r[..NONCE_LEN]),
            nonce_s: array(&r2i[..NONCE_LEN]),
            capture,
            i2r,
            r2i,
        }
    }

    fn fs_c(&self) -> ForwardSecrecy {
        fs(&self.capture.initiator_flags)
    }

    fn fs_s(&self) -> ForwardSecrecy {
        fs(&self.capture.responder_flags)
    }

    /// A direction's y and MAC as sent, checked against the oracle's.
    fn y(&self, wire: &[u8], y_hex: &Option<String>, mac_hex: &Option<String>) -> [u8; Y_AND_MAC_LEN] {
        let message: [u8; Y_AND_MAC_LEN] = array(&wire[NONCE_LEN..HANDSHAKE_LEN]);
        assert_eq!(Some(hex::encode(&message[..Y_LEN])), *y_hex);
        assert_eq!(Some(hex::encode(&message[Y_LEN..])), *mac_hex);
        message
    }

    fn y_c(&self) -> [u8; Y_AND_MAC_LEN] {
        self.y(&self.i2r, &self.capture.oracle.y_c_hex, &self.capture.oracle.y_c_mac_hex)
    }

    fn y_s(&self) -> [u8; Y_AND_MAC_LEN] {
        self.y(&self.r2i, &self.capture.oracle.y_s_hex, &self.capture.oracle.y_s_mac_hex)
    }

    /// Plays the `-e` end: our nonce (the captured one), then our y and MAC, which must be the
    /// captured ones when they are determined (y = 1); then the responder's y, with `y_s` in its
    /// place.
    fn as_initiator(
        &self,
        fs: ForwardSecrecy,
        y_s: &[u8; Y_AND_MAC_LEN],
    ) -> Result<Transport, HandshakeError> {
        let (initiator, nonce) = Initiator::start(&self.psk_c, fs, self.nonce_c);
        assert_eq!(nonce, self.nonce_c);
        let (initiator, y_c) = initiator.read_nonce(&self.nonce_s, fresh_private());
        if fs == ForwardSecrecy::Skip {
            assert_eq!(hex::encode(y_c), hex::encode(&self.i2r[NONCE_LEN..HANDSHAKE_LEN]), "our y_C = 1");
        }
        initiator.read_y(y_s)
    }

    /// Plays the `-d` end: our nonce, then the initiator's y (`y_c`), then our y and MAC, which must
    /// be the captured ones when they are determined.
    fn as_responder(
        &self,
        fs: ForwardSecrecy,
        y_c: &[u8; Y_AND_MAC_LEN],
    ) -> Result<Transport, HandshakeError> {
        let (responder, nonce) = Responder::start(std::slice::from_ref(&self.psk_s), fs, self.nonce_s);
        assert_eq!(nonce, self.nonce_s);
        let (server, y_s, _) = responder.read_nonce(&self.nonce_c).read_y(y_c, fresh_private())?;
        if fs == ForwardSecrecy::Skip {
            assert_eq!(hex::encode(y_s), hex::encode(&self.r2i[NONCE_LEN..HANDSHAKE_LEN]), "our y_S = 1");
        }
        Ok(server)
    }

    /// Both ends, in the captured roles and flags: (the initiator's, the responder's).
    fn both_ends(&self) -> ((Sealer, Opener), (Sealer, Opener)) {
        let client = self.as_initiator(self.fs_c(), &self.y_s()).expect("the captured y_S is accepted");
        let server = self.as_responder(self.fs_s(), &self.y_c()).expect("the captured y_C is accepted");
        (client.split(), server.split())
    }
}

/// One direction replayed: every packet opens to its captured data, re-seals to its captured bytes,
/// and the direction ends cleanly where the capture ended.
fn replay_direction(
    what: &str,
    wire: &[u8],
    d: &Direction,
    packets: &[PacketVector],
    tx: &mut Sealer,
    rx: &mut Opener,
) {
    assert!(d.ended_with_fin, "{what}: spiped ended the direction with a FIN");
    let mut stream = wire[HANDSHAKE_LEN..].to_vec();
    assert_eq!(stream.len(), packets.len() * PACKET_LEN, "{what}: whole packets only");
    let mut received = Vec::new();
    let mut at = 0;
    for (n, p) in packets.iter().enumerate() {
        assert_eq!(p.packet_number, n as u64);
        let captured = stream[at..at + PACKET_LEN].to_vec();
        let opened = rx.open(&mut stream[at..]).unwrap().expect("a whole packet");
        assert_eq!(opened.consumed, PACKET_LEN);
        let Record::Data(data) = opened.record else { panic!("{what}: classic packets carry data only") };
        assert_eq!(data.len(), p.data_len, "{what} packet {n}");
        assert_eq!(hex::encode(data), p.data_hex, "{what} packet {n} opens to the captured data");
        let mut frame = vec![0u8; PACKET_LEN];
        frame[<Sealer as Seal>::BODY_OFFSET..][..data.len()].copy_from_slice(data);
        tx.seal_frame(&mut frame, data.len()).unwrap();
        assert_eq!(hex::encode(&frame), hex::encode(&captured), "{what} packet {n} re-seals byte for byte");
        received.extend_from_slice(data);
        at += PACKET_LEN;
    }
    assert_eq!(hex::encode(&received), d.plaintext_hex, "{what}: the stream is the captured plaintext");
    assert_eq!(rx.open(&mut stream[at..]), Ok(None), "{what}: nothing after the last packet");
    assert_eq!(rx.finish(&stream[at..]), Ok(()), "{what}: a clean end at the FIN");
}

/// A session whose keys follow from K and the nonces, replayed in both roles and both directions.
fn replay(name: &str) {
    let s = Session::load(name);
    let o = &s.capture.oracle;
    assert!(o.fully_checkable && o.y_sc_hex.is_some(), "{name} has recoverable session keys");
    assert_eq!(o.y_sc_hex.as_deref(), Some(&*hex::encode(one())), "y_SC = 1 under -f");
    assert!(s.capture.fails.is_none());
    let packets = o.packets.as_ref().unwrap();
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = s.both_ends();
    let (i2r, r2i) = (&s.capture.initiator_to_responder, &s.capture.responder_to_initiator);
    replay_direction("i2r", &s.i2r, i2r, &packets.i2r, &mut c_tx, &mut s_rx);
    replay_direction("r2i", &s.r2i, r2i, &packets.r2i, &mut s_tx, &mut c_rx);
}

/// y = 1, big-endian.
fn one() -> [u8; Y_LEN] {
    let mut one = [0; Y_LEN];
    one[Y_LEN - 1] = 1;
    one
}

#[test]
fn a_fast_both() {
    replay("a_fast_both");
}

#[test]
fn b_fast_packets() {
    replay("b_fast_packets");
}

#[test]
fn b_fast_empty_client() {
    replay("b_fast_empty_client");
}

#[test]
fn c_fast_initiator_only() {
    replay("c_fast_initiator_only");
}

#[test]
fn d_fast_responder_only() {
    replay("d_fast_responder_only");
}

#[test]
fn key_1byte() {
    replay("key_1byte");
}

#[test]
fn key_100bytes() {
    replay("key_100bytes");
}

/// A real Diffie-Hellman exchange: the handshake verifies without the exponents, y is in range, the
/// packets are whole, and the keys our own exponents give open none of them.
#[test]
fn e_dh() {
    let s = Session::load("e_dh");
    let o = &s.capture.oracle;
    assert!(!o.fully_checkable && o.y_sc_hex.is_none() && o.packets.is_none());
    let (y_c, y_s) = (s.y_c(), s.y_s());
    let dk_1 = unhex(&o.dk_1_hex);
    assert_eq!(hmac_sha256(&dk_1[..32], &[&y_c[..Y_LEN]])[..], y_c[Y_LEN..], "y_C's MAC under dhmac_C");
    assert_eq!(hmac_sha256(&dk_1[32..], &[&y_s[..Y_LEN]])[..], y_s[Y_LEN..], "y_S's MAC under dhmac_S");
    let mut p_minus_2 = unhex(P_HEX);
    *p_minus_2.last_mut().unwrap() -= 2;
    for y in [&y_c[..Y_LEN], &y_s[..Y_LEN]] {
        assert!(y >= &one()[..] && y != &one()[..], "y >= 2");
        assert!(y <= &p_minus_2[..], "y <= p - 2");
    }

    let client = s.as_initiator(ForwardSecrecy::Offer, &y_s).expect("our -e accepts the captured y_S");
    let server = s.as_responder(ForwardSecrecy::Offer, &y_c).expect("our -d accepts the captured y_C");
    let counts = o.packet_counts.as_ref().unwrap();
    for (what, wire, count, mut rx) in
        [("i2r", &s.i2r, counts.i2r, server.split().1), ("r2i", &s.r2i, counts.r2i, client.split().1)]
    {
        let mut packets = wire[HANDSHAKE_LEN..].to_vec();
        assert!(count > 0);
        assert_eq!(packets.len(), count * PACKET_LEN, "{what}: whole packets, then the FIN");
        assert_eq!(rx.open(&mut packets), Err(RecordError::Auth), "{what}: not under keys from our own y");
    }
    // Neither y is 1, so ends with -g accept them too.
    s.as_initiator(ForwardSecrecy::Require, &y_s).expect("y_S is not 1");
    s.as_responder(ForwardSecrecy::Require, &y_c).expect("y_C is not 1");
}

/// The -d end with -g refuses the -e end's y_C = 1 and sends nothing after its nonce.
#[test]
fn fail_g_responder() {
    let s = Session::load("fail_g_responder");
    assert_eq!(s.capture.fails.as_deref(), Some("responder refuses y_C = 1 (-g)"));
    assert_eq!((s.fs_c(), s.fs_s()), (ForwardSecrecy::Skip, ForwardSecrecy::Require));
    assert_eq!(s.i2r.len(), HANDSHAKE_LEN, "the -e end sent its nonce and y, then its FIN");
    assert_eq!(s.r2i.len(), NONCE_LEN, "the -d end sent its nonce only");
    let y_c = s.y_c();
    assert_eq!(&y_c[..Y_LEN], one());
    assert_eq!(s.as_responder(ForwardSecrecy::Require, &y_c).err(), Some(HandshakeError::NoForwardSecrecy));
    // Our -e end with -f sends the same y_C; a -d end without -g would have accepted it.
    let (initiator, _) = Initiator::start(&s.psk_c, ForwardSecrecy::Skip, s.nonce_c);
    assert_eq!(initiator.read_nonce(&s.nonce_s, fresh_private()).1, y_c);
    s.as_responder(ForwardSecrecy::Offer, &y_c).expect("accepted without -g");
}

/// The -e end with -g refuses the -d end's y_S = 1 and sends nothing after its y.
#[test]
fn fail_g_initiator() {
    let s = Session::load("fail_g_initiator");
    assert_eq!(s.capture.fails.as_deref(), Some("initiator refuses y_S = 1 (-g)"));
    assert_eq!((s.fs_c(), s.fs_s()), (ForwardSecrecy::Require, ForwardSecrecy::Skip));
    assert_eq!(s.i2r.len(), HANDSHAKE_LEN, "the -e end sent its nonce and y, then its FIN");
    assert_eq!(s.r2i.len(), HANDSHAKE_LEN, "the -d end sent its nonce and y");
    let y_s = s.y_s();
    assert_eq!(&y_s[..Y_LEN], one());
    // Our -d end with -f accepts the captured (real) y_C and answers with exactly the captured y_S.
    s.as_responder(ForwardSecrecy::Skip, &s.y_c()).expect("the -d end accepted y_C");
    assert_eq!(s.as_initiator(ForwardSecrecy::Require, &y_s).err(), Some(HandshakeError::NoForwardSecrecy));
    s.as_initiator(ForwardSecrecy::Offer, &y_s).expect("accepted without -g");
}

/// A -d end with another key finds y_C's MAC wrong and sends nothing after its nonce.
#[test]
fn fail_wrong_key() {
    let s = Session::load("fail_wrong_key");
    assert_eq!(s.capture.fails.as_deref(), Some("responder finds the y_C MAC wrong"));
    assert_ne!(s.psk_c, s.psk_s);
    assert_eq!(s.i2r.len(), HANDSHAKE_LEN);
    assert_eq!(s.r2i.len(), NONCE_LEN, "the -d end sent its nonce only");
    let y_c = s.y_c();
    assert_eq!(s.as_responder(s.fs_s(), &y_c).err(), Some(HandshakeError::BadMac));
    // The same bytes under the initiator's key are accepted: the key alone made the difference.
    let (responder, _) = Responder::start(std::slice::from_ref(&s.psk_c), s.fs_s(), s.nonce_s);
    responder.read_nonce(&s.nonce_c).read_y(&y_c, fresh_private()).expect("the right key accepts y_C");
    let (initiator, _) = Initiator::start(&s.psk_c, s.fs_c(), s.nonce_c);
    assert_eq!(initiator.read_nonce(&s.nonce_s, fresh_private()).1, y_c, "our -e end sends the same y_C");
}

/// spiped 1.6's y_C from the same capture, read by a -d end holding both keys (its own first): it
/// verifies under the second, the index says so, and the session under it carries data both ways.
#[test]
fn fail_wrong_key_is_accepted_by_a_responder_holding_both_keys() {
    let s = Session::load("fail_wrong_key");
    let keys = [s.psk_s.clone(), s.psk_c.clone()];
    let (responder, _) = Responder::start(&keys, s.fs_s(), s.nonce_s);
    let (server, y_s, index) =
        responder.read_nonce(&s.nonce_c).read_y(&s.y_c(), fresh_private()).expect("the second key verifies");
    assert_eq!(index, 1);
    // Both ends ran with -f, so our -e end under the initiator's key completes from the same nonces.
    let (initiator, _) = Initiator::start(&s.psk_c, s.fs_c(), s.nonce_c);
    let client = initiator.read_nonce(&s.nonce_s, fresh_private()).0.read_y(&y_s).expect("y_S verifies");
    let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = (client.split(), server.split());
    for (tx, rx, data) in [(&mut c_tx, &mut s_rx, &b"PING\r\n"[..]), (&mut s_tx, &mut c_rx, b"+PONG\r\n")] {
        let mut wire = Vec::new();
        tx.seal_data(data, &mut wire).unwrap();
        assert_eq!(rx.open(&mut wire).unwrap().unwrap().record, Record::Data(data));
    }
}

/// Every file in the directory is replayed by one of the tests above.
#[test]
fn every_capture_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    let tested = [
        "a_fast_both",
        "b_fast_empty_client",
        "b_fast_packets",
        "c_fast_initiator_only",
        "d_fast_responder_only",
        "e_dh",
        "fail_g_initiator",
        "fail_g_responder",
        "fail_wrong_key",
        "key_100bytes",
        "key_1byte",
    ];
    assert_eq!(names, tested);
}

// Mutations of the richest capture, b_fast_packets (several packets each way, -f on both ends).

/// A flipped bit in a nonce, a y or a MAC, in either direction, is refused as a MAC failure by the
/// end that reads it.
#[test]
fn a_flipped_bit_in_the_handshake_is_refused() {
    let s = Session::load("b_fast_packets");
    for bit in 0..HANDSHAKE_LEN * 8 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        // The responder reads the initiator's nonce and y_C.
        let (mut nonce_c, mut y_c) = (s.nonce_c, s.y_c());
        if byte < NONCE_LEN {
            nonce_c[byte] ^= mask;
        } else {
            y_c[byte - NONCE_LEN] ^= mask;
        }
        let (responder, _) = Responder::start(std::slice::from_ref(&s.psk_s), s.fs_s(), s.nonce_s);
        let result = responder.read_nonce(&nonce_c).read_y(&y_c, fresh_private());
        assert_eq!(result.err(), Some(HandshakeError::BadMac), "i2r bit {bit}");
        // The initiator reads the responder's nonce and y_S.
        let (mut nonce_s, mut y_s) = (s.nonce_s, s.y_s());
        if byte < NONCE_LEN {
            nonce_s[byte] ^= mask;
        } else {
            y_s[byte - NONCE_LEN] ^= mask;
        }
        let (initiator, _) = Initiator::start(&s.psk_c, s.fs_c(), s.nonce_c);
        let result = initiator.read_nonce(&nonce_s, fresh_private()).0.read_y(&y_s);
        assert_eq!(result.err(), Some(HandshakeError::BadMac), "r2i bit {bit}");
    }
}

/// One direction of b_fast_packets after the handshake.
struct Stream<'s> {
    what: &'static str,
    session: &'s Session,
    /// Whether this is the initiator's direction.
    i2r: bool,
    /// Its packets, as captured.
    packets: Vec<u8>,
}

impl Stream<'_> {
    fn both(s: &Session) -> [Stream<'_>; 2] {
        [
            Stream { what: "i2r", session: s, i2r: true, packets: s.i2r[HANDSHAKE_LEN..].to_vec() },
            Stream { what: "r2i", session: s, i2r: false, packets: s.r2i[HANDSHAKE_LEN..].to_vec() },
        ]
    }

    fn count(&self) -> usize {
        self.packets.len() / PACKET_LEN
    }

    fn packet(&self, n: usize) -> &[u8] {
        &self.packets[n * PACKET_LEN..][..PACKET_LEN]
    }

    /// A fresh opener for this direction, after packets `..n` opened honestly.
    fn opener_after(&self, n: usize) -> Opener {
        let ((_, client_rx), (_, server_rx)) = self.session.both_ends();
        let mut rx = if self.i2r { server_rx } else { client_rx };
        for honest in 0..n {
            rx.open(&mut self.packet(honest).to_vec()).unwrap().expect("a whole packet");
        }
        rx
    }

    /// What opening `packet` as packet number `n` gives, after packets `..n` opened honestly; and
    /// the opener.
    fn open_at(&self, n: usize, packet: &[u8]) -> (Result<Vec<u8>, RecordError>, Opener) {
        let mut rx = self.opener_after(n);
        let result =
            rx.open(&mut packet.to_vec()).map(|opened| match opened.expect("a whole packet").record {
                Record::Data(d) => d.to_vec(),
                Record::End => panic!("classic packets carry data only"),
            });
        (result, rx)
    }
}

/// Every bit of the first and the last packet of each direction (the data, its padding, the length
/// field and the MAC), flipped: refused, and the direction is dead afterwards.
#[test]
fn a_flipped_bit_in_a_packet_is_refused() {
    let s = Session::load("b_fast_packets");
    for stream in Stream::both(&s) {
        let what = stream.what;
        assert!(stream.count() >= 3, "{what}: several packets");
        for n in [0, stream.count() - 1] {
            for bit in 0..PACKET_LEN * 8 {
                let mut flipped = stream.packet(n).to_vec();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let (result, mut rx) = stream.open_at(n, &flipped);
                assert_eq!(result, Err(RecordError::Auth), "{what} packet {n} bit {bit}");
                assert_eq!(rx.open(&mut stream.packet(n).to_vec()), Err(RecordError::Failed));
                assert_eq!(rx.finish(&[]), Err(RecordError::Failed));
            }
        }
    }
}

/// Packets reordered, replayed, dropped or reflected into the other direction are refused; a
/// direction cut inside a packet is a truncation, never a clean end.
#[test]
fn reordered_replayed_dropped_reflected_and_cut_packets_are_refused() {
    let s = Session::load("b_fast_packets");
    let streams = Stream::both(&s);
    for (stream, other) in [(&streams[0], &streams[1]), (&streams[1], &streams[0])] {
        let what = stream.what;
        assert_eq!(stream.open_at(0, stream.packet(1)).0, Err(RecordError::Auth), "{what}: 1 before 0");
        assert_eq!(stream.open_at(1, stream.packet(0)).0, Err(RecordError::Auth), "{what}: 0 replayed");
        assert_eq!(stream.open_at(1, stream.packet(2)).0, Err(RecordError::Auth), "{what}: 1 dropped");
        assert_eq!(stream.open_at(0, other.packet(0)).0, Err(RecordError::Auth), "{what}: reflected");
        for n in 0..stream.count() {
            for cut in [1, MAX_DATA / 2, PACKET_LEN - 1] {
                let mut rx = stream.opener_after(n);
                let mut partial = stream.packet(n)[..cut].to_vec();
                assert_eq!(rx.open(&mut partial), Ok(None), "{what}: {cut} bytes of packet {n}");
                assert_eq!(rx.finish(&partial), Err(RecordError::Truncated), "{what}: cut in packet {n}");
            }
        }
        assert_eq!(stream.opener_after(stream.count()).finish(&[]), Ok(()), "{what}: clean after the last");
    }
}

/// Packet `n` of a direction with its length field set to `length`, re-encrypted and re-MACed with
/// the direction's keys (`e`, `h`), as only a peer with the key could send it.
fn forge(packet: &[u8], n: u64, e: &[u8], h: &[u8], decrypted_hex: &str, length: u32) -> Vec<u8> {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&n.to_be_bytes());
    let aes_ctr = || ctr::Ctr128BE::<aes::Aes256>::new(e.try_into().unwrap(), (&iv).into());
    let mut plain = packet[..MAX_DATA + 4].to_vec();
    aes_ctr().apply_keystream(&mut plain);
    assert_eq!(hex::encode(&plain), decrypted_hex, "packet {n} decrypts as the oracle says");
    plain[MAX_DATA..].copy_from_slice(&length.to_be_bytes());
    aes_ctr().apply_keystream(&mut plain);
    let tag = hmac_sha256(h, &[&plain, &n.to_be_bytes()]);
    [plain, tag.to_vec()].concat()
}

/// A packet whose length field is 0 or 1025 under a valid MAC is refused as a bad length; with its
/// own length field the same forging reproduces the captured packet.
#[test]
fn a_length_of_0_or_1025_under_a_valid_mac_is_a_bad_length() {
    let s = Session::load("b_fast_packets");
    let o = &s.capture.oracle;
    let packets = o.packets.as_ref().unwrap();
    let [i2r, r2i] = Stream::both(&s);
    let directions =
        [(&i2r, &packets.i2r, &o.e_c_hex, &o.h_c_hex), (&r2i, &packets.r2i, &o.e_s_hex, &o.h_s_hex)];
    for (stream, vectors, e, h) in directions {
        let what = stream.what;
        let (e, h) = (unhex(e.as_deref().unwrap()), unhex(h.as_deref().unwrap()));
        for (n, v) in vectors.iter().enumerate().take(2) {
            let packet = stream.packet(n);
            let same = forge(packet, v.packet_number, &e, &h, &v.decrypted_hex, v.data_len as u32);
            assert_eq!(same, packet, "{what} {n}: the forger makes real packets");
            for length in [0, 1025] {
                let forged = forge(packet, v.packet_number, &e, &h, &v.decrypted_hex, length);
                let (result, mut rx) = stream.open_at(n, &forged);
                assert_eq!(result, Err(RecordError::BadLength(length)), "{what} packet {n}");
                assert_eq!(rx.open(&mut packet.to_vec()), Err(RecordError::Failed), "{what}: dead after");
            }
        }
    }
}
