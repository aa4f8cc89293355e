//! Several keys on a `-d` end: it serves an `-e` end on each of them at once and refuses any other
//! key before Redis sees the connection; and the rotation issue 14 describes, under load: add the new
//! key on the `-d` end and reload, switch the `-e` end to it and reload, drop the old key from the
//! `-d` end and reload. No request fails over the whole sequence, the connection opened on the old
//! key before it began still works at the end, and a client still on the old key is refused. Each
//! step runs while a keepalive and a reconnecting benchmark are held mid-run
//! ([`Rig::under_held_benchmarks`]).

use std::path::{Path, PathBuf};

use crate::benchmark::CLIENTS;
use crate::rig::{Live, Rig, reload};
use crate::support::keys::{fingerprint_of, random_key, write_key};
use crate::support::scratch;

/// INCRs per benchmark: each rotation step runs two (one keeping its connections, one reconnecting
/// per request), so a rotation is 18,000 requests.
const REQUESTS: u32 = 3_000;

#[test]
fn a_d_end_with_two_keys_serves_an_e_end_on_each_at_once_and_refuses_a_third() {
    let dir = scratch("two-keys");
    let (key_a, key_b, key_c) = (random_key(), random_key(), random_key());
    let (a, b) = (dir.join("a.key"), dir.join("b.key"));
    write_key(&a, &key_a, 0o600);
    write_key(&b, &key_b, 0o600);
    let rig = Rig::start(&dir, &[&a, &b]);
    let (_e_a, e_a_addr) = rig.e_end("e-a", &a);
    let (_e_b, e_b_addr) = rig.e_end("e-b", &b);

    // Both benchmarks' connections are up and waiting at once before either is let go.
    rig.under_held_benchmarks(&[(&e_a_addr, true), (&e_b_addr, true)], REQUESTS, || ());

    let (_e_c, e_c_addr) = rig.e_end("e-c", &rig.write_key("c.key", &key_c));
    rig.assert_refused_before_redis(&e_c_addr, "an -e end on a third key");
    // Each connection's line in the -d end's log names the key its peer proved.
    let log = rig.d.log_text();
    let closed: Vec<&str> = log.lines().filter(|l| l.contains("connection closed")).collect();
    for key in [&key_a, &key_b] {
        let fingerprint = fingerprint_of(key);
        let named = closed.iter().filter(|l| l.contains(&fingerprint)).count() as u64;
        assert!(
            named >= CLIENTS,
            "{named} connections logged with key {fingerprint}, not one per connection:\n{log}"
        );
    }
    assert!(!log.contains(&fingerprint_of(&key_c)), "a key it does not hold is not named:\n{log}");
}

/// Where a `-d` end's keys are, which decides how a rotation adds and removes one.
#[derive(Debug, Clone, Copy)]
enum Slots {
    /// `-k old -k new`: the new key's file holds a copy of the old key until the rotation (a
    /// repeated key is used once), and the old key's file is overwritten with the new key at the end.
    Files,
    /// `-k dir`: the rotation adds the new key's file to the directory and removes the old one's.
    Directory,
}

/// The `-d` end's key files for `slots`, and its `-k` arguments.
struct DKeys {
    /// The old key's file.
    old: PathBuf,
    /// Where the new key's file is (or, in a directory, will be).
    new: PathBuf,
    /// What `-k` names.
    args: Vec<PathBuf>,
}

impl DKeys {
    fn create(dir: &Path, slots: Slots, old_key: &[u8]) -> DKeys {
        match slots {
            Slots::Files => {
                let (old, new) = (dir.join("d-old.key"), dir.join("d-new.key"));
                write_key(&old, old_key, 0o600);
                write_key(&new, old_key, 0o600);
                DKeys { args: vec![old.clone(), new.clone()], old, new }
            }
            Slots::Directory => {
                let keys = dir.join("keys.d");
                std::fs::create_dir(&keys).unwrap();
                let (old, new) = (keys.join("1-old.key"), keys.join("2-new.key"));
                write_key(&old, old_key, 0o600);
                DKeys { old, new, args: vec![keys] }
            }
        }
    }

    /// Takes the old key out of the set the next reload reads.
    fn drop_old(&self, slots: Slots, new_key: &[u8]) {
        match slots {
            Slots::Files => write_key(&self.old, new_key, 0o600),
            Slots::Directory => std::fs::remove_file(&self.old).unwrap(),
        }
    }
}

fn rotation_under_load(slots: Slots) {
    let dir = scratch(&format!("rotation-{slots:?}"));
    let (key_a, key_b) = (random_key(), random_key());
    let (fp_a, fp_b) = (fingerprint_of(&key_a), fingerprint_of(&key_b));
    let d_keys = DKeys::create(&dir, slots, &key_a);
    let d_args: Vec<&Path> = d_keys.args.iter().map(PathBuf::as_path).collect();
    let rig = Rig::start(&dir, &d_args);
    let e_key = rig.write_key("e.key", &key_a);
    let (e, e_addr) = rig.e_end("e", &e_key);
    let mut live = Live::open(&e_addr);
    let both = [(e_addr.as_str(), true), (e_addr.as_str(), false)];

    rig.under_held_benchmarks(&both, REQUESTS, || {
        write_key(&d_keys.new, &key_b, 0o600);
        let line = rig.reload().took("adding key B on the -d end");
        assert!(line.contains(&fp_a) && line.contains(&fp_b), "both keys in force: {line}");
        live.assert_answers("after adding key B on the -d end");
    });
    rig.under_held_benchmarks(&both, REQUESTS, || {
        write_key(&e_key, &key_b, 0o600);
        let line = reload(&e).took("switching the -e end to key B");
        assert!(line.contains(&fp_b) && !line.contains(&fp_a), "the -e end on key B: {line}");
        live.assert_answers("after switching the -e end to key B");
    });
    rig.under_held_benchmarks(&both, REQUESTS, || {
        d_keys.drop_old(slots, &key_b);
        let line = rig.reload().took("dropping key A from the -d end");
        assert!(line.contains(&fp_b) && !line.contains(&fp_a), "key B alone in force: {line}");
        live.assert_answers("after dropping key A from the -d end");
    });

    let (_e_old, e_old_addr) = rig.e_end("e-old", &rig.write_key("still-a.key", &key_a));
    rig.assert_refused_before_redis(&e_old_addr, "a client still on key A after the rotation");
    live.assert_answers("the connection made on key A before the rotation, at its end");
}

#[test]
fn a_rotation_of_two_key_files_under_load_fails_no_request() {
    rotation_under_load(Slots::Files);
}

#[test]
fn a_rotation_through_a_key_directory_under_load_fails_no_request() {
    rotation_under_load(Slots::Directory);
}
