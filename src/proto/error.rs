//! Everything that can go wrong in the protocol. The peer is never told which: the daemon closes the
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
    /// A record header announced fewer bytes than a type byte and a tag need.
    #[error("record length {0} is below the minimum of 17")]
    RecordTooShort(u16),
    /// A record failed authentication: altered, reordered, replayed, reflected or under another key.
    #[error("record authentication failed (altered, reordered, replayed or wrong key)")]
    RecordAuth,
    /// A record decrypted to a type byte this version does not define.
    #[error("record of unknown type {0:#04x}")]
    UnknownRecordType(u8),
    /// An end-of-stream record carried a body.
    #[error("end-of-stream record with a body")]
    EndWithBody,
    /// Bytes arrived after the peer's authenticated end-of-stream.
    #[error("data after the peer's end-of-stream")]
    RecordAfterEnd,
    /// The transport closed before an authenticated end-of-stream: the stream was cut short.
    #[error("stream truncated: the connection closed without an authenticated end-of-stream")]
    Truncated,
    /// The message counter reached 2^64 - 1, which Noise reserves.
    #[error("record counter exhausted")]
    NonceExhausted,
    /// Local misuse: data was sealed after this direction's end-of-stream.
    #[error("sealing after end-of-stream")]
    SealAfterEnd,
    /// A record was opened after this direction already failed.
    #[error("receiving direction already failed")]
    Failed,
}
