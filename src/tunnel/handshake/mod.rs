//! The handshake over a socket: one driver per protocol, each returning an [`Established`] pair. Errors
//! stay typed from the protocol to the log. Deadlines, eviction and the forced stop are the caller's:
//! the drivers only move the handshake's bytes.

pub mod native;

use std::io;

use crate::proto::{RecordError, native::ProtoError};

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's native handshake was refused: a wrong key, garbage, a replay, another protocol.
    #[error("{0}")]
    Native(#[from] ProtoError),
    /// The socket failed or the peer closed it before the handshake was over.
    #[error("peer closed the connection early ({0})")]
    Io(#[from] io::Error),
}

impl From<RecordError> for HandshakeError {
    fn from(e: RecordError) -> Self {
        HandshakeError::Native(e.into())
    }
}

/// A handshake that succeeded: the two directions' states and the bytes around them.
#[derive(Debug)]
pub struct Established<S, O> {
    /// The sending direction.
    pub sealer: S,
    /// The receiving direction.
    pub opener: O,
    /// `-e`: frames to send before (or with) the first data (the native key confirmation). `-d`: the
    /// plaintext the initiator put in its key confirmation (empty from spiped-rs).
    pub first: Vec<u8>,
    /// Bytes read from the peer past the handshake, to open before reading more.
    pub pending: Vec<u8>,
}
