//! The HMAC-SHA256 seam of classic spiped (the MACs of the handshake's y and of every packet), and
//! PBKDF2-SHA256 with one iteration (its two key derivations), built on it. A backend is swapped by
//! changing the [`Backend`] alias alone; all of them produce the same tags.
//!
//! | backend | feature | why |
//! |---|---|---|
//! | `RustCrypto` | all builds | pure Rust (`hmac`, `sha2` with SHA-NI detected at run time): the fastest here |
//! | `AwsLc` | tests only, with `aws-lc` | aws-lc's SHA-NI assembly came 10-15% behind: an oracle |
//!
//! OpenSSL has no backend here: the `openssl` crate offers HMAC only through
//! `EVP_PKEY` signing contexts, set up anew for every message.

use hmac::{KeyInit, Mac};

/// Length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// One HMAC-SHA256 key, its inner and outer pads hashed once, ready to MAC any number of messages.
/// Each backend clears its state when dropped.
pub(crate) trait HmacSha256: Send + 'static {
    /// Keys the MAC with `key` (any length; classic spiped's keys are all 32 bytes).
    fn new(key: &[u8]) -> Self;

    /// The tag of the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; TAG_LEN];
}

/// The backend classic spiped uses in every build.
pub(crate) type Backend = RustCrypto;

/// PBKDF2-HMAC-SHA256 (RFC 8018) with one iteration, filling `out`: block `i` (from 1) is
/// `HMAC(password, salt || i as u32 big-endian)`. Classic spiped derives its keys this way.
pub(crate) fn pbkdf2_sha256_once(password: &[u8], salt: &[u8], out: &mut [u8]) {
    let prf = Backend::new(password);
    for (i, block) in out.chunks_mut(TAG_LEN).enumerate() {
        let index = u32::try_from(i + 1).expect("classic spiped derives at most 128 bytes");
        // Cleared when it goes out of scope: a block of key material.
        let t = zeroize::Zeroizing::new(prf.mac(&[salt, &index.to_be_bytes()]));
        block.copy_from_slice(&t[..block.len()]);
    }
}

/// RustCrypto's `hmac` over `sha2`. The keyed state is cloned per message (no allocation) and
/// zeroized on drop (the `zeroize` feature).
pub(crate) struct RustCrypto(hmac::Hmac<sha2::Sha256>);

impl HmacSha256 for RustCrypto {
    fn new(key: &[u8]) -> Self {
        RustCrypto(hmac::Hmac::new_from_slice(key).expect("HMAC takes a key of any length"))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// aws-lc's HMAC-SHA256. aws-lc cleans its keyed context when the key is dropped. An oracle for
/// the tests.
#[cfg(all(test, feature = "aws-lc"))]
pub(crate) struct AwsLc(aws_lc_rs::hmac::Key);

#[cfg(all(test, feature = "aws-lc"))]
impl HmacSha256 for AwsLc {
    fn new(key: &[u8]) -> Self {
        AwsLc(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key))
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign().as_ref().try_into().expect("an HMAC-SHA256 tag is TAG_LEN bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test cases 1, 2, 3, 4, 6 and 7 (5 truncates its output): key, data, HMAC-SHA256.
    const RFC4231: [(&str, &str, &str); 6] = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "4869205468657265",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            "4a656665",
            "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            "0102030405060708090a0b0c0d0e0f10111213141516171819",
            "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];

    fn rfc4231<B: HmacSha256>() {
        for (key, data, tag) in RFC4231 {
            let (key, data) = (hex::decode(key).unwrap(), hex::decode(data).unwrap());
            let mac = B::new(&key);
            assert_eq!(hex::encode(mac.mac(&[&data])), tag);
            // Split anywhere, the parts MAC as their concatenation; the key is reusable.
            let (a, b) = data.split_at(data.len() / 3);
            assert_eq!(hex::encode(mac.mac(&[a, &[], b])), tag);
        }
    }

    #[test]
    fn rust_crypto_matches_rfc4231() {
        rfc4231::<RustCrypto>();
    }

    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_matches_rfc4231() {
        rfc4231::<AwsLc>();
    }

    /// RFC 7914, section 11, first vector: PBKDF2-HMAC-SHA256 of "passwd" and "salt", one iteration,
    /// 64 bytes (the length of classic spiped's first derivation).
    #[test]
    fn pbkdf2_matches_rfc7914() {
        let mut out = [0u8; 64];
        pbkdf2_sha256_once(b"passwd", b"salt", &mut out);
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }

    /// OpenSSL's PBKDF2 (an implementation independent of ours) gives the same 128 bytes for any key
    /// and salt, as classic spiped's second derivation asks for.
    #[cfg(feature = "openssl")]
    #[test]
    fn pbkdf2_agrees_with_openssl() {
        use proptest::prelude::*;
        proptest!(|(key in any::<[u8; 32]>(), salt in prop::collection::vec(any::<u8>(), 0..400))| {
            let (mut ours, mut theirs) = ([0u8; 128], [0u8; 128]);
            pbkdf2_sha256_once(&key, &salt, &mut ours);
            openssl::pkcs5::pbkdf2_hmac(&key, &salt, 1, openssl::hash::MessageDigest::sha256(), &mut theirs)
                .unwrap();
            prop_assert_eq!(ours, theirs);
        });
    }

    /// aws-lc's tags are the pure-Rust crates' for any key and message, however it is split.
    #[cfg(feature = "aws-lc")]
    #[test]
    fn aws_lc_agrees_with_rust_crypto() {
        use proptest::prelude::*;
        proptest!(|(key in prop::collection::vec(any::<u8>(), 0..100), msg in prop::collection::vec(any::<u8>(), 0..1100),
                    cut in any::<prop::sample::Index>())| {
            let (a, b) = (RustCrypto::new(&key), AwsLc::new(&key));
            let (head, tail) = msg.split_at(cut.index(msg.len() + 1));
            prop_assert_eq!(a.mac(&[&msg]), b.mac(&[head, tail]));
        });
    }
}
