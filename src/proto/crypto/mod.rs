//! The cryptographic primitives, each behind a seam with one backend per cargo feature, all producing
//! the same bytes: the AEAD and X25519 of the native protocol; AES-256-CTR, HMAC-SHA256 (and PBKDF2)
//! and RFC 3526 group 14 of classic spiped.

pub(crate) mod aead;
pub(crate) mod aes_ctr;
pub(crate) mod group14;
pub(crate) mod hmac;
pub(crate) mod x25519;

/// The backend of each primitive in this build, by name, for build information. It follows the
/// choice of each module's `Backend` type from the cargo features.
pub const BACKENDS: [(&str, &str); 4] = [
    (
        "chacha20poly1305",
        if cfg!(feature = "openssl") {
            "openssl"
        } else if cfg!(feature = "aws-lc") {
            "aws-lc"
        } else {
            "rustcrypto"
        },
    ),
    ("x25519", if cfg!(feature = "aws-lc") { "aws-lc" } else { "x25519-dalek" }),
    ("aes_ctr", if cfg!(feature = "aws-lc") { "aws-lc" } else { "rustcrypto" }),
    ("group14", if cfg!(feature = "openssl") { "openssl" } else { "crypto-bigint" }),
];
