//! Known-answer vectors from `tests/vectors/`: our implementation must reproduce every byte of
//! `handshake.json` and of `parked.json` (through the parked connection's phase types on both ends)
//! and refuse every `fail_*` case with the stated error; the independent `snow` implementation must
//! reproduce `handshake.json` and `parked.json` too, which is what makes the vectors trustworthy.

mod common;

use common::*;
use serde::Deserialize;
use spiped::proto::native::{
    Accepted, Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, Opener, PREAMBLE, PROLOGUE,
    PROTOCOL_NAME, ParkRequest, Parked, ProtoError, RECORD_OVERHEAD, Ready, Responder, Retired, Sealer,
    Spare, TYPE_DATA, TYPE_END, TYPE_PARK, Unconfirmed, Wake,
};
use spiped::proto::{Open, Psk, Record, RecordError, Seal};

#[derive(Deserialize)]
struct Handshake {
    protocol_name: String,
    prologue_hex: String,
    key_file_hex: String,
    psk_hex: String,
    initiator_ephemeral_private_hex: String,
    responder_ephemeral_private_hex: String,
    preamble_hex: String,
    hello_hex: String,
    msg2_hex: String,
    records: Vec<RecordVector>,
}

#[derive(Deserialize)]
struct RecordVector {
    direction: String,
    #[serde(rename = "type")]
    kind: String,
    body_hex: String,
    record_hex: String,
}

#[derive(Deserialize)]
struct ParkedFile {
    connections: Vec<ParkedConnection>,
}

#[derive(Deserialize)]
struct ParkedConnection {
    name: String,
    records: Vec<RecordVector>,
}

#[derive(Deserialize)]
struct FailFile {
    cases: Vec<FailCase>,
}

#[derive(Deserialize)]
struct FailCase {
    name: String,
    step: String,
    input_hex: String,
    error: String,
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn array<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

fn type_byte(kind: &str) -> u8 {
    match kind {
        "data" => TYPE_DATA,
        "end" => TYPE_END,
        "park" => TYPE_PARK,
        other => panic!("unknown record type {other} in a vector"),
    }
}

struct Keys {
    psk: Psk,
    k: [u8; 32],
    ei: [u8; 32],
    er: [u8; 32],
}

fn keys(v: &Handshake) -> Keys {
    Keys {
        psk: Psk::from_key_file(&unhex(&v.key_file_hex)),
        k: array(&v.psk_hex),
        ei: array(&v.initiator_ephemeral_private_hex),
        er: array(&v.responder_ephemeral_private_hex),
    }
}

#[test]
fn constants_match_the_vectors() {
    let v: Handshake = load("handshake.json");
    assert_eq!(v.protocol_name.as_bytes(), PROTOCOL_NAME);
    assert_eq!(unhex(&v.prologue_hex), PROLOGUE);
    assert_eq!(unhex(&v.preamble_hex), PREAMBLE);
    use sha2::Digest;
    assert_eq!(
        sha2::Sha256::digest(unhex(&v.key_file_hex)).to_vec(),
        unhex(&v.psk_hex),
        "K = SHA-256(key file)"
    );
}

#[test]
fn our_implementation_reproduces_handshake_json() {
    let v: Handshake = load("handshake.json");
    let keys = keys(&v);
    let (initiator, hello) = Initiator::start(&keys.psk, EphemeralKey::from_bytes(keys.ei));
    assert_eq!(hex::encode(hello), v.hello_hex);
    let (unconfirmed, msg2, _) =
        Responder::accept(std::slice::from_ref(&keys.psk), &hello, EphemeralKey::from_bytes(keys.er))
            .unwrap();
    assert_eq!(hex::encode(msg2), v.msg2_hex);
    let mut first = Vec::new();
    let (mut ctx, mut crx) = initiator.read_response(&msg2, &mut first).unwrap().split();
    assert_eq!(hex::encode(&first), v.records[0].record_hex, "the confirmation record");
    let Confirm::Confirmed { transport, .. } = unconfirmed.confirm(&mut first).unwrap() else { panic!() };
    let (mut stx, mut srx) = transport.split();

    for r in &v.records[1..] {
        let body = unhex(&r.body_hex);
        let (tx, rx) = if r.direction == "i2r" { (&mut ctx, &mut srx) } else { (&mut stx, &mut crx) };
        let mut wire = Vec::new();
        match r.kind.as_str() {
            "data" => {
                let mut frame = vec![0u8; RECORD_OVERHEAD + body.len()];
                let at = <Sealer as Seal>::BODY_OFFSET;
                frame[at..at + body.len()].copy_from_slice(&body);
                tx.seal_frame(&mut frame, body.len()).unwrap();
                wire = frame;
            }
            _ => tx.seal_end(&mut wire).unwrap(),
        }
        assert_eq!(hex::encode(&wire), r.record_hex, "sealing {} {}", r.direction, r.kind);
        let opened = rx.open(&mut wire).unwrap().unwrap();
        let expected = if r.kind == "data" { Record::Data(&body) } else { Record::End };
        assert_eq!(opened.record, expected);
    }
    assert!(srx.finish(&[]).is_ok() && crx.finish(&[]).is_ok(), "both directions ended cleanly");
}

/// The committed hello, read by a responder holding its key between two others: the same message 2
/// as the vectors', and the key's index.
#[test]
fn a_responder_with_several_keys_reproduces_handshake_json() {
    let v: Handshake = load("handshake.json");
    let keys = keys(&v);
    let hello: [u8; HELLO_LEN] = array(&v.hello_hex);
    let set =
        [Psk::from_key_file(b"an older key file"), keys.psk.clone(), Psk::from_key_file(b"a newer one")];
    let (_, msg2, index) = Responder::accept(&set, &hello, EphemeralKey::from_bytes(keys.er)).unwrap();
    assert_eq!((hex::encode(msg2), index), (v.msg2_hex.clone(), 1));
}

#[test]
fn snow_reproduces_handshake_json() {
    let v: Handshake = load("handshake.json");
    snow_replays(&v, "handshake.json", &v.records);
}

#[test]
fn snow_reproduces_parked_json() {
    let v: Handshake = load("handshake.json");
    let parked: ParkedFile = load("parked.json");
    for c in &parked.connections {
        snow_replays(&v, &c.name, &c.records);
    }
}

/// snow runs `v`'s handshake, then seals each of `records` in order with its direction's transport
/// state, to the committed bytes, and opens it with the other's, to its type and body.
fn snow_replays(v: &Handshake, what: &str, records: &[RecordVector]) {
    let keys = keys(v);
    let mut init = snow_builder(&keys.k, Some(&keys.ei)).build_initiator().unwrap();
    let mut resp = snow_builder(&keys.k, Some(&keys.er)).build_responder().unwrap();
    let hello = snow_hello(&mut init);
    assert_eq!(hex::encode(hello), v.hello_hex);
    let msg2 = snow_msg2(&mut resp, &hello).unwrap();
    assert_eq!(hex::encode(msg2), v.msg2_hex);
    init.read_message(&msg2, &mut []).unwrap();
    let mut init = init.into_transport_mode().unwrap();
    let mut resp = resp.into_transport_mode().unwrap();

    for r in records {
        let (tx, rx) = if r.direction == "i2r" { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
        let wire = snow_record(tx, type_byte(&r.kind), &unhex(&r.body_hex));
        assert_eq!(hex::encode(&wire), r.record_hex, "{what}: snow sealing {} {}", r.direction, r.kind);
        assert_eq!(snow_read_records(rx, &wire), vec![(type_byte(&r.kind), unhex(&r.body_hex))]);
    }
}

/// Each parked connection of `parked.json`, replayed at each end through the phase types a parked
/// connection goes through there: every record the end sends is sealed to the committed bytes, and
/// every record it reads is opened to its type and body.
#[test]
fn our_parked_phases_reproduce_parked_json() {
    let v: Handshake = load("handshake.json");
    let parked: ParkedFile = load("parked.json");
    let names: Vec<&str> = parked.connections.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["put_to_use", "retired_by_initiator", "refused"]);
    for c in &parked.connections {
        initiator_replays(&v, c);
        responder_replays(&v, c);
    }
}

/// Where the initiator (`-e`) of a parked connection stands.
#[derive(Debug)]
enum Initiating {
    Spare(Spare),
    Ready(Ready),
    Open(Sealer, Opener),
    /// Refused, or retired by this end: it reads nothing more.
    Over,
}

fn initiator_replays(v: &Handshake, c: &ParkedConnection) {
    let keys = keys(v);
    let (initiator, _) = Initiator::start(&keys.psk, EphemeralKey::from_bytes(keys.ei));
    let (first, rest) = c.records.split_first().expect("a connection has records");
    let mut sealed = Vec::new();
    let spare = initiator.read_response_parked(&array(&v.msg2_hex), &mut sealed).unwrap();
    assert_eq!((first.direction.as_str(), first.kind.as_str()), ("i2r", "park"), "{}", c.name);
    check_sealed(c, first, true, &sealed);
    let mut phase = Initiating::Spare(spare);
    for r in rest {
        let sends = r.direction == "i2r";
        let mut wire = unhex(&r.record_hex);
        let whole = wire.len();
        let mut sealed = Vec::new();
        phase = match (phase, sends, r.kind.as_str()) {
            (Initiating::Spare(spare), false, "park") => match spare.accepted(&mut wire).unwrap() {
                Accepted::Ready { ready, consumed } if consumed == whole => Initiating::Ready(ready),
                other => panic!("{}: the responder's park record gave {other:?}", c.name),
            },
            (Initiating::Spare(spare), false, "end") => {
                assert!(matches!(spare.accepted(&mut wire).unwrap(), Accepted::Refused), "{}", c.name);
                Initiating::Over
            }
            (Initiating::Ready(ready), true, "data") => {
                let (tx, rx) = ready.take(&mut sealed).unwrap().split();
                Initiating::Open(tx, rx)
            }
            (Initiating::Ready(ready), true, "end") => {
                ready.retire(&mut sealed).unwrap();
                Initiating::Over
            }
            (Initiating::Open(mut tx, mut rx), _, _) => {
                sealed = carry(&mut tx, &mut rx, sends, r);
                Initiating::Open(tx, rx)
            }
            // An initiator that retired its spare reads no more (spiped-rs's -e end closes it): the
            // responder's answer is opened by snow alone.
            (Initiating::Over, false, "end") => Initiating::Over,
            (phase, _, kind) => panic!("{}: the initiator, {phase:?}, met {} {kind}", c.name, r.direction),
        };
        check_sealed(c, r, sends, &sealed);
    }
    if let Initiating::Open(_, rx) = phase {
        assert!(rx.finish(&[]).is_ok(), "{}: the responder's direction ended cleanly", c.name);
    }
}

/// Where the responder (`-d`) of a parked connection stands.
#[derive(Debug)]
enum Responding {
    Unconfirmed(Unconfirmed),
    Request(ParkRequest),
    Parked(Parked),
    Retired(Retired),
    Open(Sealer, Opener),
    /// Refused, or ended unused: nothing more comes.
    Over,
}

fn responder_replays(v: &Handshake, c: &ParkedConnection) {
    let keys = keys(v);
    let hello: [u8; HELLO_LEN] = array(&v.hello_hex);
    let (unconfirmed, _, _) =
        Responder::accept(std::slice::from_ref(&keys.psk), &hello, EphemeralKey::from_bytes(keys.er))
            .unwrap();
    let mut phase = Responding::Unconfirmed(unconfirmed);
    for r in &c.records {
        let sends = r.direction == "r2i";
        let body = unhex(&r.body_hex);
        let mut wire = unhex(&r.record_hex);
        let whole = wire.len();
        let mut sealed = Vec::new();
        phase = match (phase, sends, r.kind.as_str()) {
            (Responding::Unconfirmed(unconfirmed), false, "park") => {
                match unconfirmed.confirm(&mut wire).unwrap() {
                    Confirm::Park { request, consumed } if consumed == whole => Responding::Request(request),
                    other => panic!("{}: the park record gave {other:?}", c.name),
                }
            }
            (Responding::Request(request), true, "park") => {
                Responding::Parked(request.accept(&mut sealed).unwrap())
            }
            (Responding::Request(request), true, "end") => {
                request.refuse(&mut sealed).unwrap();
                Responding::Over
            }
            (Responding::Parked(parked), false, "data") => match parked.wake(&mut wire).unwrap() {
                Wake::Used { transport, data, consumed } if (data, consumed) == (body.as_slice(), whole) => {
                    let (tx, rx) = transport.split();
                    Responding::Open(tx, rx)
                }
                other => panic!("{}: the record that puts it to use gave {other:?}", c.name),
            },
            (Responding::Parked(parked), false, "end") => match parked.wake(&mut wire).unwrap() {
                Wake::Retired(retired) => Responding::Retired(retired),
                other => panic!("{}: the initiator's end gave {other:?}", c.name),
            },
            (Responding::Retired(retired), true, "end") => {
                retired.end(&mut sealed).unwrap();
                Responding::Over
            }
            (Responding::Open(mut tx, mut rx), _, _) => {
                sealed = carry(&mut tx, &mut rx, sends, r);
                Responding::Open(tx, rx)
            }
            (phase, _, kind) => panic!("{}: the responder, {phase:?}, met {} {kind}", c.name, r.direction),
        };
        check_sealed(c, r, sends, &sealed);
    }
    if let Responding::Open(_, rx) = phase {
        assert!(rx.finish(&[]).is_ok(), "{}: the initiator's direction ended cleanly", c.name);
    }
}

/// One record of an established connection at one end: sealed if this end `sends` it (the bytes are
/// returned), else opened, whole, to its type and body.
fn carry(tx: &mut Sealer, rx: &mut Opener, sends: bool, r: &RecordVector) -> Vec<u8> {
    let body = unhex(&r.body_hex);
    let mut sealed = Vec::new();
    let expected = match r.kind.as_str() {
        "data" => Record::Data(&body),
        "end" => Record::End,
        other => panic!("a {other} record on an established connection"),
    };
    if sends {
        match expected {
            Record::Data(data) => tx.seal_data(data, &mut sealed).unwrap(),
            Record::End => tx.seal_end(&mut sealed).unwrap(),
        }
    } else {
        let mut wire = unhex(&r.record_hex);
        let whole = wire.len();
        let opened = rx.open(&mut wire).unwrap().expect("a whole record");
        assert_eq!((opened.record, opened.consumed), (expected, whole), "opening {} {}", r.direction, r.kind);
    }
    sealed
}

/// What one end sealed for `r`: its bytes if the end `sends` it, nothing if it reads it.
fn check_sealed(c: &ParkedConnection, r: &RecordVector, sends: bool, sealed: &[u8]) {
    let expected = if sends { r.record_hex.as_str() } else { "" };
    assert_eq!(hex::encode(sealed), expected, "{}: sealing {} {}", c.name, r.direction, r.kind);
}

/// Runs one fail case; `Err` names the error as the vectors spell it.
fn run_fail_case(v: &Handshake, case: &FailCase) -> Result<(), String> {
    let keys = keys(v);
    let input = unhex(&case.input_hex);
    let name = |e: ProtoError| match e {
        ProtoError::Record(e) => record_error_name(e),
        e => format!("{e:?}"),
    };
    match case.step.as_str() {
        "accept" => {
            let hello: &[u8; HELLO_LEN] =
                input.as_slice().try_into().map_err(|_| "Incomplete".to_string())?;
            Responder::accept(std::slice::from_ref(&keys.psk), hello, EphemeralKey::from_bytes(keys.er))
                .map(drop)
                .map_err(name)
        }
        "response" => {
            let msg2: &[u8; MSG2_LEN] = input.as_slice().try_into().map_err(|_| "Incomplete".to_string())?;
            let (initiator, _) = Initiator::start(&keys.psk, EphemeralKey::from_bytes(keys.ei));
            initiator.read_response(msg2, &mut Vec::new()).map(drop).map_err(name)
        }
        "i2r" => {
            let hello: [u8; HELLO_LEN] = array(&v.hello_hex);
            let (unconfirmed, _, _) =
                Responder::accept(std::slice::from_ref(&keys.psk), &hello, EphemeralKey::from_bytes(keys.er))
                    .unwrap();
            let mut stream = input;
            let (transport, consumed) = match unconfirmed.confirm(&mut stream).map_err(name)? {
                Confirm::NeedMore(_) => return Err(record_error_name(RecordError::Truncated)),
                Confirm::Confirmed { transport, consumed, .. } => (transport, consumed),
                // A parked connection: accepted, then put to use by its next record.
                Confirm::Park { request, consumed } => {
                    let parked = request.accept(&mut Vec::new()).map_err(name)?;
                    match parked.wake(&mut stream[consumed..]).map_err(name)? {
                        Wake::NeedMore(_) => return Err(record_error_name(RecordError::Truncated)),
                        Wake::Retired(_) => return Ok(()),
                        Wake::Used { transport, consumed: used, .. } => (transport, consumed + used),
                    }
                }
            };
            let (_, mut rx) = transport.split();
            let got = receive(&mut rx, &stream[consumed..], &[stream.len()]);
            got.error.map_or(Ok(()), |e| Err(record_error_name(e)))
        }
        other => panic!("unknown step {other} in case {}", case.name),
    }
}

/// The names the vector files give record errors (they predate the record errors shared by both
/// protocols, whose variants drop the `Record` prefix).
fn record_error_name(e: RecordError) -> String {
    match e {
        RecordError::Auth => "RecordAuth".into(),
        RecordError::TooShort(len) => format!("RecordTooShort({len})"),
        RecordError::UnknownType(kind) => format!("UnknownRecordType({kind})"),
        RecordError::AfterEnd => "RecordAfterEnd".into(),
        e => format!("{e:?}"),
    }
}

fn check_fail_file(file: &str) {
    let v: Handshake = load("handshake.json");
    let fails: FailFile = load(file);
    assert!(fails.cases.len() >= 10, "{file} holds its cases");
    for case in &fails.cases {
        let got = run_fail_case(&v, case);
        assert_eq!(got, Err(case.error.clone()), "case {}", case.name);
    }
}

#[test]
fn every_failing_handshake_is_refused_with_its_error() {
    check_fail_file("fail_handshake.json");
}

#[test]
fn every_failing_record_stream_is_refused_with_its_error() {
    check_fail_file("fail_records.json");
}

#[test]
fn snow_also_refuses_the_forged_handshake_messages() {
    let v: Handshake = load("handshake.json");
    let keys = keys(&v);
    let fails: FailFile = load("fail_handshake.json");
    for case in fails.cases.iter().filter(|c| c.error == "HandshakeAuth") {
        let input = unhex(&case.input_hex);
        let refused = match case.step.as_str() {
            "accept" => {
                let mut resp = snow_builder(&keys.k, Some(&keys.er)).build_responder().unwrap();
                snow_msg2(&mut resp, input.as_slice().try_into().unwrap()).is_err()
            }
            _ => {
                let mut init = snow_builder(&keys.k, Some(&keys.ei)).build_initiator().unwrap();
                snow_hello(&mut init);
                init.read_message(&input, &mut []).is_err()
            }
        };
        assert!(refused, "snow accepted case {}", case.name);
    }
}
