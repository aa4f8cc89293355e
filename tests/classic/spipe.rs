//! spiped 1.6's `spipe`, the client that pipes its standard input through one connection and writes
//! what comes back to its standard output, against a `-d` end in front of an echo server: a file
//! goes through and comes back byte-exact, and spipe exits 0.

use std::time::Duration;

use crate::ends::EndSpec;
use crate::support::classic::{run_spipe, write_file};
use crate::support::{digest, echo_server, free_port, key_file, pattern, scratch};

/// The file's size: not a multiple of a classic packet's 1024 data bytes.
const SIZE: usize = (16 << 20) + 333;

/// How long spipe may take: spiped 1.6 at the other end does it in well under a second.
const SPIPE_WITHIN: Duration = Duration::from_secs(120);

fn a_file_through_spipe_comes_back_byte_exact(d: EndSpec) {
    let dir = scratch("classic-spipe");
    let key = key_file(&dir, "k");
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let d = d.start(&dir, "d", "-d", &d_source, &format!("[127.0.0.1]:{}", echo_server()), &key);
    let (input, output) = (dir.join("input"), dir.join("output"));
    let data = pattern(30, SIZE);
    write_file(&input, &data);

    let run = run_spipe(&d_source, &key, &[], &input, &output, SPIPE_WITHIN);
    assert!(run.status.success(), "spipe: {}: {}\n-d end's log:\n{}", run.status, run.stderr, d.log_text());
    let back = std::fs::read(&output).unwrap();
    assert_eq!(back.len(), data.len(), "spipe: {}\n-d end's log:\n{}", run.stderr, d.log_text());
    assert_eq!(digest(&back), digest(&data));
}

#[test]
fn debian_pair_baseline() {
    a_file_through_spipe_comes_back_byte_exact(EndSpec::debian(&[]));
}

#[test]
fn debian_spipe_to_ours_d() {
    a_file_through_spipe_comes_back_byte_exact(EndSpec::ours(&[]));
}
