//! The pure-Rust `chacha20poly1305` crate: the backend without C libraries, and the reference the
//! others are tested against.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

use super::{Aead, KEY_LEN, TAG_LEN, noise_nonce};

/// The pure-Rust `chacha20poly1305` crate. Its key is zeroized on drop.
#[cfg_attr(
    any(feature = "aws-lc", feature = "openssl"),
    allow(dead_code, reason = "the fallback; tests compare the others with it")
)]
pub(crate) struct RustCrypto(ChaCha20Poly1305);

impl Aead for RustCrypto {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        RustCrypto(ChaCha20Poly1305::new(key.into()))
    }

    fn seal_in_place(&mut self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_inout_detached(&Nonce::from(noise_nonce(counter)), ad, buf.into())
            .expect("records are at most 64 KiB, far below ChaCha20's 256 GiB limit")
            .into()
    }

    fn open_in_place(
        &mut self,
        counter: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()> {
        let nonce = Nonce::from(noise_nonce(counter));
        self.0.decrypt_inout_detached(&nonce, ad, buf.into(), &Tag::from(*tag)).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 example.
    #[test]
    fn rfc8439_vector() {
        let key: [u8; 32] = hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .unwrap()
            .try_into()
            .unwrap();
        let ad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        // The RFC's nonce is 07000000 4041424344454647: not Noise's layout, so drive the crate directly.
        let nonce = Nonce::try_from(&hex::decode("070000004041424344454647").unwrap()[..]).unwrap();
        let mut buf = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let cipher = RustCrypto::new(&key);
        let tag = cipher.0.encrypt_inout_detached(&nonce, &ad, (&mut buf[..]).into()).unwrap();
        assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");
        assert_eq!(hex::encode(&buf[..16]), "d31a8d34648e60db7b86afbc53ef7ec2");
    }
}
