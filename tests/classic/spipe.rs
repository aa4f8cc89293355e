//! The `spipe` client against a `-d` end, either implementation at either end: spiped 1.6's `spipe` and
//! ours with `--protocol classic`, against spiped 1.6's `-d` and ours. A file goes through an echo and
//! comes back byte-exact; a file goes to a slow echo and the whole echo still arrives after spipe's
//! half-close (spiped's own test 08); both exit 0. Our spipe against spiped 1.6's `-d` with another
//! key fails the handshake, and without `--protocol classic` says to add it. Our spipe against our
//! own `-d` end: `tests/spipe.rs`.

use std::path::Path;
use std::time::Duration;

use crate::ends::{End, EndSpec};
use crate::support::classic::{SpipeRun, run_spipe, write_file};
use crate::support::spipe::{SlowEcho, SpipeCmd, Wire, assert_same_bytes};
use crate::support::{echo_server, free_port, key_file, pattern, scratch};

/// The file's size: not a multiple of a classic packet's 1024 data bytes.
const SIZE: usize = (16 << 20) + 333;

/// The slow echo's file: a few KB, about three seconds of it.
const SLOW_SIZE: usize = 3_333;

/// How long spipe may take: spiped 1.6 at the other end does it in well under a second.
const SPIPE_WITHIN: Duration = Duration::from_secs(120);

/// Which `spipe` runs.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// spiped 1.6's.
    Debian,
    /// Ours, with `--protocol classic`.
    Ours,
}

impl Client {
    /// Runs this spipe to `target` with `key`, its standard input from `input` and its standard output
    /// to `output`, and returns how it ended.
    fn run(self, target: &str, key: &Path, input: &Path, output: &Path) -> SpipeRun {
        match self {
            Client::Debian => run_spipe(target, key, &[], input, output, SPIPE_WITHIN),
            Client::Ours => {
                let cmd = SpipeCmd::new(target, key).args(Wire::Classic.args());
                let run = cmd.stdin_file(input).stdout_file(output).run(SPIPE_WITHIN);
                SpipeRun { status: run.status, stderr: run.stderr }
            }
        }
    }
}

/// Starts `d` on a free port in front of `service` with a fresh key, sends `data` from a file through
/// `client`, checks a clean end (exit 0, nothing on standard error), and returns the `-d` end (for its
/// log) and what came back.
fn through(client: Client, d: EndSpec, service: &str, data: &[u8]) -> (End, Vec<u8>) {
    let dir = scratch("classic-spipe");
    let key = key_file(&dir, "k");
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let d = d.start(&dir, "d", "-d", &d_source, service, &key);
    let (input, output) = (dir.join("input"), dir.join("output"));
    write_file(&input, data);

    let run = client.run(&d_source, &key, &input, &output);
    assert!(
        run.status.success() && run.stderr.is_empty(),
        "{client:?} spipe: {}: {:?}\n-d end's log:\n{}",
        run.status,
        run.stderr,
        d.log_text()
    );
    let back = std::fs::read(&output).unwrap();
    (d, back)
}

fn a_file_through_spipe_comes_back_byte_exact(client: Client, d: EndSpec) {
    let data = pattern(30, SIZE);
    let (d, back) = through(client, d, &format!("[127.0.0.1]:{}", echo_server()), &data);
    assert_same_bytes(&back, &data, &format!("{client:?} spipe: the echo"), &d.log_text());
}

/// spiped's test 08: standard input ends long before the slow echo does, so spipe half-closes (a FIN)
/// and must still receive the whole echo; the echo reads a clean end after the whole file.
fn the_whole_slow_echo_arrives_after_the_half_close(client: Client, d: EndSpec) {
    let echo = SlowEcho::start();
    let data = pattern(31, SLOW_SIZE);
    let (d, back) = through(client, d, &echo.target(), &data);
    assert_same_bytes(&back, &data, &format!("{client:?} spipe: the slow echo"), &d.log_text());
    echo.assert_clean_end_after(SLOW_SIZE, &d.log_text());
}

/// Which key our spipe holds in [`ours_against_debian_d_fails`].
enum SpipeKey {
    /// The `-d` end's.
    Same,
    /// Another one.
    Other,
}

/// Our spipe against spiped 1.6's `-d` (in front of an echo) with `extra` flags, standard input
/// /dev/null: it must fail. Returns its one line of standard error, which starts `prefix`.
fn ours_against_debian_d_fails(extra: &[&str], spipe_key: SpipeKey, prefix: &str) -> String {
    let dir = scratch("classic-spipe-refused");
    let key = key_file(&dir, "k");
    let d_source = format!("[127.0.0.1]:{}", free_port());
    let echo = format!("[127.0.0.1]:{}", echo_server());
    let d = EndSpec::debian(&[]).start(&dir, "d", "-d", &d_source, &echo, &key);
    let spipe_key = match spipe_key {
        SpipeKey::Same => key,
        SpipeKey::Other => key_file(&dir, "other.key"),
    };
    let run = SpipeCmd::new(&d_source, &spipe_key).args(extra).run(SPIPE_WITHIN);
    run.assert_failed(prefix, &format!("-d end's log:\n{}", d.log_text())).to_string()
}

#[test]
fn debian_pair_baseline() {
    a_file_through_spipe_comes_back_byte_exact(Client::Debian, EndSpec::debian(&[]));
}

#[test]
fn debian_spipe_to_ours_d() {
    a_file_through_spipe_comes_back_byte_exact(Client::Debian, EndSpec::ours(&[]));
}

#[test]
fn ours_spipe_to_debian_d() {
    a_file_through_spipe_comes_back_byte_exact(Client::Ours, EndSpec::debian(&[]));
}

#[test]
fn half_close_debian_pair_baseline() {
    the_whole_slow_echo_arrives_after_the_half_close(Client::Debian, EndSpec::debian(&[]));
}

#[test]
fn half_close_debian_spipe_to_ours_d() {
    the_whole_slow_echo_arrives_after_the_half_close(Client::Debian, EndSpec::ours(&[]));
}

#[test]
fn half_close_ours_spipe_to_debian_d() {
    the_whole_slow_echo_arrives_after_the_half_close(Client::Ours, EndSpec::debian(&[]));
}

/// spiped 1.6's `-d` closes without a word on a wrong key: our spipe says the handshake failed and
/// that a wrong key is one reason.
#[test]
fn wrong_key_ours_spipe_to_debian_d() {
    let line =
        ours_against_debian_d_fails(Wire::Classic.args(), SpipeKey::Other, "spipe: handshake failed: ");
    assert!(line.contains("wrong key"), "{line}");
}

/// Our spipe on its default protocol (native) against a classic `-d` end: the message names the flag
/// that fixes it. Default `-o` (5 s), longer than the second of silence that tells a classic target.
#[test]
fn native_spipe_to_debian_d_names_protocol_classic() {
    let line = ours_against_debian_d_fails(Wire::Native.args(), SpipeKey::Same, "spipe: handshake failed: ");
    assert!(line.contains("--protocol classic"), "{line}");
}
