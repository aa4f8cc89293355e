//! spiped-rs: a secure pipe daemon with spiped's command line and a Noise NNpsk0 + ChaCha20-Poly1305
//! protocol.
//!
//! # Layout
//! - [`proto`]: the wire protocol, with no I/O: handshake phases as types, records sealed and opened in
//!   caller-owned buffers. `docs/PROTOCOL.md` is its specification.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod proto;
