//! `-f` (send y = 1 and skip the Diffie-Hellman: no forward secrecy) and `-g` (refuse a peer that
//! does so) in every combination that works: `-f` on either end or both, since a peer's y = 1 makes
//! the shared secret 1 at both ends; `-g` on either end or both while neither uses `-f`.

use crate::client::echo_round_trip;
use crate::ends::{Matrix, Pair};
use crate::support::{digest, echo_server, pattern, scratch};

/// The `-e` end's and the `-d` end's extra flags in each combination that must carry data.
const WORKING: [(&[&str], &[&str]); 6] =
    [(&["-f"], &[]), (&[], &["-f"]), (&["-f"], &["-f"]), (&["-g"], &[]), (&[], &["-g"]), (&["-g"], &["-g"])];

fn each_working_combination_carries_data(row: Matrix) {
    let echo = format!("[127.0.0.1]:{}", echo_server());
    for (i, (e_extra, d_extra)) in WORKING.into_iter().enumerate() {
        let dir = scratch(&format!("classic-fast-{i}"));
        let pair = Pair::start(&dir, row.ends(e_extra, d_extra), &echo);
        let data = pattern(20 + i as u64, 100_000);
        let logs = || format!("-e {e_extra:?}, -d {d_extra:?}\n{}", pair.logs());
        let back = echo_round_trip(&pair.e_addr, &data, &logs);
        assert_eq!(
            digest(&back),
            digest(&data),
            "{} of {} bytes came back; {}",
            back.len(),
            data.len(),
            logs()
        );
    }
}

#[test]
fn debian_pair_baseline() {
    each_working_combination_carries_data(Matrix::DebianPair);
}

#[test]
fn ours_classic_e_to_debian_d() {
    each_working_combination_carries_data(Matrix::OursToDebian);
}

#[test]
fn debian_e_to_ours_d() {
    each_working_combination_carries_data(Matrix::DebianToOurs);
}
