//! Fuzzes the record layer of an established connection: the responder's `Opener`, fed in pieces, and
//! `Opener::finish` on what is left when the transport closes.
//!
//! Each run first completes an honest handshake in memory from fixed keys. The first input byte picks
//! a mode (its low bit):
//!
//! - 0, raw stream: the rest is `[n, n bytes]*`: each chunk is appended to the receive buffer and every
//!   whole record in it opened, so the incomplete-record (`Ok(None)`) paths run at every offset.
//! - 1, tampered records: the initiator's `Sealer` seals records of fuzzer-chosen sizes, fuzzer-chosen
//!   edits (XOR, truncation, deletion, duplication, insertion) are applied to the wire bytes, and the
//!   result is fed in fuzzer-chosen chunks. Any record that opens must be exactly the record sealed in
//!   that position; the unedited wire must open completely, whatever the chunking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spiped::proto::native::{MAX_RECORD_DATA, RECORD_MAX_BODY, RECORD_OVERHEAD, Sealer};
use spiped::proto::{RecordError, Seal};
use spiped_rs_fuzz::{Input, Reader, Sealed, establish};

/// Most plaintext one run seals, to keep runs fast.
const MAX_TOTAL_PLAINTEXT: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (initiator, responder) = {
        let established = establish();
        (established.initiator.split().0, established.responder.split().1)
    };
    let mut input = Input::new(rest);
    if mode & 1 == 0 {
        let mut reader = Reader::new(responder, None);
        while let Some(n) = input.byte() {
            reader.feed(input.take(usize::from(n)));
        }
        reader.finish();
    } else {
        let (wire, sealed) = seal(initiator, &mut input);
        let honest = wire.clone();
        let wire = edit(wire, &mut input);
        let mut reader = Reader::new(responder, Some(&sealed));
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
        let opened = reader.opened();
        let error = reader.error();
        let clean = reader.finish();
        if wire == honest {
            assert_eq!(error, None, "the honest wire failed after {opened} records");
            assert_eq!(opened, sealed.len(), "the honest wire did not open completely");
            assert_eq!(clean, sealed.last() == Some(&Sealed::End));
        }
    }
});

/// Seals records as the input says. The first byte is the number of operations (modulo 16); each is a
/// kind byte and its arguments. Returns the wire bytes and the records they must open to.
fn seal(mut sealer: Sealer, input: &mut Input<'_>) -> (Vec<u8>, Vec<Sealed>) {
    let mut wire = Vec::new();
    let mut sealed = Vec::new();
    let mut budget = MAX_TOTAL_PLAINTEXT;
    let ops = input.byte().unwrap_or(0) % 16;
    let mut ended = false;
    for _ in 0..ops {
        let Some(kind) = input.byte() else { break };
        let before = wire.len();
        let result = match kind % 4 {
            // seal_data with a short body, or with a long one (it splits into several records).
            k @ (0 | 1) => {
                let len = if k == 0 { input.le::<1>() } else { input.le::<2>() }.min(budget);
                let data = pattern(MAX_TOTAL_PLAINTEXT - budget, len);
                budget -= len;
                let result = sealer.seal_data(&data, &mut wire);
                if result.is_ok() {
                    if data.is_empty() {
                        sealed.push(Sealed::Data(Vec::new()));
                    }
                    sealed.extend(data.chunks(MAX_RECORD_DATA).map(|chunk| Sealed::Data(chunk.to_vec())));
                    let records = data.len().div_ceil(MAX_RECORD_DATA).max(1);
                    assert_eq!(wire.len() - before, data.len() + records * RECORD_OVERHEAD);
                }
                result
            }
            // The zero-copy path, with any body size the wire allows.
            2 => {
                let len = (input.le::<2>() % (RECORD_MAX_BODY + 1)).min(budget);
                let body = pattern(MAX_TOTAL_PLAINTEXT - budget, len);
                budget -= len;
                // [header | type | body | tag]: the sealer fills in all but the body.
                let mut frame = vec![0; RECORD_OVERHEAD + len];
                frame[<Sealer as Seal>::BODY_OFFSET..][..len].copy_from_slice(&body);
                let result = sealer.seal_frame(&mut frame, len);
                if result.is_ok() {
                    wire.extend_from_slice(&frame);
                    sealed.push(Sealed::Data(body));
                }
                result
            }
            _ => {
                let result = sealer.seal_end(&mut wire);
                if result.is_ok() {
                    sealed.push(Sealed::End);
                }
                result
            }
        };
        match result {
            Ok(()) => assert!(!ended, "sealed after end-of-stream"),
            Err(e) => {
                assert_eq!(e, RecordError::SealAfterEnd);
                assert!(ended, "{e:?} before end-of-stream");
                assert_eq!(wire.len(), before, "a refused seal left bytes behind");
            }
        }
        ended |= kind % 4 == 3;
    }
    (wire, sealed)
}

/// `len` bytes of plaintext starting at offset `start` of everything sealed: a pseudo-random sequence,
/// so no two records' bodies are alike and a record opened in the wrong place cannot pass for the right one.
fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|x| ((x as u32).wrapping_mul(0x9e37_79b1) >> 24) as u8).collect()
}

/// Applies edits to the wire as the input says. The first byte is the number of edits (modulo 16); each
/// is a kind byte, a 3-byte position (modulo the wire length plus one) and an argument byte.
fn edit(mut wire: Vec<u8>, input: &mut Input<'_>) -> Vec<u8> {
    let edits = input.byte().unwrap_or(0) % 16;
    for _ in 0..edits {
        let Some(kind) = input.byte() else { break };
        let pos = input.le::<3>() % (wire.len() + 1);
        let arg = input.byte().unwrap_or(0);
        let end = wire.len().min(pos + usize::from(arg));
        match kind % 5 {
            0 => {
                if let Some(b) = wire.get_mut(pos) {
                    *b ^= arg;
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
            _ => wire.insert(pos, arg),
        }
    }
    wire
}
