//! The handshake over a socket: one driver per protocol, each returning an [`Established`] pair. Errors
//! stay typed from the protocol to the log. Deadlines, eviction and the forced stop are the caller's:
//! the drivers only move the handshake's bytes.

pub mod classic;
pub mod native;

use std::io;

use tokio::io::AsyncReadExt;

use super::stream::ReadHalf;
use crate::proto::native::{PREAMBLE_LEN, Preamble, ProtoError};
use crate::proto::{Protocol, Protocols, RecordError};

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer's native handshake was refused: a wrong key, garbage, a replay, another protocol.
    #[error("{0}")]
    Native(#[from] ProtoError),
    /// The peer's classic handshake was refused: a wrong key, a `-g` refusal, an invalid value.
    #[error("{0}")]
    Classic(#[from] crate::proto::classic::HandshakeError),
    /// `-d`: the initiator speaks a protocol this end was told not to accept (`--protocol`).
    #[error("{}", not_accepted(*.0))]
    NotAccepted(Protocol),
    /// `-e`, native: the target answered as a classic spiped `-d` does, with a nonce before our
    /// first message could have reached it.
    #[error(
        "the target speaks classic spiped (it sent a 32-byte nonce and then waited, as spiped 1.x does): \
         start this end with --protocol classic to talk to it"
    )]
    ClassicTarget,
    /// The socket failed or the peer closed it before the handshake was over.
    #[error("peer closed the connection early ({0})")]
    Io(#[from] io::Error),
}

/// Why a protocol was refused, naming the option that would accept it.
fn not_accepted(spoken: Protocol) -> &'static str {
    match spoken {
        Protocol::Classic => {
            "the peer did not send the spiped-rs preamble (classic spiped, or not spiped at all) and this \
             end accepts only the native protocol (--protocol native)"
        }
        Protocol::Native => {
            "the peer speaks the spiped-rs native protocol and this end accepts only classic spiped \
             (--protocol classic)"
        }
    }
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
    /// The index of the key the peer proved, in the slice the responder was given, so the caller
    /// can say which key a connection used (by its fingerprint); always 0 on an initiator, which
    /// holds one key.
    pub key: usize,
}

/// An established connection of either protocol.
#[derive(Debug)]
pub enum Pair {
    /// spiped-rs's native protocol.
    Native(native::Native),
    /// Classic spiped 1.x's.
    Classic(classic::Classic),
}

/// `-d`: reads the initiator's first [`PREAMBLE_LEN`] bytes and tells its protocol from them: the
/// native preamble (of any version) means native, anything else classic spiped, whose initiator
/// sends its 32-byte random nonce without waiting for anything, so that waiting for these bytes
/// cannot deadlock. Returns the protocol and the bytes read, which begin its handshake.
///
/// # Errors
/// [`HandshakeError::NotAccepted`] for a protocol `accepted` does not allow,
/// [`ProtoError::UnsupportedVersion`] for a native preamble of another version, or a socket error.
pub async fn detect(
    er: &mut ReadHalf,
    accepted: Protocols,
) -> Result<(Protocol, [u8; PREAMBLE_LEN]), HandshakeError> {
    let mut first = [0u8; PREAMBLE_LEN];
    er.read_exact(&mut first).await?;
    let spoken = match Preamble::classify(&first) {
        Preamble::Native => Protocol::Native,
        Preamble::OtherVersion(version) => return Err(ProtoError::UnsupportedVersion(version).into()),
        Preamble::Foreign => Protocol::Classic,
    };
    if !accepted.allows(spoken) {
        return Err(HandshakeError::NotAccepted(spoken));
    }
    Ok((spoken, first))
}
