//! The command line as users meet it: `-v` and `-h` exit 0, `-k -` is refused with the usage (standard
//! input carries the data), and an empty key file is refused before any connection.

use std::time::Duration;

use spiped::spipe::cli::USAGE;

use crate::support::spipe::SpipeCmd;
use crate::support::{free_port, scratch};

/// How long spipe may take to answer its command line before the test fails.
const WITHIN: Duration = Duration::from_secs(20);

#[test]
fn version_prints_the_version_and_exits_zero() {
    for flag in ["-v", "--version"] {
        let run = SpipeCmd::bare().args([flag]).run(WITHIN);
        run.assert_clean("");
        let expected = format!("spipe {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{flag}");
    }
}

#[test]
fn help_prints_the_usage_and_exits_zero() {
    for flag in ["-h", "--help"] {
        let run = SpipeCmd::bare().args([flag]).run(WITHIN);
        run.assert_clean("");
        let help = String::from_utf8_lossy(&run.stdout);
        assert!(help.contains(USAGE.lines().next().expect("the usage has a line")), "{flag}: {help}");
        assert!(help.contains("--protocol"), "{flag}: {help}");
    }
}

#[test]
fn key_from_standard_input_is_refused_with_the_usage() {
    let target = format!("[127.0.0.1]:{}", free_port());
    let run = SpipeCmd::bare().args(["-t", &target, "-k", "-"]).run(WITHIN);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let (reason, usage) = run.stderr.split_once('\n').expect("a reason, then the usage");
    assert!(reason.starts_with("spipe: -k - "), "{}", run.stderr);
    assert!(reason.contains("standard input carries the data"), "{}", run.stderr);
    assert_eq!(usage, format!("usage: {USAGE}\n"));
}

#[test]
fn empty_key_file_is_refused() {
    let dir = scratch("spipe-empty-key");
    let key = dir.join("empty.key");
    std::fs::write(&key, b"").unwrap();
    let target = format!("[127.0.0.1]:{}", free_port());
    let run = SpipeCmd::new(&target, &key).run(WITHIN);
    run.assert_failed(&format!("spipe: key file {} is empty", key.display()), "");
}
