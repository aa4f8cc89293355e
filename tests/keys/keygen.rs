//! `spiped --keygen FILE`: 32 bytes from the random source in a new file, mode 0600 whatever the
//! umask, never over an existing file or link, and the printed fingerprint is the one `--fingerprint`
//! gives for it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::keys::{fingerprint_of_file, random_key, write_key};
use crate::support::{run_spiped, scratch, spiped_bin};
use crate::{stderr_lines, stdout};

/// Runs `spiped --keygen path` from a shell that first sets `umask`.
fn keygen_under_umask(umask: &str, path: &Path) -> Output {
    Command::new("sh")
        .args(["-c", &format!("umask {umask} && exec \"$0\" --keygen \"$1\"")])
        .arg(spiped_bin())
        .arg(path)
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Checks a successful keygen of `path`: 32 bytes, mode 0600, and the printed line is
/// `--fingerprint`'s. Returns the key.
fn assert_new_key(out: &Output, path: &Path) -> Vec<u8> {
    assert_eq!(out.status.code(), Some(0), "{}", stderr_lines(out).join("\n"));
    let key = std::fs::read(path).unwrap();
    assert_eq!(key.len(), 32, "a key is 32 bytes");
    assert_eq!(mode(path), 0o600, "{} is private", path.display());
    let printed = stdout(out);
    assert_eq!(printed, format!("{}  {}\n", fingerprint_of_file(path), path.display()));
    let fingerprint = run_spiped(&["--fingerprint", "-k", path.to_str().unwrap()], None);
    assert_eq!(stdout(&fingerprint), printed, "--keygen and --fingerprint name the key alike");
    key
}

#[test]
fn keygen_writes_32_private_bytes_and_prints_their_fingerprint() {
    let dir = scratch("keygen");
    let path = dir.join("new.key");
    let out = run_spiped(&["--keygen", path.to_str().unwrap()], None);
    let first = assert_new_key(&out, &path);

    let other = dir.join("other.key");
    let second = assert_new_key(&run_spiped(&["--keygen", other.to_str().unwrap()], None), &other);
    assert_ne!(first, second, "two keys from the random source differ");
    assert_ne!(stdout(&out)[..16], fingerprint_of_file(&other), "and so do their fingerprints");
}

#[test]
fn keygen_makes_a_private_file_under_a_permissive_umask() {
    let dir = scratch("keygen-umask");
    for umask in ["000", "022"] {
        let path = dir.join(format!("umask-{umask}.key"));
        assert_new_key(&keygen_under_umask(umask, &path), &path);
    }
}

#[test]
fn keygen_never_overwrites_a_file_or_a_link() {
    let dir = scratch("keygen-existing");
    let existing = dir.join("existing.key");
    let contents = random_key();
    write_key(&existing, &contents, 0o640);
    let out = run_spiped(&["--keygen", existing.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "refused: {out:?}");
    assert_eq!(stdout(&out), "", "no fingerprint printed");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(lines[0].contains(&existing.display().to_string()), "names the file: {lines:?}");
    assert_eq!(std::fs::read(&existing).unwrap(), contents, "the key is unchanged");
    assert_eq!(mode(&existing), 0o640, "and so is its mode");

    // A link to a file that does not exist yet: following it would create the file elsewhere.
    let elsewhere = dir.join("elsewhere.key");
    let link = dir.join("link.key");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let out = run_spiped(&["--keygen", link.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "refused: {out:?}");
    assert_eq!(stderr_lines(&out).len(), 1, "one line: {:?}", stderr_lines(&out));
    assert!(!elsewhere.exists(), "nothing written through the link");
}
