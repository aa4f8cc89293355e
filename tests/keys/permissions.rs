//! Key hygiene at start-up: a key file its group or others can read still starts the end (classic
//! spiped accepts it too) but with a warning naming the file, its mode and the fix; a private one
//! gets no warning. `--fingerprint` says the same on standard error.

use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::{SpipedCmd, free_port, run_spiped, scratch};
use crate::{stderr_lines, stdout};

/// The warning for the key file `path` at `mode` (octal, as `ls` would show it).
fn warning(path: &std::path::Path, mode: &str) -> String {
    format!("key file {} is readable by others (mode {mode}); chmod 600 it", path.display())
}

#[test]
fn a_key_file_others_can_read_starts_with_a_warning_naming_it_and_the_fix() {
    let dir = scratch("key-mode");
    for (mode, shown) in [(0o644, "644"), (0o640, "640"), (0o604, "604")] {
        let key = dir.join(format!("k{shown}.key"));
        write_key(&key, &random_key(), mode);
        let source = format!("[127.0.0.1]:{}", free_port());
        let d = SpipedCmd::new(&dir, &format!("d{shown}"))
            .args(["-d", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
            .start();
        let log = d.log_text();
        let expected = warning(&key, shown);
        let at = log.find(&expected).unwrap_or_else(|| panic!("no {expected:?} in the log:\n{log}"));
        let listening = log.find("listening").unwrap_or_else(|| panic!("no listening line:\n{log}"));
        assert!(at < listening, "the warning comes at start-up, before it listens:\n{log}");
    }
}

#[test]
fn a_private_key_file_starts_without_a_warning() {
    let dir = scratch("key-mode-private");
    let key = dir.join("private.key");
    write_key(&key, &random_key(), 0o600);
    let source = format!("[127.0.0.1]:{}", free_port());
    let d = SpipedCmd::new(&dir, "d")
        .args(["-d", "-s", &source, "-t", "[127.0.0.1]:1", "-k", key.to_str().unwrap()])
        .start();
    let log = d.log_text();
    assert!(!log.contains("readable by others"), "{log}");
}

#[test]
fn fingerprint_warns_about_an_open_key_file_on_standard_error_and_still_prints() {
    let dir = scratch("key-mode-fingerprint");
    let key = dir.join("open.key");
    let contents = random_key();
    write_key(&key, &contents, 0o644);
    let out = run_spiped(&["--fingerprint", "-k", key.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("{}  {}\n", fingerprint_of(&contents), key.display()));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(&warning(&key, "644")), "{lines:?}");
}
