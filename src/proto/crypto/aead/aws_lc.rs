//! aws-lc's ChaCha20-Poly1305: AVX2 assembly (the same as ring's), 2x the pure-Rust crate at 16 KiB
//! records and 5x at 64 bytes. aws-lc keeps the key schedule in its own heap, which it clears when
//! freeing.

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::{Aead, KEY_LEN, TAG_LEN, noise_nonce};

/// One aws-lc key; the nonce is given per record.
#[cfg_attr(feature = "openssl", allow(dead_code, reason = "OpenSSL's is faster; tests compare this one"))]
pub(crate) struct AwsLc(LessSafeKey);

impl Aead for AwsLc {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key)
            .expect("a 32-byte key is the right length for ChaCha20-Poly1305");
        AwsLc(LessSafeKey::new(key))
    }

    fn seal_in_place(&mut self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Nonce::assume_unique_for_key(noise_nonce(counter));
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, Aad::from(ad), buf)
            .expect("records are at most 64 KiB, far below ChaCha20's limit");
        tag.as_ref().try_into().expect("a Poly1305 tag is TAG_LEN bytes")
    }

    fn open_in_place(
        &mut self,
        counter: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let nonce = Nonce::assume_unique_for_key(noise_nonce(counter));
        self.0.open_in_place_separate_tag(nonce, Aad::from(ad), tag, buf).map(drop).map_err(drop)
    }
}
