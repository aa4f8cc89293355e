//! The native handshake over a socket, one driver per role, each returning the established pair.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Established, HandshakeError};
use crate::proto::native::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, Opener, PREAMBLE_LEN, Preamble, Responder, Sealer,
    Unconfirmed, frame_len,
};
use crate::proto::{Psk, RecordError};
use crate::tunnel::stream::{ReadHalf, WriteHalf};

/// A native connection, established.
pub type Native = Established<Sealer, Opener>;

/// Bytes the `-d` end reads at once while waiting for the key confirmation: the confirmation from a
/// spiped-rs initiator fits, so an unproven peer costs this much and no more until it sends a record
/// header that asks for more.
const CONFIRMATION_READ: usize = 256;

/// `-e`: sends the hello, reads message 2, and returns the transport with the key confirmation to send.
///
/// # Errors
/// [`HandshakeError`].
pub async fn initiate(er: &mut ReadHalf, ew: &mut WriteHalf, psk: &Psk) -> Result<Native, HandshakeError> {
    let (initiator, hello) = Initiator::start(psk, EphemeralKey::generate(&mut rand::rng()));
    ew.write_all(&hello).await?;
    let mut msg2 = [0u8; MSG2_LEN];
    er.read_exact(&mut msg2).await?;
    let mut confirmation = Vec::new();
    let (sealer, opener) = initiator.read_response(&msg2, &mut confirmation)?.split();
    Ok(Established { sealer, opener, first: confirmation, pending: Vec::new() })
}

/// `-d`, first half: reads the hello and, if it was made with the key, sends message 2. The
/// initiator is not authenticated yet: a captured hello can be replayed. [`read_confirmation`] is the
/// second half.
///
/// # Errors
/// [`HandshakeError`].
pub async fn answer_hello(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    psk: &Psk,
) -> Result<Unconfirmed, HandshakeError> {
    let hello = read_hello(er).await?;
    let (unconfirmed, msg2) = Responder::accept(psk, &hello, EphemeralKey::generate(&mut rand::rng()))?;
    ew.write_all(&msg2).await?;
    Ok(unconfirmed)
}

/// `-d`, second half: reads the initiator's first record, which proves it holds the key and took
/// part in this handshake.
///
/// An unproven peer costs little memory: the first read asks for 256 bytes (`CONFIRMATION_READ`), and
/// the buffer grows, never past the first record's length, only as fast as bytes arrive.
///
/// # Errors
/// [`HandshakeError`]; [`RecordError::Truncated`] when the peer ends the stream before confirming.
pub async fn read_confirmation(
    er: &mut ReadHalf,
    mut unconfirmed: Unconfirmed,
) -> Result<Native, HandshakeError> {
    let mut buf = Vec::with_capacity(CONFIRMATION_READ);
    loop {
        if er.read_buf(&mut buf).await? == 0 {
            return Err(RecordError::Truncated.into());
        }
        match unconfirmed.confirm(&mut buf)? {
            Confirm::NeedMore(u) => unconfirmed = u,
            Confirm::Confirmed { transport, data, consumed } => {
                let first = data.to_vec();
                buf.drain(..consumed);
                let (sealer, opener) = transport.split();
                return Ok(Established { sealer, opener, first, pending: buf });
            }
        }
        // Room for more, at most doubling what has arrived and never past the record's end.
        // (The record is longer than what is in, and so is twice that, so there is always room.)
        let record = frame_len(&buf).unwrap_or(CONFIRMATION_READ);
        let room = record.min((buf.len() * 2).max(CONFIRMATION_READ));
        if buf.capacity() < room {
            buf.reserve_exact(room - buf.len());
        }
    }
}

/// Reads the initiator's hello, usually in one read. The preamble is checked as soon as it is in, so a
/// classic spiped or another protocol is refused at once rather than at the handshake timeout.
async fn read_hello(er: &mut ReadHalf) -> Result<[u8; HELLO_LEN], HandshakeError> {
    let mut hello = [0u8; HELLO_LEN];
    let mut filled = 0;
    while filled < HELLO_LEN {
        let n = er.read(&mut hello[filled..]).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        if filled < PREAMBLE_LEN && filled + n >= PREAMBLE_LEN {
            Preamble::check(hello[..PREAMBLE_LEN].try_into().expect("PREAMBLE_LEN bytes"))?;
        }
        filled += n;
    }
    Ok(hello)
}
