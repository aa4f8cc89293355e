//! An `-e` end holds one key, whether `-k` names files or a key directory: two `-k` are a usage
//! error at start, and a reload that would give it two keys fails and keeps the key in force. A key
//! directory's hidden files (an editor's or an atomic write's temporary file) are not keys, and an
//! emptied directory fails the reload.

use crate::rig::{Live, Rig, reload};
use crate::stderr_lines;
use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::{SpipedCmd, free_port, run_spiped, scratch};

#[test]
fn an_e_end_given_two_keys_exits_1_with_the_reason_and_the_usage() {
    let dir = scratch("e-two-keys");
    let (a, b) = (dir.join("a.key"), dir.join("b.key"));
    write_key(&a, &random_key(), 0o600);
    write_key(&b, &random_key(), 0o600);
    let source = format!("[127.0.0.1]:{}", free_port());
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = run_spiped(&["-e", "-s", &source, "-t", "[127.0.0.1]:1", "-k", a, "-k", b], None);
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert!(lines[0].starts_with("spiped: -e uses one key"), "{lines:?}");
    assert!(lines[1].starts_with("usage: spiped"), "{lines:?}");

    // A directory holding two keys is refused at start too, naming the count.
    let keys = dir.join("keys.d");
    std::fs::create_dir(&keys).unwrap();
    write_key(&keys.join("1.key"), &random_key(), 0o600);
    write_key(&keys.join("2.key"), &random_key(), 0o600);
    let out = run_spiped(&["-e", "-s", &source, "-t", "[127.0.0.1]:1", "-k", keys.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert!(lines.iter().any(|l| l.contains("an -e end uses one key") && l.contains("hold 2")), "{lines:?}");
}

#[test]
fn an_e_end_on_a_key_directory_keeps_its_key_through_reloads_that_would_break_it() {
    let dir = scratch("e-key-dir");
    let key_a = random_key();
    let d_key = dir.join("d.key");
    write_key(&d_key, &key_a, 0o600);
    let rig = Rig::start(&dir, &[&d_key]);
    let keys = dir.join("e-keys.d");
    std::fs::create_dir(&keys).unwrap();
    write_key(&keys.join("a.key"), &key_a, 0o600);
    let source = format!("[127.0.0.1]:{}", free_port());
    let e = SpipedCmd::new(&dir, "e")
        .args(["-e", "-s", &source, "-t", &rig.d_source, "-k", keys.to_str().unwrap()])
        .start();
    let e_addr = crate::support::plain_addr(&source);
    let mut live = Live::open(&e_addr);

    // A hidden file is not a key: the reload takes the one visible key again.
    let hidden = random_key();
    write_key(&keys.join(".b.key.tmp"), &hidden, 0o600);
    let line = reload(&e).took("a reload beside a hidden file");
    assert!(
        line.contains(&fingerprint_of(&key_a)) && !line.contains(&fingerprint_of(&hidden)),
        "key A alone: {line}"
    );

    // A second visible key: the reload fails and key A stays in force.
    write_key(&keys.join("b.key"), &random_key(), 0o600);
    let line = reload(&e).failed("a reload that gives an -e end two keys");
    assert!(line.contains("an -e end uses one key") && line.contains("hold 2"), "{line}");
    Live::open(&e_addr).assert_answers("a new connection after the refused reload");

    // An emptied directory fails the reload too, naming it.
    for entry in std::fs::read_dir(&keys).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let line = reload(&e).failed("a reload of an empty key directory");
    assert!(line.contains(&keys.display().to_string()) && line.contains("no key file"), "{line}");
    Live::open(&e_addr).assert_answers("a new connection after the second refused reload");
    live.assert_answers("the connection opened before the reloads");
}
