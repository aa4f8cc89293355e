//! Everything that can go wrong in the native handshake; record errors are the shared
//! [`crate::proto::RecordError`]. The peer is never told which: the daemon closes the
//! connection and logs the variant.

/// Why a handshake or record was refused. Each variant is fatal for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The first bytes are not the native protocol's preamble: not spiped-rs, perhaps classic spiped.
    #[error("peer did not send the spiped-rs preamble (not spiped-rs, or classic spiped)")]
    NotNative,
    /// The preamble names a protocol version this build does not speak.
    #[error("peer speaks spiped-rs protocol version {0}, this build speaks version 1")]
    UnsupportedVersion(u8),
    /// A handshake message failed authentication: the peer does not hold the key, or bytes were altered.
    #[error("handshake authentication failed (wrong key, or the message was altered)")]
    HandshakeAuth,
    /// The peer's ephemeral key is a low-order point, so the Diffie-Hellman result is all zeros.
    #[error("peer sent a non-contributory (low-order) ephemeral key")]
    NonContributory,
    /// The initiator's first record, which confirms its key, was an end-of-stream instead of data.
    #[error("initiator's first record was not a data record")]
    ConfirmationNotData,
    /// The initiator put a parked connection to use after this end had retired it (their records
    /// crossed): the connection is reset and its data never delivered.
    #[error("the initiator put a parked connection to use after it was retired here")]
    PutToUseAfterRetired,
    /// The initiator's first record, which confirms its key, failed: altered, truncated or under
    /// another key.
    #[error("{0}")]
    Record(#[from] crate::proto::RecordError),
}
