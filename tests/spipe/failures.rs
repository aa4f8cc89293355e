//! Each way a connection fails ends spipe with exit 1 and exactly one line on standard error, starting
//! as the contract says: nobody listening, a wrong key, the `-d` end killed mid-stream, the `-d` end's
//! service down, the reader of standard output gone, a target that never answers. A wrong key and a
//! native spipe against Debian's spiped `-d`: `tests/classic/spipe.rs`.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::classic::write_file;
use crate::support::spipe::{DEnd, SlowEcho, SpipeCmd, TRANSFER_WITHIN, Wire, silent_listener, speaker};
use crate::support::{echo_server, free_port, key_file, pattern, scratch};

/// How long a failing spipe may take to exit before the test fails: far longer than it needs.
const FAIL_WITHIN: Duration = Duration::from_secs(20);

#[test]
fn unreachable_target() {
    let dir = scratch("spipe-unreachable");
    let target = format!("[127.0.0.1]:{}", free_port());
    let run = SpipeCmd::new(&target, &key_file(&dir, "k")).run(FAIL_WITHIN);
    run.assert_failed(&format!("spipe: cannot connect to {target}: "), "");
}

/// Our `-d` end holds another key: the handshake fails, and spipe says it may be the key.
fn wrong_key(wire: Wire) {
    let dir = scratch("spipe-wrong-key");
    let d = DEnd::start(&dir, &format!("[127.0.0.1]:{}", echo_server()));
    let other = key_file(&dir, "other.key");
    let run = SpipeCmd::new(&d.source, &other).args(wire.args()).run(FAIL_WITHIN);
    let line = run.assert_failed("spipe: handshake failed: ", &d.log());
    assert!(line.contains("wrong key"), "{wire:?}: {line}");
}

#[test]
fn wrong_key_native() {
    wrong_key(Wire::Native);
}

#[test]
fn wrong_key_classic() {
    wrong_key(Wire::Classic);
}

/// The `-d` end is killed (SIGKILL) while the slow echo's answer is on its way. Standard input (a
/// small file) has ended, so the sending direction is done: the only way to exit 0 would be to take
/// the cut for the end of the answer. The native stream ends with an authenticated record, so a cut
/// is never a clean end. (A classic stream ends with a plain FIN, which a killed `-d` end sends too
/// when nothing waits unread on its socket: there the cut cannot be told from an end.)
#[test]
fn d_end_killed_mid_stream_native() {
    let dir = scratch("spipe-killed");
    let echo = SlowEcho::start();
    let d = DEnd::start(&dir, &echo.target());
    let input = dir.join("input");
    // Twenty seconds of the slow echo: the kill comes long before its end.
    write_file(&input, &pattern(9, 20_000));

    let mut spipe = d.spipe(Wire::Native).stdin_file(&input).spawn();
    spipe.read_stdout(1, FAIL_WITHIN);
    d.spiped.signal(Signal::SIGKILL);
    let run = spipe.wait(FAIL_WITHIN);
    run.assert_failed("spipe: connection aborted: ", &d.log());
}

/// Nobody listens where the `-d` end's service should be: the `-d` end resets the connection.
fn service_down(wire: Wire) {
    let dir = scratch("spipe-service-down");
    let d = DEnd::start(&dir, &format!("[127.0.0.1]:{}", free_port()));
    let run = d.spipe(wire).run(FAIL_WITHIN);
    run.assert_failed("spipe: connection aborted: ", &d.log());
}

#[test]
fn service_down_native() {
    service_down(Wire::Native);
}

#[test]
fn service_down_classic() {
    service_down(Wire::Classic);
}

/// As `spipe ... | head -c 10`: the reader of standard output goes away after ten bytes of a long
/// answer, and spipe says it cannot write, rather than passing for a clean end.
#[test]
fn stdout_reader_gone() {
    let dir = scratch("spipe-stdout-gone");
    // Far more than the pipes and socket buffers on the way hold.
    let d = DEnd::start(&dir, &speaker(pattern(10, 4 << 20)));
    let mut spipe = d.spipe(Wire::Native).spawn();
    spipe.read_stdout(10, FAIL_WITHIN);
    drop(spipe.take_stdout());
    let run = spipe.wait(TRANSFER_WITHIN);
    run.assert_failed("spipe: cannot write standard output: ", &d.log());
}

/// A plain TCP listener that accepts and never answers, with `-o 0.5`: the handshake times out.
fn silent_target(wire: Wire) {
    let dir = scratch("spipe-silent");
    let target = silent_listener();
    let run = SpipeCmd::new(&target, &key_file(&dir, "k")).args(wire.args()).args(["-o", "0.5"]);
    let run = run.run(FAIL_WITHIN);
    let line = run.assert_failed("spipe: handshake failed: ", "");
    assert!(line.contains("did not answer in time"), "{wire:?}: {line}");
}

#[test]
fn silent_target_native() {
    silent_target(Wire::Native);
}

#[test]
fn silent_target_classic() {
    silent_target(Wire::Classic);
}
