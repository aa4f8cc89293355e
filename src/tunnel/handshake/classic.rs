//! The classic spiped 1.x handshake over a socket (docs/PROTOCOL.md, section 10), one driver per role,
//! each returning the established pair. The order is spiped 1.6's: both ends send their nonce at once;
//! the initiator sends its y as soon as it has the responder's nonce; the responder checks that y
//! before it makes and sends its own.

use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Established, HandshakeError};
use crate::proto::Psk;
use crate::proto::classic::{
    DhPrivate, ForwardSecrecy, Initiator, NONCE_LEN, Opener, Responder, Sealer, Y_AND_MAC_LEN,
};
use crate::proto::native::PREAMBLE_LEN;
use crate::tunnel::stream::{ReadHalf, WriteHalf};

/// A classic connection, established.
pub type Classic = Established<Sealer, Opener>;

/// `-e`: sends our nonce, reads the responder's, sends our y, and returns once the responder's y has
/// verified. Nothing of the client's is sent before.
///
/// # Errors
/// [`HandshakeError`]: a wrong key, a `-g` refusal, an invalid y, or a closed socket.
pub async fn initiate(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    psk: &Psk,
    fs: ForwardSecrecy,
) -> Result<Classic, HandshakeError> {
    let (initiator, nonce) = Initiator::start(psk, fs, rand::rng().random());
    ew.write_all(&nonce).await?;
    let mut theirs = [0u8; NONCE_LEN];
    er.read_exact(&mut theirs).await?;
    let (initiator, y) = initiator.read_nonce(&theirs, DhPrivate::generate(&mut rand::rng()));
    ew.write_all(&y).await?;
    let mut their_y = [0u8; Y_AND_MAC_LEN];
    er.read_exact(&mut their_y).await?;
    let (sealer, opener) = initiator.read_y(&their_y)?.split();
    Ok(Established { sealer, opener, first: Vec::new(), pending: Vec::new(), key: 0 })
}

/// `-d`, once the first [`PREAMBLE_LEN`] bytes of the initiator's nonce (`first`) have told it apart
/// from a native initiator: sends our nonce, reads the rest of the initiator's and its y, and sends
/// our y once that has verified under one of `keys` (tried in order, each costing a PBKDF2 and an
/// HMAC, and no exponentiation before one verifies). A verified y proves the initiator holds that key
/// and is not replaying an old handshake (its MAC key is derived from our fresh nonce), so the caller
/// may then connect to the target. [`Established::key`] is the index of that key in `keys`.
///
/// # Errors
/// [`HandshakeError`]: none of the keys, a `-g` refusal, an invalid y, or a closed socket.
pub async fn respond(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    keys: &[Psk],
    fs: ForwardSecrecy,
    first: [u8; PREAMBLE_LEN],
) -> Result<Classic, HandshakeError> {
    let (responder, nonce) = Responder::start(keys, fs, rand::rng().random());
    ew.write_all(&nonce).await?;
    let mut theirs = [0u8; NONCE_LEN];
    theirs[..PREAMBLE_LEN].copy_from_slice(&first);
    er.read_exact(&mut theirs[PREAMBLE_LEN..]).await?;
    let responder = responder.read_nonce(&theirs);
    let mut their_y = [0u8; Y_AND_MAC_LEN];
    er.read_exact(&mut their_y).await?;
    let (transport, y, key) = responder.read_y(&their_y, DhPrivate::generate(&mut rand::rng()))?;
    ew.write_all(&y).await?;
    let (sealer, opener) = transport.split();
    Ok(Established { sealer, opener, first: Vec::new(), pending: Vec::new(), key })
}
