//! Builds the known-answer vectors in `tests/vectors/` from fixed keys, and checks that the committed
//! files still match. `SPIPED_REGENERATE_VECTORS=1 cargo test --lib vectors` rewrites them.
//!
//! It lives inside the crate because some failure vectors need messages no honest peer would build (a
//! low-order key under a valid tag), made with the handshake's internals. `tests/vectors.rs` then checks
//! the files against the public API and against the independent `snow` implementation.

use serde_json::{Value, json};
use sha2::Digest;

use super::handshake::internals::{SymmetricState, mix_e};
use super::*;
use crate::proto::Psk;

const KEY_FILE: &[u8] = b"spiped-rs test vector key file: 32 or more bytes, never use it\n";
const WRONG_KEY_FILE: &[u8] = b"some other key file, also never to be used for real\n";
const INITIATOR_E: [u8; 32] = [0x11; 32];
const RESPONDER_E: [u8; 32] = [0x22; 32];
/// Low-order X25519 points: 0 and 1 (the X25519 result with either is all zeros).
const LOW_ORDER: [[u8; 32]; 2] = [[0; 32], {
    let mut one = [0; 32];
    one[0] = 1;
    one
}];

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A complete handshake between fixed keys.
struct Transcript {
    hello: [u8; HELLO_LEN],
    msg2: [u8; MSG2_LEN],
    /// Initiator to responder: the confirmation record, then records sealed by the caller.
    i2r: Vec<u8>,
    client: Transport,
    server: Transport,
}

fn transcript(initiator_key: &[u8], responder_key: &[u8]) -> Transcript {
    let (initiator, hello) =
        Initiator::start(&Psk::from_key_file(initiator_key), EphemeralKey::from_bytes(INITIATOR_E));
    let responder_keys = [Psk::from_key_file(responder_key)];
    let (unconfirmed, msg2, _) =
        Responder::accept(&responder_keys, &hello, EphemeralKey::from_bytes(RESPONDER_E)).expect("same key");
    let mut i2r = Vec::new();
    let client = initiator.read_response(&msg2, &mut i2r).expect("same key");
    let mut confirmation = i2r.clone();
    let Ok(Confirm::Confirmed { transport: server, .. }) = unconfirmed.confirm(&mut confirmation) else {
        panic!("the confirmation record opens");
    };
    Transcript { hello, msg2, i2r, client, server }
}

/// A hello whose message 1 carries `e` (any 32 bytes) under a valid tag for KEY_FILE.
fn hello_with_public(e: &[u8; 32]) -> [u8; HELLO_LEN] {
    let mut state = SymmetricState::new(&Psk::from_key_file(KEY_FILE));
    mix_e(&mut state, e);
    let tag = state.encrypt_and_hash_empty().unwrap();
    let mut hello = [0; HELLO_LEN];
    hello[..PREAMBLE_LEN].copy_from_slice(&PREAMBLE);
    hello[PREAMBLE_LEN..PREAMBLE_LEN + 32].copy_from_slice(e);
    hello[PREAMBLE_LEN + 32..].copy_from_slice(&tag);
    hello
}

/// Message 2 from a responder holding `key_file` that answers `hello` without checking its tag.
fn msg2_under(key_file: &[u8], hello: &[u8; HELLO_LEN]) -> [u8; MSG2_LEN] {
    let mut state = SymmetricState::new(&Psk::from_key_file(key_file));
    let re: &[u8; 32] = hello[PREAMBLE_LEN..PREAMBLE_LEN + 32].try_into().unwrap();
    mix_e(&mut state, re);
    state.mix_hash(&hello[PREAMBLE_LEN + 32..]);
    let e = EphemeralKey::from_bytes(RESPONDER_E);
    let public = e.write_e(&mut state);
    e.mix_dh(&mut state, re).unwrap();
    let tag = state.encrypt_and_hash_empty().unwrap();
    let mut msg2 = [0; MSG2_LEN];
    msg2[..32].copy_from_slice(&public);
    msg2[32..].copy_from_slice(&tag);
    msg2
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

fn record(sealer: &mut Sealer, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![0; RECORD_OVERHEAD + body.len()];
    frame[RECORD_HEADER_LEN + 1..RECORD_HEADER_LEN + 1 + body.len()].copy_from_slice(body);
    sealer.seal_kind(kind, &mut frame).unwrap();
    frame
}

/// One record of a transcript: direction, type byte, body, and what it is.
type Step<'a> = (&'a str, u8, &'a [u8], &'a str);

fn type_name(kind: u8) -> &'static str {
    match kind {
        TYPE_DATA => "data",
        TYPE_END => "end",
        TYPE_PARK => "park",
        _ => unreachable!("the transcripts hold only known types"),
    }
}

/// Seals `steps` in order, each with its direction's sealer, as the vector files list records.
fn sealed_records(to_responder: &mut Sealer, to_initiator: &mut Sealer, steps: &[Step]) -> Vec<Value> {
    let mut records = Vec::new();
    for &(direction, kind, body, note) in steps {
        let sealer = if direction == "i2r" { &mut *to_responder } else { &mut *to_initiator };
        let wire = record(sealer, kind, body);
        records.push(json!({
            "direction": direction, "type": type_name(kind), "body_hex": hex(body), "record_hex": hex(&wire),
            "note": note
        }));
    }
    records
}

fn handshake_vector() -> Value {
    let t = transcript(KEY_FILE, KEY_FILE);
    let (mut ctx, _) = t.client.split();
    let (mut stx, _) = t.server.split();
    let mut records = vec![json!({
        "direction": "i2r", "type": "data", "body_hex": "", "record_hex": hex(&t.i2r),
        "note": "key confirmation: the initiator's first record"
    })];
    let full: Vec<u8> = (0..RECORD_MAX_BODY).map(|i| (i * 7 % 251) as u8).collect();
    let steps: [Step; 6] = [
        ("i2r", TYPE_DATA, b"*1\r\n$4\r\nPING\r\n", "a small write"),
        ("r2i", TYPE_DATA, b"+PONG\r\n", "the responder's first record"),
        ("i2r", TYPE_DATA, &full, "the largest record the wire allows"),
        ("r2i", TYPE_DATA, b"", "an empty data record"),
        ("i2r", TYPE_END, b"", "initiator half-closes"),
        ("r2i", TYPE_END, b"", "responder half-closes"),
    ];
    records.extend(sealed_records(&mut ctx, &mut stx, &steps));
    json!({
        "description": "A complete native v1 connection between fixed ephemeral keys (docs/PROTOCOL.md). \
                        Records are listed in the order they are sealed; each direction's counter starts at 0.",
        "protocol_name": String::from_utf8_lossy(PROTOCOL_NAME),
        "prologue_hex": hex(PROLOGUE),
        "key_file_hex": hex(KEY_FILE),
        "psk_hex": hex(&sha2::Sha256::digest(KEY_FILE)),
        "initiator_ephemeral_private_hex": hex(&INITIATOR_E),
        "responder_ephemeral_private_hex": hex(&RESPONDER_E),
        "preamble_hex": hex(&PREAMBLE),
        "hello_hex": hex(&t.hello),
        "msg2_hex": hex(&t.msg2),
        "records": records,
    })
}

/// One parked connection (docs/PROTOCOL.md, 4.6) after handshake.json's hello and message 2.
fn parked_connection(name: &str, description: &str, steps: &[Step]) -> Value {
    let t = transcript(KEY_FILE, KEY_FILE);
    let (mut ctx, _) = t.client.split();
    // The transcript sealed a data record as the key confirmation; a parked connection's is its park
    // record, under the same key and counter.
    ctx.set_counter(0);
    let (mut stx, _) = t.server.split();
    json!({ "name": name, "description": description, "records": sealed_records(&mut ctx, &mut stx, steps) })
}

fn parked_vectors() -> Value {
    let park: Step = ("i2r", TYPE_PARK, b"", "key confirmation asking the responder to park the connection");
    let parked: Step = ("r2i", TYPE_PARK, b"", "the responder parks it: its first record");
    let connections = [
        parked_connection(
            "put_to_use",
            "Parked at both ends, then put to use by a client: the responder contacts its target only on \
             the initiator's first data record (empty, as spiped-rs sends it; the client's bytes follow in \
             records of their own), and the connection goes on as any other.",
            &[
                park,
                parked,
                ("i2r", TYPE_DATA, b"", "puts it to use: the responder contacts its target now"),
                ("i2r", TYPE_DATA, b"*1\r\n$4\r\nPING\r\n", "the client's first bytes"),
                ("r2i", TYPE_DATA, b"+PONG\r\n", "the target's reply"),
                ("i2r", TYPE_END, b"", "initiator half-closes"),
                ("r2i", TYPE_END, b"", "responder half-closes"),
            ],
        ),
        parked_connection(
            "retired_by_initiator",
            "A spare the initiator retires unused (spiped-rs's -e end does at --pool-idle): nothing reaches \
             the target.",
            &[
                park,
                parked,
                ("i2r", TYPE_END, b"", "the initiator retires its spare"),
                ("r2i", TYPE_END, b"", "the responder's answer: the connection ends unused"),
            ],
        ),
        parked_connection(
            "refused",
            "A park request the responder refuses (it holds as many parked connections as it allows, or is \
             stopping): its end of stream in place of its park record. The connection is over; nothing \
             reached the target.",
            &[park, ("r2i", TYPE_END, b"", "the refusal")],
        ),
    ];
    json!({
        "description": "Complete parked connections (docs/PROTOCOL.md, 4.6). Key file, ephemeral keys, hello \
                        and message 2 are those of handshake.json; the initiator's key confirmation is a park \
                        record in place of handshake.json's data record. Each connection lists its records in \
                        the order they are sealed; each direction's counter starts at 0.",
        "connections": connections,
    })
}

fn fail_case(name: &str, step: &str, input: &[u8], error: &str) -> Value {
    json!({ "name": name, "step": step, "input_hex": hex(input), "error": error })
}

fn fail_handshake_vectors() -> Value {
    let good = transcript(KEY_FILE, KEY_FILE);
    let (_, wrong_hello) =
        Initiator::start(&Psk::from_key_file(WRONG_KEY_FILE), EphemeralKey::from_bytes(INITIATOR_E));
    let mut bad_magic = good.hello;
    bad_magic[6] = b'X';
    let mut version2 = good.hello;
    version2[7] = 2;
    let classic_nonce: Vec<u8> = (0..HELLO_LEN as u8).map(|i| i.wrapping_mul(97).wrapping_add(13)).collect();
    let mut cases = vec![
        fail_case("wrong_key_hello", "accept", &wrong_hello, "HandshakeAuth"),
        fail_case("bad_magic", "accept", &bad_magic, "NotNative"),
        fail_case("unsupported_version", "accept", &version2, "UnsupportedVersion(2)"),
        fail_case("classic_spiped_nonce", "accept", &classic_nonce, "NotNative"),
        fail_case("truncated_hello", "accept", &good.hello[..HELLO_LEN - 1], "Incomplete"),
        fail_case("wrong_key_msg2", "response", &msg2_under(WRONG_KEY_FILE, &good.hello), "HandshakeAuth"),
        fail_case("msg2_for_another_hello", "response", &msg2_under(KEY_FILE, &wrong_hello), "HandshakeAuth"),
        fail_case("truncated_msg2", "response", &good.msg2[..MSG2_LEN - 1], "Incomplete"),
    ];
    for (i, e) in LOW_ORDER.iter().enumerate() {
        cases.push(fail_case(
            &format!("non_contributory_hello_{i}"),
            "accept",
            &hello_with_public(e),
            "NonContributory",
        ));
        let mut msg2 = good.msg2;
        msg2[..32].copy_from_slice(e);
        cases.push(fail_case(&format!("non_contributory_msg2_{i}"), "response", &msg2, "NonContributory"));
    }
    for bit in [PREAMBLE_LEN * 8, PREAMBLE_LEN * 8 + 200, HELLO_LEN * 8 - 1] {
        cases.push(fail_case(
            &format!("flipped_hello_bit_{bit}"),
            "accept",
            &flip(&good.hello, bit),
            "HandshakeAuth",
        ));
    }
    for bit in [0, 255, MSG2_LEN * 8 - 1] {
        cases.push(fail_case(
            &format!("flipped_msg2_bit_{bit}"),
            "response",
            &flip(&good.msg2, bit),
            "HandshakeAuth",
        ));
    }
    json!({
        "description": "Handshake inputs that MUST be rejected. Keys, ephemerals and the good messages are those \
                        of handshake.json. step 'accept': the responder reads input as the hello. step \
                        'response': the initiator, having sent handshake.json's hello, reads input as message 2. \
                        'Incomplete' means the stream ends before the message is whole.",
        "cases": cases,
    })
}

fn fail_record_vectors() -> Value {
    let t = transcript(KEY_FILE, KEY_FILE);
    let confirm = t.i2r.clone();
    let (mut tx, _) = t.client.split();
    let (mut reverse, _) = t.server.split();
    let a = record(&mut tx, TYPE_DATA, b"first");
    let b = record(&mut tx, TYPE_DATA, b"second");
    let end = record(&mut tx, TYPE_END, b"");
    let reflected = record(&mut reverse, TYPE_DATA, b"from the responder");
    // Records sealed under the initiator-to-responder key at a chosen counter.
    let at = |n: u64, kind: u8, body: &[u8]| {
        let (mut sealer, _) = transcript(KEY_FILE, KEY_FILE).client.split();
        sealer.set_counter(n);
        record(&mut sealer, kind, body)
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    let too_short = cat(&[&confirm, &[0, 16], &[0; 16]]);
    // Bit 10 turns a's length 22 into 18: the record is cut short inside its own ciphertext.
    assert_eq!(a.len(), 24);
    let cases = vec![
        fail_case("no_confirmation", "i2r", &[], "Truncated"),
        fail_case("confirmation_is_end", "i2r", &at(0, TYPE_END, b""), "ConfirmationNotData"),
        fail_case("no_end_of_stream", "i2r", &cat(&[&confirm, &a, &b]), "Truncated"),
        fail_case("cut_inside_record", "i2r", &cat(&[&confirm, &a, &b[..b.len() - 1]]), "Truncated"),
        fail_case("reordered", "i2r", &cat(&[&confirm, &b, &a, &end]), "RecordAuth"),
        fail_case("replayed", "i2r", &cat(&[&confirm, &a, &a, &b, &end]), "RecordAuth"),
        fail_case("dropped", "i2r", &cat(&[&confirm, &b, &end]), "RecordAuth"),
        fail_case("reflected", "i2r", &cat(&[&confirm, &reflected]), "RecordAuth"),
        fail_case(
            "skipped_counter",
            "i2r",
            &cat(&[&confirm, &at(2, TYPE_DATA, b"counter 2 in place of 1")]),
            "RecordAuth",
        ),
        fail_case(
            "record_after_end",
            "i2r",
            &cat(&[&confirm, &a, &at(2, TYPE_END, b""), &at(3, TYPE_DATA, b"late")]),
            "RecordAfterEnd",
        ),
        fail_case("unknown_type", "i2r", &cat(&[&confirm, &at(1, 0x03, b"")]), "UnknownRecordType(3)"),
        // A park record (section 4.6) is only ever a direction's first record, and empty.
        fail_case(
            "park_after_confirmation",
            "i2r",
            &cat(&[&confirm, &at(1, TYPE_PARK, b"")]),
            "MisplacedPark",
        ),
        fail_case("park_with_body", "i2r", &at(0, TYPE_PARK, b"x"), "MisplacedPark"),
        fail_case(
            "park_twice",
            "i2r",
            &cat(&[&at(0, TYPE_PARK, b""), &at(1, TYPE_PARK, b"")]),
            "MisplacedPark",
        ),
        fail_case("end_with_body", "i2r", &cat(&[&confirm, &at(1, TYPE_END, b"x")]), "EndWithBody"),
        fail_case("length_below_minimum", "i2r", &too_short, "RecordTooShort(16)"),
        fail_case("flipped_length_bit", "i2r", &cat(&[&confirm, &flip(&a, 10), &end]), "RecordAuth"),
        fail_case("flipped_type_bit", "i2r", &cat(&[&confirm, &flip(&a, 16), &end]), "RecordAuth"),
        fail_case(
            "flipped_tag_bit",
            "i2r",
            &cat(&[&confirm, &flip(&a, a.len() * 8 - 1), &end]),
            "RecordAuth",
        ),
    ];
    json!({
        "description": "Record streams that MUST be rejected. Each input is the whole initiator-to-responder \
                        stream after message 2 of handshake.json, confirmation record included; the responder \
                        opens records until the stream ends. 'error' is the first failure; a stream that ends \
                        inside a record or before the confirmation record is 'Truncated'.",
        "cases": cases,
    })
}

/// Writes the vectors when `SPIPED_REGENERATE_VECTORS` is set; otherwise checks the committed files
/// still match what this code produces.
#[test]
fn committed_vectors_match_this_implementation() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let files = [
        ("handshake.json", handshake_vector()),
        ("fail_handshake.json", fail_handshake_vectors()),
        ("fail_records.json", fail_record_vectors()),
        ("parked.json", parked_vectors()),
    ];
    for (name, value) in files {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = dir.join(name);
        if std::env::var_os("SPIPED_REGENERATE_VECTORS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
        } else {
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{name} differs from the generator; rerun with SPIPED_REGENERATE_VECTORS=1"
            );
        }
    }
}
