//! The AEAD seam: every ChaCha20-Poly1305 operation of the protocol goes through [`Aead`], so that
//! backends can be swapped by changing the [`Backend`] alias alone. All of them produce the same bytes.
//!
//! | backend | feature | why |
//! |---|---|---|
//! | `libcrypto::OpenSsl` | `openssl` (default) | the system's OpenSSL 3: AVX-512 code, 1.5x aws-lc's at 16-64 KiB records |
//! | `aws_lc::AwsLc` | `aws-lc` (default) without `openssl` | AVX2 assembly, 2x the pure-Rust crate's at 16 KiB |
//! | `rust_crypto::RustCrypto` | neither | pure Rust, no C library; the reference the tests compare with |

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "openssl")]
mod libcrypto;
mod rust_crypto;

/// Length of a Poly1305 authentication tag, appended to every encrypted message.
pub const TAG_LEN: usize = 16;

/// Length of a ChaCha20-Poly1305 key.
pub(crate) const KEY_LEN: usize = 32;

/// One ChaCha20-Poly1305 key, ready to seal and open in place with Noise's nonce layout
/// (32 zero bits, then the 64-bit counter little-endian). Each backend clears its key when dropped.
pub(crate) trait Aead {
    /// Sets up the cipher for `key`.
    fn new(key: &[u8; KEY_LEN]) -> Self;

    /// Encrypts `buf` in place and returns the tag over it and `ad`.
    fn seal_in_place(&mut self, counter: u64, ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN];

    /// Checks `tag` over `buf` and `ad`, then decrypts `buf` in place.
    ///
    /// # Errors
    /// `Err(())` when the tag does not verify. `buf` then holds no plaintext: either the ciphertext
    /// as it was, or zeros.
    #[allow(clippy::result_unit_err)]
    fn open_in_place(
        &mut self,
        counter: u64,
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), ()>;
}

/// The backend the protocol uses: OpenSSL's with the `openssl` feature.
#[cfg(feature = "openssl")]
pub(crate) type Backend = libcrypto::OpenSsl;
/// The backend the protocol uses: aws-lc's with the `aws-lc` feature and without `openssl`.
#[cfg(all(feature = "aws-lc", not(feature = "openssl")))]
pub(crate) type Backend = aws_lc::AwsLc;
/// The backend the protocol uses: the pure-Rust crate, without the `openssl` and `aws-lc` features.
#[cfg(not(any(feature = "aws-lc", feature = "openssl")))]
pub(crate) type Backend = rust_crypto::RustCrypto;

/// The AEAD backend this build uses cannot work on this system.
#[derive(Debug, thiserror::Error)]
#[error(
    "no ChaCha20-Poly1305 from {0}; a build with `--no-default-features --features aws-lc` brings its own"
)]
pub struct BackendUnavailable(pub(crate) String);

/// Readies the backend in use: OpenSSL loads its configuration and fetches the cipher once; the
/// others need nothing.
///
/// # Errors
/// When the backend cannot work here (OpenSSL configured to refuse ChaCha20-Poly1305).
pub(crate) fn init() -> Result<(), BackendUnavailable> {
    #[cfg(feature = "openssl")]
    libcrypto::init()?;
    Ok(())
}

/// Noise's nonce for `counter`: 32 zero bits, then the counter little-endian. Every backend uses it.
fn noise_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "aws-lc")]
    use super::aws_lc::AwsLc;
    #[cfg(feature = "openssl")]
    use super::libcrypto::OpenSsl;
    use super::rust_crypto::RustCrypto;
    use super::*;

    /// `B` produces the pure-Rust crate's bytes and tags, opens what it sealed and the other way
    /// round, and refuses a changed byte without leaving plaintext behind.
    #[cfg(any(feature = "aws-lc", feature = "openssl"))]
    fn agrees_with_rust_crypto<B: Aead>() {
        use proptest::prelude::*;
        proptest!(|(key in any::<[u8; 32]>(), counter in any::<u64>(), ad in prop::collection::vec(any::<u8>(), 0..64),
                    msg in prop::collection::vec(any::<u8>(), 0..3000))| {
            let (mut a, mut b) = (RustCrypto::new(&key), B::new(&key));
            let (mut x, mut y) = (msg.clone(), msg.clone());
            let tag = a.seal_in_place(counter, &ad, &mut x);
            prop_assert_eq!(tag, b.seal_in_place(counter, &ad, &mut y));
            prop_assert_eq!(&x, &y);
            let sealed = x.clone();
            prop_assert!(b.open_in_place(counter, &ad, &mut x, &tag).is_ok());
            prop_assert!(a.open_in_place(counter, &ad, &mut y, &tag).is_ok());
            prop_assert_eq!((&x, &y), (&msg, &msg));
            if !msg.is_empty() {
                let mut z = sealed.clone();
                z[0] ^= 1;
                prop_assert!(b.open_in_place(counter, &ad, &mut z, &tag).is_err());
                prop_assert!(z[1..] == sealed[1..] || z.iter().all(|&byte| byte == 0), "no plaintext is left");
                // The same context goes on working after a refusal.
                let mut w = sealed.clone();
                prop_assert!(b.open_in_place(counter, &ad, &mut w, &tag).is_ok());
                prop_assert_eq!(&w, &msg);
            }
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

    /// Records up to the protocol's largest (64 KiB) through the backend in use, one context
    /// sealing a run of records as a connection's direction does.
    #[test]
    fn backend_matches_rust_crypto_on_full_size_records() {
        let key = [0x5a; KEY_LEN];
        let (mut ours, mut reference) = (Backend::new(&key), RustCrypto::new(&key));
        for (counter, len) in [0usize, 1, 63, 64, 4096, 16_384, 65_535].into_iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + counter) as u8).collect();
            let (mut x, mut y) = (msg.clone(), msg.clone());
            let tag = ours.seal_in_place(counter as u64, b"ad", &mut x);
            assert_eq!(tag, reference.seal_in_place(counter as u64, b"ad", &mut y), "tag of {len} bytes");
            assert_eq!(x, y, "ciphertext of {len} bytes");
            ours.open_in_place(counter as u64, b"ad", &mut x, &tag).expect("opens what it sealed");
            assert_eq!(x, msg);
        }
    }

    #[test]
    fn open_reverses_seal_and_rejects_a_changed_byte() {
        let mut cipher = Backend::new(&[9; KEY_LEN]);
        let mut buf = *b"sixteen byte msg";
        let tag = cipher.seal_in_place(5, b"ad", &mut buf);
        let sealed = buf;
        assert_eq!(cipher.open_in_place(4, b"ad", &mut buf, &tag), Err(()));
        assert!(buf == sealed || buf == [0; 16], "a failed open leaves no plaintext");
        let mut buf = sealed;
        assert_eq!(cipher.open_in_place(5, b"ad", &mut buf, &tag), Ok(()));
        assert_eq!(&buf, b"sixteen byte msg");
    }
}
