//! Noise's SymmetricState for `Noise_NNpsk0_25519_ChaChaPoly_SHA256`: the running handshake hash `h`,
//! the chaining key `ck` and the current handshake cipher.
//!
//! Specialised to psk0 patterns: the psk is mixed in at construction, so a handshake key always exists
//! and `EncryptAndHash` always encrypts.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::cipher::CipherState;
use super::handshake::{PROLOGUE, PROTOCOL_NAME};
use super::{ProtoError, TAG_LEN};
use crate::proto::Psk;
use crate::proto::crypto::aead::KEY_LEN;

/// SHA-256 output length, Noise's HASHLEN.
const HASH_LEN: usize = 32;

/// The handshake's symmetric state, from `InitializeSymmetric` to `Split`.
pub(crate) struct SymmetricState {
    /// Chaining key: every DH result and the psk pass through it. Secret.
    ck: Zeroizing<[u8; HASH_LEN]>,
    /// Handshake hash: a transcript of everything sent, used as associated data.
    h: [u8; HASH_LEN],
    /// The handshake cipher, rekeyed by every `MixKey`.
    cipher: CipherState,
}

impl SymmetricState {
    /// `InitializeSymmetric(PROTOCOL_NAME)`, `MixHash(PROLOGUE)`, then the `psk` token:
    /// `MixKeyAndHash(psk)`.
    pub(crate) fn new(psk: &Psk) -> Self {
        // The name is longer than HASHLEN, so h = HASH(name).
        let h: [u8; HASH_LEN] = Sha256::digest(PROTOCOL_NAME).into();
        let ck = Zeroizing::new(h);
        let [ck, temp_h, temp_k] = hkdf3(&ck, psk.as_bytes());
        let mut state = SymmetricState { ck, h, cipher: CipherState::new(&temp_k) };
        state.mix_hash(PROLOGUE);
        state.mix_hash(&*temp_h);
        state
    }

    /// `MixHash(data)`: h = HASH(h || data).
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h = hasher.finalize().into();
    }

    /// `MixKey(ikm)`: ck, k = HKDF(ck, ikm, 2), and a fresh cipher under k.
    pub(crate) fn mix_key(&mut self, ikm: &[u8]) {
        let [ck, k] = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher = CipherState::new(&k);
    }

    /// `EncryptAndHash("")`: the tag of an empty payload, mixed into h. Version 1's handshake
    /// messages carry no payload.
    pub(crate) fn encrypt_and_hash_empty(&mut self) -> Result<[u8; TAG_LEN], ProtoError> {
        let tag = self.cipher.seal(&self.h, &mut [])?;
        self.mix_hash(&tag);
        Ok(tag)
    }

    /// `DecryptAndHash(tag)` for an empty payload.
    ///
    /// # Errors
    /// [`ProtoError::HandshakeAuth`] when the tag does not verify.
    pub(crate) fn decrypt_and_hash_empty(&mut self, tag: &[u8; TAG_LEN]) -> Result<(), ProtoError> {
        self.cipher.open(&self.h, &mut [], tag).map_err(|_| ProtoError::HandshakeAuth)?;
        self.mix_hash(tag);
        Ok(())
    }

    /// `Split()`: the initiator-to-responder and responder-to-initiator transport ciphers.
    pub(crate) fn split(self) -> (CipherState, CipherState) {
        let [k1, k2] = hkdf2(&self.ck, &[]);
        (CipherState::new(&k1), CipherState::new(&k2))
    }
}

/// Noise's `HKDF(ck, ikm, n)` is RFC 5869 HKDF-SHA-256 with salt `ck` and empty info, its output cut
/// into `N` 32-byte pieces.
fn hkdf<const N: usize>(ck: &[u8; HASH_LEN], ikm: &[u8]) -> [Zeroizing<[u8; KEY_LEN]>; N] {
    let mut okm = Zeroizing::new([0u8; 96]);
    Hkdf::<Sha256>::new(Some(ck), ikm)
        .expand(&[], &mut okm[..N * KEY_LEN])
        .expect("96 bytes is far below HKDF-SHA-256's 8160-byte limit");
    core::array::from_fn(|i| {
        let mut piece = Zeroizing::new([0u8; KEY_LEN]);
        piece.copy_from_slice(&okm[i * KEY_LEN..(i + 1) * KEY_LEN]);
        piece
    })
}

fn hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> [Zeroizing<[u8; KEY_LEN]>; 2] {
    hkdf(ck, ikm)
}

fn hkdf3(ck: &[u8; HASH_LEN], ikm: &[u8]) -> [Zeroizing<[u8; KEY_LEN]>; 3] {
    hkdf(ck, ikm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    /// Noise section 4.3 defines HKDF with HMAC directly; check the hkdf crate computes the same.
    #[test]
    fn hkdf_matches_noise_definition() {
        let ck = [3u8; HASH_LEN];
        let ikm = b"input key material";
        let hmac = |key: &[u8], data: &[&[u8]]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            for d in data {
                mac.update(d);
            }
            mac.finalize().into_bytes().into()
        };
        let temp_key = hmac(&ck, &[ikm]);
        let out1 = hmac(&temp_key, &[&[1]]);
        let out2 = hmac(&temp_key, &[&out1, &[2]]);
        let out3 = hmac(&temp_key, &[&out2, &[3]]);
        let [a, b, c] = hkdf3(&ck, ikm);
        assert_eq!((*a, *b, *c), (out1, out2, out3));
    }
}
