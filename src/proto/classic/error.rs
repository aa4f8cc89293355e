//! Why a classic handshake failed. Each is fatal for the connection.

/// A classic handshake refused the peer's y and its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The MAC of the peer's y does not verify: the peer uses another key file, or the handshake's
    /// bytes were altered on the way.
    #[error("the peer's handshake does not verify: wrong key (or altered in transit)")]
    BadMac,
    /// The peer sent y = 1 (it runs with `-f`, without forward secrecy) and this end requires
    /// forward secrecy (`-g`).
    #[error("the peer skips the Diffie-Hellman exchange (-f) and this end requires forward secrecy (-g)")]
    NoForwardSecrecy,
    /// The peer sent y = 0, which no group element is: the shared secret would be 0.
    #[error("the peer's Diffie-Hellman value is 0")]
    ZeroY,
    /// The peer sent y = p - 1, of order 2: the shared secret would be 1 or p - 1.
    #[error("the peer's Diffie-Hellman value is p - 1")]
    MinusOneY,
    /// The peer sent y >= p, not reduced modulo the group's prime (spiped 1.6 refuses it too).
    #[error("the peer's Diffie-Hellman value is not below the group's prime")]
    YOutOfRange,
}
