//! The cryptographic primitives, each behind a seam with one backend per cargo feature, all producing
//! the same bytes: the AEAD and X25519 of the native protocol.

pub(crate) mod aead;
pub(crate) mod x25519;
