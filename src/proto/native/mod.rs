//! spiped-rs's native protocol: a Noise NNpsk0 handshake whose phases are types, then ChaCha20-Poly1305
//! records in each direction (docs/PROTOCOL.md, sections 1-6).

mod cipher;
mod error;
mod handshake;
mod park;
mod record;
mod symmetric;

pub use error::ProtoError;
pub use handshake::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MAGIC, MSG1_LEN, MSG2_LEN, PREAMBLE, PREAMBLE_LEN, PROLOGUE,
    PROTOCOL_NAME, Preamble, Responder, Unconfirmed, VERSION,
};
pub use park::{Accepted, Closing, ParkRequest, Parked, Ready, Retired, Retiring, Spare, Waiting, Wake};
pub use record::{
    MAX_RECORD_DATA, Opener, RECORD_HEADER_LEN, RECORD_MAX_BODY, RECORD_MAX_CIPHERTEXT, RECORD_MAX_LEN,
    RECORD_MIN_CIPHERTEXT, RECORD_OVERHEAD, Sealer, TYPE_DATA, TYPE_END, TYPE_PARK, Transport, frame_len,
};

pub use crate::proto::crypto::aead::TAG_LEN;
pub use crate::proto::crypto::x25519::DH_LEN;

#[cfg(test)]
mod vectors;
