//! The primitives behind classic spiped, each behind a seam with one backend per crypto library.
//! (The native protocol's AEAD and X25519 join them here.)

pub(crate) mod aes_ctr;
pub(crate) mod group14;
pub(crate) mod hmac;
