//! The AES-256-CTR seam of classic spiped's packets: every packet is encrypted with [`AesCtr`], so that
//! a backend is swapped by changing the [`Backend`] alias alone. All of them produce the same bytes.
//!
//! The counter block is classic spiped's (libcperciva's `crypto_aesctr`): the packet number as a
//! 64-bit big-endian integer, then the block index within the packet as a 64-bit big-endian integer
//! from 0. That is standard 128-bit big-endian CTR from the initial block [`iv`]`(packet number)`,
//! since a packet is far too short for the low half to carry into the high one.
//!
//! | backend | feature | why |
//! |---|---|---|
//! | `AwsLc` | `aws-lc` (default) | aws-lc's AES-NI assembly: the fastest on a 1028-byte packet |
//! | `RustCrypto` | without `aws-lc` | pure Rust (`aes` with AES-NI detected at run time, `ctr`); the reference |
//! | `OpenSsl` | tests only | OpenSSL re-initialises its context per packet and came last: an oracle |

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};

/// Length of an AES-256 key.
pub(crate) const KEY_LEN: usize = 32;
/// Length of the counter block.
pub(crate) const IV_LEN: usize = 16;

/// One AES-256 key, ready to encrypt or decrypt (the same operation in CTR mode) buffers in place from
/// a given initial counter block. Each backend clears its key schedule when dropped.
pub(crate) trait AesCtr: Send + 'static {
    /// Expands `key`.
    fn new(key: &[u8; KEY_LEN]) -> Self;

    /// XORs `buf` with the key stream that starts at counter block `iv`.
    fn apply(&mut self, iv: &[u8; IV_LEN], buf: &mut [u8]);
}

/// The first counter block of packet number `packet`: its number big-endian, then a zero block index.
pub(crate) fn iv(packet: u64) -> [u8; IV_LEN] {
    let mut iv = [0; IV_LEN];
    iv[..8].copy_from_slice(&packet.to_be_bytes());
    iv
}

/// The backend classic packets use: aws-lc's with the `aws-lc` feature.
#[cfg(feature = "aws-lc")]
pub(crate) type Backend = AwsLc;
/// The backend classic packets use: the pure-Rust crates without the `aws-lc` feature.
#[cfg(not(feature = "aws-lc"))]
pub(crate) type Backend = RustCrypto;

/// RustCrypto's `aes` (AES-NI detected at run time) in `ctr`'s 128-bit big-endian counter mode. The
/// key schedule is zeroized on drop (the `zeroize` feature).
#[cfg_attr(
    any(feature = "aws-lc", feature = "openssl"),
    allow(dead_code, reason = "the reference tests compare with")
)]
pub(crate) struct RustCrypto(aes::Aes256);

impl AesCtr for RustCrypto {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        RustCrypto(aes::Aes256::new(key.into()))
    }

    fn apply(&mut self, iv: &[u8; IV_LEN], buf: &mut [u8]) {
        // A stream over a borrowed key schedule: nothing is copied or allocated per packet.
        let core = ctr::CtrCore::<&aes::Aes256, ctr::flavors::Ctr128BE>::inner_iv_init(&self.0, iv.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(buf);
    }
}

/// aws-lc's AES-256-CTR. aws-lc-rs zeroizes the key schedule when the key is dropped.
#[cfg(feature = "aws-lc")]
pub(crate) struct AwsLc(aws_lc_rs::cipher::EncryptingKey);

#[cfg(feature = "aws-lc")]
impl AesCtr for AwsLc {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        use aws_lc_rs::cipher::{AES_256, EncryptingKey, UnboundCipherKey};
        let key =
            UnboundCipherKey::new(&AES_256, key).expect("a 32-byte key is the right length for AES-256");
        AwsLc(EncryptingKey::ctr(key).expect("aws-lc provides AES-256 in CTR mode"))
    }

    fn apply(&mut self, iv: &[u8; IV_LEN], buf: &mut [u8]) {
        use aws_lc_rs::cipher::EncryptionContext;
        use aws_lc_rs::iv::FixedLength;
        self.0
            .less_safe_encrypt(buf, EncryptionContext::Iv128(FixedLength::from(*iv)))
            .expect("CTR mode takes any length and a 16-byte counter block");
    }
}

/// OpenSSL's AES-256-CTR: one keyed context, re-initialised with each packet's counter block only.
/// OpenSSL clears the key schedule when it frees the context. An oracle for the tests.
#[cfg(all(test, feature = "openssl"))]
pub(crate) struct OpenSsl(openssl::cipher_ctx::CipherCtx);

#[cfg(all(test, feature = "openssl"))]
impl AesCtr for OpenSsl {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut ctx = openssl::cipher_ctx::CipherCtx::new().expect("allocating an OpenSSL cipher context");
        ctx.encrypt_init(Some(openssl::cipher::Cipher::aes_256_ctr()), Some(key), None)
            .expect("OpenSSL takes a 32-byte AES-256-CTR key");
        OpenSsl(ctx)
    }

    fn apply(&mut self, iv: &[u8; IV_LEN], buf: &mut [u8]) {
        let ctx = &mut self.0;
        ctx.encrypt_init(None, None, Some(iv))
            .and_then(|()| ctx.cipher_update_inplace(buf, buf.len()))
            .expect("a keyed AES-256-CTR context encrypts any buffer");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST SP 800-38A, F.5.5 (CTR-AES256.Encrypt): key, initial counter block, four blocks of
    /// plaintext and their ciphertext.
    fn sp800_38a_f55<B: AesCtr>() {
        let key: [u8; KEY_LEN] =
            hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
                .unwrap()
                .try_into()
                .unwrap();
        let iv: [u8; IV_LEN] = hex::decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").unwrap().try_into().unwrap();
        let plaintext = hex::decode(concat!(
            "6bc1bee22e409f96e93d7e117393172a",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef",
            "f69f2445df4f9b17ad2b417be66c3710"
        ))
        .unwrap();
        let ciphertext = concat!(
            "601ec313775789a5b7a7f504bbf3d228",
            "f443e3ca4d62b59aca84e990cacaf5c5",
            "2b0930daa23de94ce87017ba2d84988d",
            "dfc9c58db67aada613c2dd08457941a6"
        );
        let mut cipher = B::new(&key);
        let mut buf = plaintext.clone();
        cipher.apply(&iv, &mut buf);
        assert_eq!(hex::encode(&buf), ciphertext);
        cipher.apply(&iv, &mut buf);
        assert_eq!(buf, plaintext, "CTR decryption is the same operation");
        // A tail shorter than a block, and a buffer starting mid-stream, as packets never do but
        // the seam allows.
        let mut short = plaintext[..21].to_vec();
        cipher.apply(&iv, &mut short);
        assert_eq!(hex::encode(&short), &ciphertext[..42]);
    }

    #[test]
    fn rust_crypto_matches_sp800_38a() {
        sp800_38a_f55::<RustCrypto>();
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_matches_sp800_38a() {
        sp800_38a_f55::<AwsLc>();
    }

    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_matches_sp800_38a() {
        sp800_38a_f55::<OpenSsl>();
    }

    /// The counter block is classic spiped's: packet number big-endian in the first half, block index
    /// big-endian from 0 in the second. Checked against AES-256 of the blocks themselves.
    #[test]
    fn counter_blocks_are_packet_number_then_block_index() {
        use aes::cipher::BlockCipherEncrypt;
        let key = [0x11; KEY_LEN];
        let packet = 0x0102_0304_0506_0708u64;
        let mut buf = [0u8; 1028];
        Backend::new(&key).apply(&iv(packet), &mut buf);
        let aes = aes::Aes256::new(&key.into());
        for (index, block) in buf.chunks(16).enumerate() {
            let mut counter = [0u8; 16];
            counter[..8].copy_from_slice(&packet.to_be_bytes());
            counter[8..].copy_from_slice(&(index as u64).to_be_bytes());
            let mut expected = counter.into();
            aes.encrypt_block(&mut expected);
            assert_eq!(block, &expected[..block.len()], "block {index}");
        }
    }

    /// `B` produces the pure-Rust crates' bytes for any key, packet number and length.
    #[cfg(any(feature = "aws-lc", feature = "openssl"))]
    fn agrees_with_rust_crypto<B: AesCtr>() {
        use proptest::prelude::*;
        proptest!(|(key in any::<[u8; 32]>(), packet in any::<u64>(), msg in prop::collection::vec(any::<u8>(), 0..2100))| {
            let (mut a, mut b) = (RustCrypto::new(&key), B::new(&key));
            let (mut x, mut y) = (msg.clone(), msg.clone());
            a.apply(&iv(packet), &mut x);
            b.apply(&iv(packet), &mut y);
            prop_assert_eq!(&x, &y);
            // The same context goes on with the next packet.
            a.apply(&iv(packet.wrapping_add(1)), &mut x);
            b.apply(&iv(packet.wrapping_add(1)), &mut y);
            prop_assert_eq!(&x, &y);
        });
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_agrees_with_rust_crypto() {
        agrees_with_rust_crypto::<AwsLc>();
    }

    #[cfg(feature = "openssl")]
    #[test]
    fn openssl_agrees_with_rust_crypto() {
        agrees_with_rust_crypto::<OpenSsl>();
    }
}
