//! The pre-shared key K: SHA-256 of the key file, exactly as classic spiped derives it; and its
//! fingerprint, the name logs and status lines give it.

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the pre-shared key in bytes.
pub const PSK_LEN: usize = 32;

/// Bytes of a [`Fingerprint`]: 64 bits tell a site's few keys apart with room to spare, and print as 16
/// hex digits.
pub const FINGERPRINT_LEN: usize = 8;

/// What a fingerprint is derived under, so that it can never equal any other value computed from K.
pub const FINGERPRINT_LABEL: &[u8] = b"spiped-rs key fingerprint v1";

/// The 32-byte pre-shared key. Zeroized on drop, compared in constant time, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Psk([u8; PSK_LEN]);

impl Psk {
    /// Derives K = SHA-256(key file contents), so that spiped key files work unchanged.
    pub fn from_key_file(contents: &[u8]) -> Self {
        Psk(Sha256::digest(contents).into())
    }

    /// Wraps an already derived K (known-answer tests and other Noise implementations' psk).
    pub fn from_bytes(k: [u8; PSK_LEN]) -> Self {
        Psk(k)
    }

    /// The key's fingerprint: the first [`FINGERPRINT_LEN`] bytes of HMAC-SHA256 keyed by K over
    /// [`FINGERPRINT_LABEL`]. HMAC is a pseudo-random function of its key, so the fingerprint of a
    /// random key says nothing usable about it; K itself is never used, anywhere, as an HMAC key over
    /// this label. (A key file that can be guessed can be tested against its fingerprint, as it can
    /// against any recorded handshake: the warning about short key files covers both.)
    pub fn fingerprint(&self) -> Fingerprint {
        use crate::proto::crypto::hmac::{Backend, HmacSha256};
        let tag = zeroize::Zeroizing::new(Backend::new(&self.0).mac(&[FINGERPRINT_LABEL]));
        let mut short = [0u8; FINGERPRINT_LEN];
        short.copy_from_slice(&tag[..FINGERPRINT_LEN]);
        Fingerprint(short)
    }

    /// The key's bytes, for the handshake's `MixKeyAndHash`.
    pub(crate) fn as_bytes(&self) -> &[u8; PSK_LEN] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl PartialEq for Psk {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Psk {}

/// A key's public name ([`Psk::fingerprint`]), printed as 16 lower-case hex digits: safe to log, show
/// and compare, so operators can see which key a connection used without seeing the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint of the key file "abc", computed by Python's `hmac` module.
    const FINGERPRINT_ABC: &str = "61578d83b35e92bb";

    #[test]
    fn key_file_is_hashed_with_sha256() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let k = Psk::from_key_file(b"abc");
        assert_eq!(
            hex::encode(k.as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_fingerprint_is_hmac_sha256_of_the_label_keyed_by_k() {
        // Python: hmac.new(hashlib.sha256(b"abc").digest(), b"spiped-rs key fingerprint v1",
        // hashlib.sha256).hexdigest()[:16]
        let k = Psk::from_key_file(b"abc");
        assert_eq!(k.fingerprint().to_string(), FINGERPRINT_ABC);
        assert_ne!(Psk::from_key_file(b"abd").fingerprint(), k.fingerprint());
    }

    #[test]
    fn debug_prints_nothing_of_the_key() {
        let k = Psk::from_bytes([0xab; PSK_LEN]);
        let shown = format!("{k:?}");
        assert_eq!(shown, "Psk(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab,"));
    }

    #[test]
    fn equality_compares_every_byte() {
        let mut other = [7u8; PSK_LEN];
        assert_eq!(Psk::from_bytes(other), Psk::from_bytes([7; PSK_LEN]));
        other[PSK_LEN - 1] ^= 1;
        assert_ne!(Psk::from_bytes(other), Psk::from_bytes([7; PSK_LEN]));
    }
}
