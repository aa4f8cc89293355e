//! 256 MiB each way in one connection, through an echo server, byte-exact.

use crate::client::echo_round_trip;
use crate::ends::{Matrix, Pair};
use crate::support::{digest, echo_server, pattern, scratch};

/// Bytes sent, and so echoed back.
const SIZE: usize = 256 << 20;

fn two_hundred_fifty_six_mib_each_way(row: Matrix) {
    let dir = scratch("classic-bulk");
    let pair = Pair::start(&dir, row.ends(&[], &[]), &format!("[127.0.0.1]:{}", echo_server()));
    let data = pattern(12, SIZE);
    let back = echo_round_trip(&pair.e_addr, &data, &|| pair.logs());
    assert_eq!(back.len(), data.len(), "{}", pair.logs());
    assert_eq!(digest(&back), digest(&data));
}

#[test]
fn debian_pair_baseline() {
    two_hundred_fifty_six_mib_each_way(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    two_hundred_fifty_six_mib_each_way(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    two_hundred_fifty_six_mib_each_way(Matrix::DebianToOurs);
}
