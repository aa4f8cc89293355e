//! The cryptographic primitives, each behind a seam with one backend per cargo feature, all producing
//! the same bytes: the AEAD and X25519 of the native protocol; AES-256-CTR, HMAC-SHA256 (and PBKDF2)
//! and RFC 3526 group 14 of classic spiped.

pub(crate) mod aead;
pub(crate) mod aes_ctr;
pub(crate) mod group14;
pub(crate) mod hmac;
pub(crate) mod x25519;
