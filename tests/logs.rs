//! The log lines an operator and a log shipper read: one line per connection at its end (peer, key,
//! bytes each way, duration, outcome) at the default level; `--log-format json` makes every line one
//! JSON object; under the journal (`JOURNAL_STREAM` naming standard error) each line starts with its
//! syslog priority and carries no time of its own.

mod support;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use support::*;

/// Runs the built `spipe` once against `target` with `key`, sending `input`; returns its exit status.
fn spipe_once(target: &str, key: &Path, input: &[u8]) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spipe"))
        .args(["-t", target, "-k"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait().unwrap().success()
}

/// A `-d` end in front of an echo server, with `extra` arguments; its source address.
fn d_end(dir: &Path, level: &str, extra: &[&str], env: Option<(&str, String)>) -> (Spiped, String) {
    let source = format!("[127.0.0.1]:{}", free_port());
    let target = format!("[127.0.0.1]:{}", echo_server());
    let key = key_file(dir, "k");
    let mut cmd = SpipedCmd::new(dir, "d")
        .args(["-d", "-s", &source, "-t", &target, "-k"])
        .args([&key])
        .args(extra)
        .log_level(Some(level));
    if let Some((name, value)) = env {
        cmd = cmd.env(name, value);
    }
    (cmd.start(), source)
}

/// One clean connection and one with a wrong key, then the log once both lines are in it.
fn a_clean_and_a_refused_connection(dir: &Path, d: &Spiped, source: &str) -> String {
    assert!(spipe_once(source, &dir.join("k"), b"twelve bytes"), "the clean connection");
    let wrong = key_file(dir, "wrong");
    assert!(!spipe_once(source, &wrong, b"x"), "the wrong key");
    eventually("both connections are logged", std::time::Duration::from_secs(20), || {
        let log = d.log_text();
        let both = log.contains("connection closed") && log.contains("handshake failed");
        if both { Ok(log) } else { Err(log) }
    })
}

#[test]
fn each_connection_ends_with_one_line_at_the_default_level() {
    let dir = scratch("logs-text");
    let (d, source) = d_end(&dir, "info", &[], None);
    let log = a_clean_and_a_refused_connection(&dir, &d, &source);
    let fingerprint = run_spiped(&["--fingerprint", "-k", dir.join("k").to_str().unwrap()], None);
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)[..16].to_string();
    let closed: Vec<&str> = log.lines().filter(|l| l.contains("connection closed")).collect();
    assert_eq!(closed.len(), 1, "{log}");
    for field in [
        format!("key=\"{fingerprint}\""),
        "sealed=12".into(),
        "opened=12".into(),
        "outcome=\"clean\"".into(),
        "peer=127.0.0.1:".into(),
    ] {
        assert!(closed[0].contains(&field), "{field} in {}", closed[0]);
    }
    let refused = log.lines().find(|l| l.contains("handshake failed")).unwrap();
    assert!(refused.contains(" WARN ") && refused.contains("outcome=\"failed\""), "{refused}");
}

#[test]
fn json_lines_are_one_object_each_with_the_connection_fields() {
    let dir = scratch("logs-json");
    let (d, source) = d_end(&dir, "info", &["--log-format", "json"], None);
    let log = a_clean_and_a_refused_connection(&dir, &d, &source);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    let closed = lines.iter().find(|l| l["message"] == "connection closed").expect("a connection line");
    assert_eq!((closed["level"].as_str(), closed["outcome"].as_str()), (Some("INFO"), Some("clean")));
    assert_eq!((closed["sealed"].as_u64(), closed["opened"].as_u64()), (Some(12), Some(12)));
    assert_eq!(closed["key"].as_str().map(str::len), Some(16), "{closed}");
    let refused = lines.iter().find(|l| l["outcome"] == "failed").expect("a failure line");
    assert_eq!(refused["level"], "WARN");
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{log}");
}

#[test]
fn under_the_journal_lines_carry_their_priority_and_no_time() {
    let dir = scratch("logs-journal");
    // The log file the harness writes standard error to, made first so its device and inode are known.
    let log = dir.join("d.log");
    std::fs::write(&log, b"").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let (d, source) = d_end(&dir, "info", &[], Some(("JOURNAL_STREAM", stream)));
    let text = a_clean_and_a_refused_connection(&dir, &d, &source);
    for line in text.lines() {
        let priority = if line.contains(" WARN ") { "<4>" } else { "<6>" };
        assert!(line.starts_with(priority), "{priority} starts {line:?}");
        assert!(!line.contains("Z "), "no time of its own: {line:?}");
    }
}

#[test]
fn another_journal_stream_leaves_lines_as_they_are() {
    let dir = scratch("logs-not-journal");
    let (d, source) = d_end(&dir, "info", &[], Some(("JOURNAL_STREAM", "1:2".into())));
    let text = a_clean_and_a_refused_connection(&dir, &d, &source);
    assert!(text.lines().all(|l| !l.starts_with('<') && l.contains("Z ")), "{text}");
}
