//! The command line refuses what cannot work: each case runs the real binary and expects exit 1 and one
//! line, `spiped: <what is wrong>`, never a panic; a refused argument is followed by the usage, and a
//! start-up failure says the operating system's error once.

mod support;

use std::path::Path;
use std::process::Output;

use support::*;

/// The line-up every case shares: an `-e` end with addresses that parse, and a key path.
fn base(key: &str) -> Vec<&str> {
    vec!["-F", "-e", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2", "-k", key]
}

/// Runs `args` and returns standard error, after checking the outcome every refusal shares: exit
/// code 1, no panic, and a first line `spiped: ` that contains `names`.
fn refused(args: &[&str], names: &str) -> String {
    let out: Output = run_spiped(args, None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("spiped: "), "{args:?}: {err}");
    assert!(first.contains(names), "{args:?}: the first line should say {names:?}: {err}");
    err
}

/// A refused argument: the reason, then the usage, as spiped prints them.
fn usage_refused(args: &[&str], names: &str) {
    let err = refused(args, names);
    let second = err.lines().nth(1).unwrap_or_default();
    assert!(second.starts_with("usage: spiped {-e | -d}"), "{args:?}: {err}");
}

/// A start-up failure: one line, in which no part separated by ": " comes twice (as the OS error
/// did) and at most one OS error is quoted.
fn said_once(args: &[&str], names: &str) {
    let err = refused(args, names);
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    let line = err.trim_end();
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(part), "{args:?}: {part:?} is said twice: {line}");
    }
    assert!(line.matches("(os error").count() <= 1, "{args:?}: {line}");
}

/// [`base`] with each flag in `extra` set to its value: replacing the base's where it has one.
fn with<'a>(key: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut args = base(key);
    for &(flag, value) in extra {
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
    }
    args
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("scratch paths are UTF-8")
}

/// `-n 2305843009213693952` (2^61) used to panic in the runtime's semaphore.
#[test]
fn max_connections_beyond_the_limit_is_refused_with_the_limit() {
    for n in ["2305843009213693952", "524289", "99999999999999999999999"] {
        usage_refused(&with("k", &[("-n", n)]), "at most 524288 connections");
    }
}

/// `-r 1e-10` used to panic a worker and stop re-resolving; `-r 1e-6` kept a core busy.
#[test]
fn a_reresolution_period_under_a_second_is_refused() {
    for r in ["1e-10", "1e-6", "0.5"] {
        usage_refused(
            &with("k", &[("-t", "localhost:2"), ("-r", r)]),
            "re-resolution period must be at least 1 s",
        );
    }
}

#[test]
fn a_timeout_of_effectively_zero_is_refused() {
    for o in ["1e-300", "0.001", "0"] {
        usage_refused(&with("k", &[("-o", o)]), "the timeout must be at least 0.01 s");
    }
}

#[test]
fn a_timeout_that_overflows_or_is_not_a_number_is_refused() {
    for o in ["1e300", "nan", "inf"] {
        usage_refused(&with("k", &[("-o", o)]), "is not a usable number of seconds");
    }
}

#[test]
fn the_parking_options_of_a_d_end_are_refused_on_an_e_end() {
    for (flag, value) in [("--max-parked", "4"), ("--park-timeout", "30")] {
        usage_refused(&with("k", &[(flag, value)]), "--max-parked and --park-timeout are for a -d end");
    }
}

#[test]
fn port_zero_is_refused_for_the_source_and_the_target() {
    usage_refused(&with("k", &[("-s", "[127.0.0.1]:0")]), "-s `[127.0.0.1]:0` has port 0");
    usage_refused(&with("k", &[("-t", "[127.0.0.1]:0")]), "-t `[127.0.0.1]:0` has port 0");
    usage_refused(&with("k", &[("-t", "localhost:0")]), "-t `localhost:0` has port 0");
}

#[test]
fn unix_socket_paths_too_long_for_the_platform_are_refused() {
    let dir = scratch("long-path");
    let long = dir.join("s".repeat(200));
    let long = path_str(&long);
    let len = long.len();
    for flag in ["-s", "-t"] {
        usage_refused(&with("k", &[(flag, long)]), &format!("{flag} unix socket path"));
        usage_refused(
            &with("k", &[(flag, long)]),
            &format!("is {len} bytes long; this system allows at most"),
        );
    }
}

#[test]
fn an_unknown_log_level_is_refused_with_the_levels() {
    for level in ["bogus", "warning", ""] {
        usage_refused(&with("k", &[("--log-level", level)]), "use one of: error, warn, info, debug, trace");
    }
}

#[test]
fn a_busy_port_says_the_os_error_once() {
    let dir = scratch("busy-once");
    let key = key_file(&dir, "k");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let source = format!("[127.0.0.1]:{}", busy.local_addr().expect("bound").port());
    said_once(&with(path_str(&key), &[("-s", &source)]), "cannot listen on");
}

#[test]
fn a_missing_or_unreadable_key_file_says_the_os_error_once() {
    let dir = scratch("key-once");
    let source = dir.join("s.sock");
    said_once(
        &with("/nonexistent/key", &[("-s", path_str(&source))]),
        "cannot read key file /nonexistent/key",
    );
    // A directory stands for the key files in it; one with none is refused, saying so once.
    said_once(&with(path_str(&dir), &[("-s", path_str(&source))]), "holds no key file");
}

#[test]
fn an_unknown_user_is_said_once() {
    let dir = scratch("user-once");
    let key = key_file(&dir, "k");
    let source = dir.join("s.sock");
    said_once(
        &with(path_str(&key), &[("-s", path_str(&source)), ("-u", "no-such-user-here")]),
        "no such user",
    );
}

#[test]
fn a_target_that_does_not_resolve_says_the_resolvers_error_once() {
    let dir = scratch("resolve-once");
    let key = key_file(&dir, "k");
    // .invalid never resolves (RFC 6761).
    said_once(
        &with(path_str(&key), &[("-t", "no-such-host.invalid:2")]),
        "cannot resolve no-such-host.invalid:2",
    );
}

#[test]
fn a_pid_file_in_a_missing_directory_says_the_os_error_once() {
    let dir = scratch("pid-once");
    let key = key_file(&dir, "k");
    let source = dir.join("s.sock");
    let pid = dir.join("missing").join("d.pid");
    // Daemon mode (no -F): the pid file is written by the child, whose error reaches our pipe.
    let args =
        ["-e", "-s", path_str(&source), "-t", "[127.0.0.1]:2", "-k", path_str(&key), "-p", path_str(&pid)];
    said_once(&args, "cannot write pid file");
}

#[test]
fn an_unknown_protocol_is_refused_with_the_protocols() {
    for protocol in ["bogus", "both", "Classic", ""] {
        usage_refused(&with("k", &[("--protocol", protocol)]), "use one of: native, classic");
    }
}

#[test]
fn f_with_g_is_refused_whatever_the_protocol() {
    for mode in ["-e", "-d"] {
        for protocol in [None, Some("native"), Some("classic")] {
            let mut args = with("k", &[]);
            args[1] = mode;
            args.extend(["-f", "-g"]);
            if let Some(protocol) = protocol {
                args.extend(["--protocol", protocol]);
            }
            usage_refused(&args, "cannot be used with");
        }
    }
}

/// Any key file of one byte or more is accepted (with a warning when short); an empty one is refused,
/// from a file or from standard input, saying so and how to make a key.
#[test]
fn an_empty_key_is_refused_with_the_way_to_make_one() {
    let dir = scratch("empty-key");
    let key = dir.join("empty.key");
    std::fs::write(&key, b"").expect("a scratch file");
    let source = dir.join("s.sock");
    let message = format!("key file {} is empty", path_str(&key));
    said_once(&with(path_str(&key), &[("-s", path_str(&source))]), &message);
    let err = refused(&with(path_str(&key), &[("-s", path_str(&source))]), &message);
    assert!(err.contains("dd if=/dev/urandom bs=32 count=1"), "{err}");

    let out = run_spiped(&with("-", &[("-s", path_str(&source))]), Some(b""));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("spiped: key file - is empty"), "{err}");
}
