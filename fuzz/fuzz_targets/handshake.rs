//! Fuzzes the handshake readers: `Preamble::classify`, `Responder::accept`, `Initiator::read_response`
//! and `Unconfirmed::confirm`, then the responder's `Opener` on whatever follows a confirmation. The
//! responder holds three keys (`responder_keys`), the initiator one of them.
//!
//! The first byte picks a mode (modulo 3); the rest is that mode's input:
//!
//! - 0, raw: the next `HELLO_LEN` bytes are a hello for the responder, the next `MSG2_LEN` a message 2
//!   for an initiator that sent the fixed hello, and the rest the responder's stream after message 2.
//! - 1, honest hello: the target makes a valid hello from the fixed keys, so the responder always
//!   accepts; the next `MSG2_LEN` bytes go to the initiator and the rest to `confirm`.
//! - 2, tampered honest run: the target runs a whole honest connection (hello, message 2, the
//!   confirmation record, two data records and an end-of-stream) and the input is XOR-ed over it,
//!   `HELLO_LEN` bytes over the hello, `MSG2_LEN` over message 2, then one byte choosing where the
//!   stream is cut for a first `confirm` call, then the rest over the stream (bytes beyond the stream
//!   are appended). Every change to a handshake message must be refused, the unchanged run must
//!   succeed, and every record that opens must be exactly the one sealed.
//!
//! Nothing may panic on any input; every assertion is a property of the protocol.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped::proto::native::{
    Confirm, HELLO_LEN, Initiator, MSG2_LEN, PREAMBLE, PREAMBLE_LEN, Preamble, ProtoError, RECORD_OVERHEAD,
    Responder, Transport, Unconfirmed,
};
use spiped::proto::{RecordError, Seal};
use spiped_rs_fuzz::{
    Input, Reader, SHARED_KEY_INDEX, Sealed, initiator_key, psk, responder_key, responder_keys,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let input = Input::new(rest);
    match mode % 3 {
        0 => raw(input),
        1 => honest_hello(input),
        _ => tampered(input),
    }
});

/// Mode 0: every handshake message comes from the fuzzer.
fn raw(mut input: Input<'_>) {
    let psk = psk();
    let hello = input.take(HELLO_LEN);
    if let Some(preamble) = hello.first_chunk::<PREAMBLE_LEN>() {
        check_classify(preamble);
    }
    let unconfirmed = <&[u8; HELLO_LEN]>::try_from(hello).ok().and_then(accept).map(|(u, _msg2)| u);

    let (initiator, _) = Initiator::start(&psk, initiator_key());
    if let Some(msg2) = input.array::<MSG2_LEN>() {
        read_response(initiator, msg2);
    }

    if let Some(unconfirmed) = unconfirmed {
        drive(unconfirmed, input.rest(), None, None);
    }
}

/// Mode 1: an honest hello, so the initiator's and the responder's later steps see fuzzer bytes.
fn honest_hello(mut input: Input<'_>) {
    let (initiator, hello) = Initiator::start(&psk(), initiator_key());
    let (unconfirmed, _msg2) = accept(&hello).expect("an honest hello is accepted");
    if let Some(msg2) = input.array::<MSG2_LEN>() {
        read_response(initiator, msg2);
    }
    drive(unconfirmed, input.rest(), None, None);
}

/// Mode 2: an honest connection with the fuzzer's bytes XOR-ed over it.
fn tampered(mut input: Input<'_>) {
    let psk = psk();
    let (initiator, honest_hello) = Initiator::start(&psk, initiator_key());
    let mut hello = honest_hello;
    xor(&mut hello, input.take(HELLO_LEN));
    check_classify(hello.first_chunk().expect("a hello starts with a preamble"));
    let accepted = accept(&hello);
    assert_eq!(accepted.is_some(), hello == honest_hello, "a hello was accepted only if unchanged");
    let Some((unconfirmed, honest_msg2)) = accepted else { return };

    let mut msg2 = honest_msg2;
    xor(&mut msg2, input.take(MSG2_LEN));
    let cut = input.byte().map_or(usize::MAX, usize::from);

    // What the initiator sends: its confirmation record and, if it has one, some records after it.
    let mut stream = Vec::new();
    let mut sealed = Vec::new();
    let mut wire_out = Vec::new();
    let transport = initiator.read_response(&msg2, &mut wire_out);
    assert_eq!(transport.is_ok(), msg2 == honest_msg2, "message 2 was accepted only if unchanged");
    if let Ok(transport) = transport {
        stream = wire_out;
        let (mut sealer, _) = transport.split();
        sealer
            .seal_data(b"the first record after key confirmation", &mut stream)
            .expect("a fresh sealer seals");
        sealed.push(Sealed::Data(b"the first record after key confirmation".to_vec()));
        sealer.seal_data(b"", &mut stream).expect("a fresh sealer seals");
        sealed.push(Sealed::Data(Vec::new()));
        sealer.seal_end(&mut stream).expect("a fresh sealer seals");
        sealed.push(Sealed::End);
    }
    let honest_stream = stream.clone();
    let mask = input.rest();
    xor(&mut stream, mask);
    if let Some(extra) = mask.get(stream.len()..) {
        stream.extend_from_slice(extra);
    }

    let confirmed =
        drive(unconfirmed, &stream, Some(cut), (!honest_stream.is_empty()).then_some(&sealed[..]));
    if !honest_stream.is_empty() && stream == honest_stream {
        assert_eq!(confirmed, Some(true), "the honest run confirms and ends cleanly");
    }
}

/// XORs `mask` over the start of `bytes` (as far as both go).
fn xor(bytes: &mut [u8], mask: &[u8]) {
    bytes.iter_mut().zip(mask).for_each(|(b, m)| *b ^= m);
}

/// `classify` agrees with `check` and with the definition of the preamble.
fn check_classify(first: &[u8; PREAMBLE_LEN]) {
    let class = Preamble::classify(first);
    let check = Preamble::check(first);
    match class {
        Preamble::Native => {
            assert_eq!(*first, PREAMBLE);
            assert_eq!(check, Ok(()));
        }
        Preamble::OtherVersion(v) => {
            assert_eq!(first[..PREAMBLE_LEN - 1], PREAMBLE[..PREAMBLE_LEN - 1]);
            assert_eq!(first[PREAMBLE_LEN - 1], v);
            assert_ne!(v, PREAMBLE[PREAMBLE_LEN - 1]);
            assert_eq!(check, Err(ProtoError::UnsupportedVersion(v)));
        }
        Preamble::Foreign => {
            assert_ne!(first[..PREAMBLE_LEN - 1], PREAMBLE[..PREAMBLE_LEN - 1]);
            assert_eq!(check, Err(ProtoError::NotNative));
        }
    }
}

/// The responder, holding several keys, reads `hello`; its verdict must agree with the preamble's,
/// and a hello it accepts can only have been made with the one key an initiator holds.
fn accept(hello: &[u8; HELLO_LEN]) -> Option<(Unconfirmed, [u8; MSG2_LEN])> {
    let preamble = hello.first_chunk::<PREAMBLE_LEN>().expect("a hello starts with a preamble");
    let result = Responder::accept(&responder_keys(), hello, responder_key());
    match (Preamble::check(preamble), &result) {
        (Err(refused), result) => assert_eq!(result.as_ref().err(), Some(&refused)),
        (Ok(()), Ok((_, _, key))) => assert_eq!(*key, SHARED_KEY_INDEX, "accepted under an unused key"),
        (Ok(()), Err(e)) => {
            assert!(matches!(e, ProtoError::HandshakeAuth | ProtoError::NonContributory), "accept: {e:?}");
        }
    }
    result.ok().map(|(unconfirmed, msg2, _)| (unconfirmed, msg2))
}

/// The initiator reads `msg2`: it either fails with a handshake error or emits one confirmation record.
fn read_response(initiator: Initiator, msg2: &[u8; MSG2_LEN]) -> Option<Transport> {
    let mut out = Vec::new();
    match initiator.read_response(msg2, &mut out) {
        Ok(transport) => {
            assert_eq!(out.len(), RECORD_OVERHEAD, "the confirmation record is an empty data record");
            Some(transport)
        }
        Err(e) => {
            assert!(
                matches!(e, ProtoError::HandshakeAuth | ProtoError::NonContributory),
                "read_response: {e:?}"
            );
            assert!(out.is_empty(), "a refused message 2 sends nothing");
            None
        }
    }
}

/// Feeds `stream` to `confirm` (first only `stream[..cut]`, if `cut` is inside it), then opens the rest
/// with the confirmed transport's opener. `sealed` lists the records after the confirmation, when known.
/// Returns `None` if the initiator was never confirmed, else whether the stream ended cleanly.
fn drive(
    unconfirmed: Unconfirmed,
    stream: &[u8],
    cut: Option<usize>,
    sealed: Option<&[Sealed]>,
) -> Option<bool> {
    let mut buf = stream.to_vec();
    let mut unconfirmed = unconfirmed;
    if let Some(cut) = cut.filter(|&cut| cut < buf.len()) {
        match unconfirmed.confirm(&mut buf[..cut]) {
            Ok(Confirm::NeedMore(u)) => unconfirmed = u,
            other => return confirmed(other, stream, sealed),
        }
    }
    let result = unconfirmed.confirm(&mut buf);
    if let Ok(Confirm::NeedMore(u)) = result {
        // Asking again with the same bytes changes nothing: an incomplete record consumes no counter.
        assert!(matches!(u.confirm(&mut buf), Ok(Confirm::NeedMore(_))), "confirm is not repeatable");
        return None;
    }
    confirmed(result, stream, sealed)
}

/// Checks a final `confirm` verdict and, if the initiator is confirmed, opens the records after it.
fn confirmed(
    result: Result<Confirm<'_>, ProtoError>,
    stream: &[u8],
    sealed: Option<&[Sealed]>,
) -> Option<bool> {
    match result {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    ProtoError::Record(
                        RecordError::TooShort(_)
                            | RecordError::Auth
                            | RecordError::UnknownType(_)
                            | RecordError::EndWithBody
                            | RecordError::MisplacedPark
                    ) | ProtoError::ConfirmationNotData
                ),
                "confirm: {e:?}"
            );
            None
        }
        Ok(Confirm::NeedMore(_)) => None,
        // A park record: only a holder of the key seals one, and the honest initiator here does not.
        Ok(Confirm::Park { consumed, .. }) => {
            assert_eq!(consumed, RECORD_OVERHEAD, "a park record has no body");
            assert!(sealed.is_none(), "the honest confirmation is a data record");
            None
        }
        Ok(Confirm::Confirmed { transport, data, consumed }) => {
            assert_eq!(consumed, RECORD_OVERHEAD + data.len());
            if sealed.is_some() {
                assert!(data.is_empty(), "the honest confirmation record is empty");
            }
            let (_, opener) = transport.split();
            let mut reader = Reader::new(opener, sealed);
            reader.feed(&stream[consumed..]);
            Some(reader.finish())
        }
    }
}
