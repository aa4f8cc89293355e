//! Key files with chosen contents and modes, and the fingerprint spiped must print for them, derived
//! here from the definition (HMAC-SHA256 keyed by K = SHA-256(file) over the label, first 8 bytes)
//! with the `hmac` crate, not with the crate's own code, so that a test compares two derivations.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hmac::{KeyInit, Mac};
use sha2::Digest;

/// What a fingerprint is derived under, as src/proto/psk.rs defines it.
const FINGERPRINT_LABEL: &[u8] = b"spiped-rs key fingerprint v1";

/// Bytes of a fingerprint: printed as twice as many hex digits.
const FINGERPRINT_LEN: usize = 8;

/// 32 random bytes: a key as `--keygen` makes one.
pub fn random_key() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// Writes `contents` to `path` as a new file (replacing one that is there) with `mode`.
pub fn write_key(path: &Path, contents: &[u8], mode: u32) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The fingerprint of a key file holding `contents`, as 16 lower-case hex digits.
pub fn fingerprint_of(contents: &[u8]) -> String {
    let k = sha2::Sha256::digest(contents);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&k).expect("HMAC takes a key of any length");
    mac.update(FINGERPRINT_LABEL);
    hex::encode(&mac.finalize().into_bytes()[..FINGERPRINT_LEN])
}

/// The fingerprint of the key file at `path`.
pub fn fingerprint_of_file(path: &Path) -> String {
    fingerprint_of(&std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}
