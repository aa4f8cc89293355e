//! The AEAD seam: every ChaCha20-Poly1305 operation of the protocol goes through [`Aead`], so that a
//! faster backend can replace the pure-Rust one by changing the [`Backend`] alias alone.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

use super::TAG_LEN;

/// Length of a ChaCha20-Poly1305 key.
pub(crate) const KEY_LEN: usize = 32;

/// One ChaCha20-Poly1305 key, ready to seal and open in place with Noise's nonce layout
/// (32 zero bits, then the 64-bit counter little-endian).
pub(crate) trait Aead {
    /// Sets up the cipher for `key`.
    fn new(key: &[u8; KEY_LEN]) -> Self;

    /// Encrypts `buf` in place and returns the tag over it and `ad`.
    fn seal_in_place(&self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN];

    /// Checks `tag` over `buf` and `ad`, then decrypts `buf` in place.
    ///
    /// # Errors
    /// `Err(())` when the tag does not verify; `buf` is then left encrypted.
    #[allow(clippy::result_unit_err)]
    fn open_in_place(&self, counter: u64, ad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), ()>;
}

/// The backend the protocol uses.
pub(crate) type Backend = RustCrypto;

/// The pure-Rust `chacha20poly1305` crate. Its key is zeroized on drop.
pub(crate) struct RustCrypto(ChaCha20Poly1305);

fn noise_nonce(counter: u64) -> Nonce {
    let mut nonce = Nonce::default();
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

impl Aead for RustCrypto {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        RustCrypto(ChaCha20Poly1305::new(key.into()))
    }

    fn seal_in_place(&self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_inout_detached(&noise_nonce(counter), ad, buf.into())
            .expect("records are at most 64 KiB, far below ChaCha20's 256 GiB limit")
            .into()
    }

    fn open_in_place(&self, counter: u64, ad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), ()> {
        self.0.decrypt_inout_detached(&noise_nonce(counter), ad, buf.into(), &Tag::from(*tag)).map_err(|_| ())
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

    #[test]
    fn open_reverses_seal_and_rejects_a_changed_byte() {
        let cipher = RustCrypto::new(&[9; KEY_LEN]);
        let mut buf = *b"sixteen byte msg";
        let tag = cipher.seal_in_place(5, b"ad", &mut buf);
        let sealed = buf;
        assert_eq!(cipher.open_in_place(4, b"ad", &mut buf, &tag), Err(()));
        assert_eq!(buf, sealed, "a failed open leaves the buffer encrypted");
        assert_eq!(cipher.open_in_place(5, b"ad", &mut buf, &tag), Ok(()));
        assert_eq!(&buf, b"sixteen byte msg");
    }
}
