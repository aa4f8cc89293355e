//! Byte-exact transfers: a file of a few MiB through spipe to our `-d` end in front of an echo comes
//! back identical, over TCP and over a unix socket, in either protocol; and the sending direction on
//! its own, to a sink that answers only a digest of what it read (the receiving direction on its own
//! is `stdin`'s service that speaks first).

use std::path::Path;

use crate::support::classic::write_file;
use crate::support::spipe::{
    DEnd, TRANSFER_WITHIN, Wire, assert_same_bytes, digest_sink, sink_answer, through_files,
};
use crate::support::{echo_server, pattern, scratch};

/// A few MiB: a multiple neither of a classic packet's 1024 data bytes nor of the 64 KiB spipe reads
/// standard input in, so the last record and the last read are partial ones.
const SIZE: usize = (3 << 20) + 333;

/// Sends a file of [`SIZE`] bytes through spipe to `d` (in front of an echo) and checks that it comes
/// back identical, and that spipe exits 0 with nothing on standard error.
fn echoed_byte_exact(dir: &Path, d: &DEnd, wire: Wire) {
    let data = pattern(13, SIZE);
    let back = through_files(dir, d.spipe(wire), &data, || d.log());
    assert_same_bytes(&back, &data, &format!("{wire:?}: the echo"), &d.log());
}

fn through_tcp(wire: Wire) {
    let dir = scratch("spipe-echo");
    let d = DEnd::start(&dir, &format!("[127.0.0.1]:{}", echo_server()));
    echoed_byte_exact(&dir, &d, wire);
}

fn through_a_unix_socket(wire: Wire) {
    let dir = scratch("spipe-unix");
    let socket = dir.join("d.sock");
    let socket = socket.to_str().expect("scratch paths are UTF-8");
    let d = DEnd::start_on(&dir, socket, &format!("[127.0.0.1]:{}", echo_server()));
    echoed_byte_exact(&dir, &d, wire);
}

/// Only the sending direction carries the file; the answer is one short line, its length and digest.
fn to_a_sink(wire: Wire) {
    let dir = scratch("spipe-sink");
    let d = DEnd::start(&dir, &digest_sink());
    let input = dir.join("input");
    let data = pattern(14, SIZE);
    write_file(&input, &data);

    let run = d.spipe(wire).stdin_file(&input).run(TRANSFER_WITHIN);
    run.assert_clean(&d.log());
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&sink_answer(&data)),
        "{wire:?}: the sink read the whole file, byte-exact\n{}",
        d.log()
    );
}

#[test]
fn echo_native() {
    through_tcp(Wire::Native);
}

#[test]
fn echo_classic() {
    through_tcp(Wire::Classic);
}

#[test]
fn unix_socket_native() {
    through_a_unix_socket(Wire::Native);
}

#[test]
fn unix_socket_classic() {
    through_a_unix_socket(Wire::Classic);
}

#[test]
fn sink_native() {
    to_a_sink(Wire::Native);
}

#[test]
fn sink_classic() {
    to_a_sink(Wire::Classic);
}
