//! Standard input at /dev/null (an end of input at once): spipe half-closes straight after the
//! handshake and still receives the service's whole answer, then exits 0. Standard input as a regular
//! file is in every other transfer test.

use crate::support::spipe::{DEnd, TRANSFER_WITHIN, Wire, assert_same_bytes, speaker};
use crate::support::{echo_server, pattern, scratch};

/// The speaking service's answer: a few MiB, not a multiple of a classic packet or of 64 KiB.
const SPEECH: usize = (2 << 20) + 77;

/// The receiving direction on its own: a service that speaks first, then closes its side.
fn the_whole_speech_arrives(wire: Wire) {
    let dir = scratch("spipe-dev-null");
    let speech = pattern(11, SPEECH);
    let d = DEnd::start(&dir, &speaker(speech.clone()));
    let run = d.spipe(wire).run(TRANSFER_WITHIN);
    run.assert_clean(&d.log());
    assert_same_bytes(&run.stdout, &speech, &format!("{wire:?}: the speech"), &d.log());
}

/// Nothing sent, nothing echoed: an empty answer, and still a clean end.
fn an_echo_answers_nothing(wire: Wire) {
    let dir = scratch("spipe-dev-null-echo");
    let d = DEnd::start(&dir, &format!("[127.0.0.1]:{}", echo_server()));
    let run = d.spipe(wire).run(TRANSFER_WITHIN);
    run.assert_clean(&d.log());
    assert!(run.stdout.is_empty(), "{wire:?}: {} bytes came back", run.stdout.len());
}

#[test]
fn speaker_native() {
    the_whole_speech_arrives(Wire::Native);
}

#[test]
fn speaker_classic() {
    the_whole_speech_arrives(Wire::Classic);
}

#[test]
fn empty_echo_native() {
    an_echo_answers_nothing(Wire::Native);
}

#[test]
fn empty_echo_classic() {
    an_echo_answers_nothing(Wire::Classic);
}
