//! Half-close, as spiped's own test 08: a file of a few KB goes to a slow echo (about 1,000 bytes a
//! second) through our `-d` end. spipe's standard input ends long before the echo does, so spipe
//! half-closes (native: the authenticated end of stream; classic: a FIN) and must still receive the
//! whole echo, byte-exact, and exit 0; the echo must read a clean end of stream after the whole file.
//! Against Debian's spiped `-d`: `tests/classic/spipe.rs`.

use crate::support::spipe::{DEnd, SlowEcho, Wire, assert_same_bytes, through_files};
use crate::support::{pattern, scratch};

/// A few KB: about three seconds of the slow echo, and not a multiple of its chunk.
const SIZE: usize = 3_333;

fn the_whole_echo_arrives_after_standard_input_ends(wire: Wire) {
    let dir = scratch("spipe-half-close");
    let echo = SlowEcho::start();
    let d = DEnd::start(&dir, &echo.target());
    let data = pattern(8, SIZE);

    let back = through_files(&dir, d.spipe(wire), &data, || d.log());
    assert_same_bytes(&back, &data, &format!("{wire:?}: the slow echo"), &d.log());
    echo.assert_clean_end_after(SIZE, &d.log());
}

#[test]
fn native() {
    the_whole_echo_arrives_after_standard_input_ends(Wire::Native);
}

#[test]
fn classic() {
    the_whole_echo_arrives_after_standard_input_ends(Wire::Classic);
}
