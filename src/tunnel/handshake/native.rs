//! The native handshake over a socket, one driver per role, each returning the established pair.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::{Established, HandshakeError};
use crate::proto::native::{
    Accepted, Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, Opener, PREAMBLE_LEN, ParkRequest,
    Ready, Responder, Sealer, Unconfirmed, frame_len,
};
use crate::proto::{Psk, RecordError};
use crate::tunnel::stream::{ReadHalf, WriteHalf};

/// How long a native `-e` end waits for the rest of message 2 after exactly a classic nonce's worth of
/// it: message 2 comes in one segment, so on a native target this is never waited for.
pub const CLASSIC_SILENCE: Duration = Duration::from_secs(1);

/// What a classic spiped `-d` end sends unprompted: its nonce.
const CLASSIC_NONCE_LEN: usize = crate::proto::classic::NONCE_LEN;
const _: () =
    assert!(CLASSIC_NONCE_LEN < MSG2_LEN, "a classic nonce is a strict prefix of message 2's length");

/// A native connection, established.
pub type Native = Established<Sealer, Opener>;

/// Bytes the `-d` end reads at once while waiting for the key confirmation: the confirmation from a
/// spiped-rs initiator fits, so an unproven peer costs this much and no more until it sends a record
/// header that asks for more.
const CONFIRMATION_READ: usize = 256;

/// `-e`: sends the hello, reads message 2, and returns the pair with the key confirmation to send.
///
/// A classic spiped `-d` end sends its 32-byte nonce as soon as it accepts, then waits for more than
/// our hello holds; a native `-d` end sends its 48-byte message 2 in one piece and only in answer to
/// the hello. So a target that has sent exactly those 32 bytes and then nothing for
/// [`CLASSIC_SILENCE`] is taken for classic spiped, and the connection fails at once with a message
/// that says so, rather than at the timeout.
///
/// # Errors
/// [`HandshakeError`], [`HandshakeError::ClassicTarget`] for a classic spiped target.
pub async fn initiate(er: &mut ReadHalf, ew: &mut WriteHalf, psk: &Psk) -> Result<Native, HandshakeError> {
    let (initiator, msg2) = exchange(er, ew, psk).await?;
    let mut confirmation = Vec::new();
    let (sealer, opener) = initiator.read_response(&msg2, &mut confirmation)?.split();
    Ok(Established { sealer, opener, first: confirmation, pending: Vec::new(), key: 0 })
}

/// `-e --pool`: as [`initiate`], asking the `-d` end to park the connection (docs/PROTOCOL.md 4.6), and
/// waits for its answer: the connection, parked at both ends and ready to be put to use.
///
/// # Errors
/// [`HandshakeError`]; [`HandshakeError::ParkRefused`] when the `-d` end refuses to park it (it holds
/// as many as it allows, or is stopping), [`HandshakeError::ParkUnanswered`] when it closes the
/// connection instead of answering (a `-d` end from before parked connections does).
pub async fn initiate_parked(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    psk: &Psk,
) -> Result<Ready, HandshakeError> {
    let (initiator, msg2) = exchange(er, ew, psk).await?;
    let mut confirmation = Vec::new();
    let mut spare = initiator.read_response_parked(&msg2, &mut confirmation)?;
    ew.write_all(&confirmation).await?;
    let mut buf = Vec::with_capacity(CONFIRMATION_READ);
    loop {
        match er.read_buf(&mut buf).await {
            Ok(0) => return Err(HandshakeError::ParkUnanswered),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(HandshakeError::ParkUnanswered);
            }
            Err(e) => return Err(e.into()),
        }
        match spare.accepted(&mut buf)? {
            Accepted::NeedMore(s) => spare = s,
            // Anything after the answer can only be the -d end's end of stream: retired at once.
            Accepted::Ready { ready, consumed } if consumed == buf.len() => return Ok(ready),
            Accepted::Ready { .. } => return Err(HandshakeError::ParkRefused),
            Accepted::Refused => return Err(HandshakeError::ParkRefused),
        }
    }
}

/// The hello and message 2, with the classic target's tell-tale silence seen for what it is.
async fn exchange(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    psk: &Psk,
) -> Result<(Initiator, [u8; MSG2_LEN]), HandshakeError> {
    let (initiator, hello) = Initiator::start(psk, EphemeralKey::generate(&mut rand::rng()));
    ew.write_all(&hello).await?;
    let mut msg2 = [0u8; MSG2_LEN];
    let mut filled = 0;
    while filled < MSG2_LEN {
        let read = er.read(&mut msg2[filled..]);
        let n = if filled == CLASSIC_NONCE_LEN {
            timeout(CLASSIC_SILENCE, read).await.map_err(|_| HandshakeError::ClassicTarget)??
        } else {
            read.await?
        };
        match n {
            0 if filled == CLASSIC_NONCE_LEN => return Err(HandshakeError::ClassicTarget),
            0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            n => filled += n,
        }
    }
    Ok((initiator, msg2))
}

/// `-d`, first half, once [`super::detect`] has read the preamble (`preamble`): reads the rest of the
/// hello and, if it was made with one of `keys` (each tried in order, costing a hash chain, before
/// the one Diffie-Hellman), sends message 2. Returns the state waiting for the key confirmation and
/// the index in `keys` of the key the hello was made with, to hand to [`read_confirmation`]. The
/// initiator is not authenticated yet: a captured hello can be replayed. [`read_confirmation`] is the
/// second half.
///
/// # Errors
/// [`HandshakeError`].
pub async fn answer_hello(
    er: &mut ReadHalf,
    ew: &mut WriteHalf,
    keys: &[Psk],
    preamble: [u8; PREAMBLE_LEN],
) -> Result<(Unconfirmed, usize), HandshakeError> {
    let mut hello = [0u8; HELLO_LEN];
    hello[..PREAMBLE_LEN].copy_from_slice(&preamble);
    er.read_exact(&mut hello[PREAMBLE_LEN..]).await?;
    let (unconfirmed, msg2, key) = Responder::accept(keys, &hello, EphemeralKey::generate(&mut rand::rng()))?;
    ew.write_all(&msg2).await?;
    Ok((unconfirmed, key))
}

/// What the initiator's first record proved.
#[derive(Debug)]
pub enum Proven {
    /// The connection is established: contact the target.
    Established(super::Pair),
    /// The initiator (an `-e` end with `--pool`) asks to park it (docs/PROTOCOL.md, 4.6).
    Park {
        /// The request, to accept or refuse.
        request: ParkRequest,
        /// Bytes read after the park record.
        pending: Vec<u8>,
        /// The key the hello was made with.
        key: usize,
    },
}

/// `-d`, second half: reads the initiator's first record, which proves it holds the key and took
/// part in this handshake. `key` is what [`answer_hello`] returned, passed on as [`Established::key`].
///
/// An unproven peer costs little memory: the first read asks for 256 bytes (`CONFIRMATION_READ`), and
/// the buffer grows, never past the first record's length, only as fast as bytes arrive.
///
/// # Errors
/// [`HandshakeError`]; [`RecordError::Truncated`] when the peer ends the stream before confirming.
pub async fn read_confirmation(
    er: &mut ReadHalf,
    mut unconfirmed: Unconfirmed,
    key: usize,
) -> Result<Proven, HandshakeError> {
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
                let pair = Established { sealer, opener, first, pending: buf, key };
                return Ok(Proven::Established(super::Pair::Native(pair)));
            }
            Confirm::Park { request, consumed } => {
                buf.drain(..consumed);
                return Ok(Proven::Park { request, pending: buf, key });
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
