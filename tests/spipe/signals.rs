//! SIGHUP, which ssh sends to its ProxyCommand as it exits, does not cut the connection: spipe goes on
//! until both directions have ended, and the `-d` end's service sees a clean end. (ssh has closed
//! spipe's standard input by then; `tests/ssh.rs` checks the real thing, this the signal alone.)

use std::io::Write;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::spipe::{DEnd, SlowEcho, Wire, assert_same_bytes};
use crate::support::{pattern, scratch};

/// A few KB through the slow echo: a few seconds, so the signal lands mid-stream.
const SIZE: usize = 2_222;

/// How long the echo and spipe's exit may take, generously.
const WITHIN: Duration = Duration::from_secs(60);

fn a_hang_up_mid_stream_changes_nothing(wire: Wire) {
    let dir = scratch("spipe-sighup");
    let echo = SlowEcho::start();
    let d = DEnd::start(&dir, &echo.target());
    let data = pattern(21, SIZE);

    let mut spipe = d.spipe(wire).stdin_piped().spawn();
    let mut stdin = spipe.take_stdin();
    stdin.write_all(&data).unwrap();
    let mut back = spipe.read_stdout(100, WITHIN);
    spipe.signal(Signal::SIGHUP);
    drop(stdin);
    let out = spipe.wait(WITHIN);
    out.assert_clean(&d.log());
    back.extend_from_slice(&out.stdout);
    assert_same_bytes(&back, &data, &format!("{wire:?}: the slow echo after a SIGHUP"), &d.log());
    echo.assert_clean_end_after(SIZE, &d.log());
}

#[test]
fn native() {
    a_hang_up_mid_stream_changes_nothing(Wire::Native);
}

#[test]
fn classic() {
    a_hang_up_mid_stream_changes_nothing(Wire::Classic);
}
