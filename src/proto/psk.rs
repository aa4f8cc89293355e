//! The pre-shared key K: SHA-256 of the key file, exactly as classic spiped derives it.

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the pre-shared key in bytes.
pub const PSK_LEN: usize = 32;

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

#[cfg(test)]
mod tests {
    use super::*;

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
