//! `spiped --fingerprint -k FILE [-k FILE ...]`: one `<fingerprint>  <path>` line per key file, in the
//! order given, each fingerprint the one the definition gives; a file that cannot be read stops it
//! with exit 1 and one line.

use std::path::Path;

use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::{run_spiped, scratch};
use crate::{stderr_lines, stdout};

/// The fingerprint of the key file `abc`, from Python's hmac module:
/// `hmac.new(hashlib.sha256(b"abc").digest(), b"spiped-rs key fingerprint v1", hashlib.sha256)`,
/// first 16 hex digits.
const FINGERPRINT_ABC: &str = "61578d83b35e92bb";

fn fingerprint(paths: &[&Path]) -> std::process::Output {
    let mut args = vec!["--fingerprint"];
    for path in paths {
        args.extend(["-k", path.to_str().unwrap()]);
    }
    run_spiped(&args, None)
}

#[test]
fn a_fingerprint_is_hmac_sha256_of_the_label_keyed_by_the_key_files_sha256() {
    let dir = scratch("fingerprint-known");
    let abc = dir.join("abc.key");
    write_key(&abc, b"abc", 0o600);
    assert_eq!(fingerprint_of(b"abc"), FINGERPRINT_ABC, "the test's own derivation matches Python's");
    let out = fingerprint(&[&abc]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_lines(&out).join("\n"));
    assert_eq!(stdout(&out), format!("{FINGERPRINT_ABC}  {}\n", abc.display()));

    let random = dir.join("random.key");
    let contents = random_key();
    write_key(&random, &contents, 0o600);
    let out = fingerprint(&[&random]);
    assert_eq!(stdout(&out), format!("{}  {}\n", fingerprint_of(&contents), random.display()));
}

#[test]
fn several_key_files_print_in_the_order_given() {
    let dir = scratch("fingerprint-order");
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = ["c.key", "a.key", "b.key"]
        .iter()
        .map(|name| {
            let (path, contents) = (dir.join(name), random_key());
            write_key(&path, &contents, 0o600);
            (path, contents)
        })
        .collect();
    let paths: Vec<&Path> = files.iter().map(|(path, _)| path.as_path()).collect();
    let out = fingerprint(&paths);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_lines(&out).join("\n"));
    let expected: String = files
        .iter()
        .map(|(path, contents)| format!("{}  {}\n", fingerprint_of(contents), path.display()))
        .collect();
    assert_eq!(stdout(&out), expected);
    assert_eq!(stderr_lines(&out), Vec::<String>::new(), "nothing to warn about");
}

#[test]
fn the_key_on_standard_input_is_fingerprinted_as_a_file_would_be() {
    let contents = random_key();
    let out = run_spiped(&["--fingerprint", "-k", "-"], Some(&contents));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_lines(&out).join("\n"));
    assert_eq!(stdout(&out), format!("{}  -\n", fingerprint_of(&contents)));
}

#[test]
fn a_missing_key_file_exits_1_with_one_line_naming_it() {
    let dir = scratch("fingerprint-missing");
    let missing = dir.join("no-such.key");
    let out = fingerprint(&[&missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "", "no fingerprint for a file that is not there");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(lines[0].contains(&missing.display().to_string()), "names the file: {lines:?}");

    // After a good file: its line is printed, then the missing one stops the run the same way.
    let good = dir.join("good.key");
    let contents = random_key();
    write_key(&good, &contents, 0o600);
    let out = fingerprint(&[&good, &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), format!("{}  {}\n", fingerprint_of(&contents), good.display()));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(lines[0].contains(&missing.display().to_string()), "names the file: {lines:?}");
}
