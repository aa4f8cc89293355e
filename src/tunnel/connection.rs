//! One connection, from accept to close: the handshake for the end we are, the target connection
//! (made only after the peer is authenticated on a `-d` end), then the pump.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::Tunnel;
use super::addr::Addr;
use super::pump::{PumpError, open_stream, seal_stream};
use super::stream::{ReadHalf, Stream, WriteHalf};
use crate::proto::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MSG2_LEN, Opener, PREAMBLE_LEN, Preamble, ProtoError,
    RECORD_MAX_LEN, Responder, Sealer,
};

/// Which end of the pipe this daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-e`: plaintext in on the source, encrypted out to the target; the handshake's initiator.
    Encrypt,
    /// `-d`: encrypted in on the source, plaintext out to the target; the handshake's responder.
    Decrypt,
}

/// Why a connection ended early. Logged; never sent to the peer.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The peer failed the handshake (wrong key, garbage, a replay, another protocol).
    #[error("handshake failed: {0}")]
    Handshake(ProtoError),
    /// The peer closed or reset the connection during the handshake.
    #[error("handshake failed: peer closed the connection early ({0})")]
    HandshakeIo(io::Error),
    /// The handshake did not finish within -o.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// No target address accepted a connection.
    #[error("target {target} unreachable: {source}")]
    Target {
        /// The address tried last.
        target: String,
        /// Its error.
        source: io::Error,
    },
    /// Connecting to the target took longer than -o.
    #[error("target connection timed out")]
    TargetTimeout,
    /// The established connection failed: a socket error, tampering or truncation.
    #[error("connection aborted: {0}")]
    Pump(#[from] PumpError),
}

/// What a finished connection carried, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Plaintext bytes this end sealed and sent to its peer.
    pub sealed: u64,
    /// Plaintext bytes this end opened from its peer's records.
    pub opened: u64,
}

/// Handles one accepted connection to the end.
///
/// # Errors
/// [`ConnError`]; the sockets have been closed (aborted, where the stream failed) when it returns.
pub async fn handle(accepted: Stream, tunnel: Arc<Tunnel>) -> Result<Summary, ConnError> {
    match tunnel.mode {
        Mode::Encrypt => encrypt_end(accepted, &tunnel).await,
        Mode::Decrypt => decrypt_end(accepted, &tunnel).await,
    }
}

/// `-e`: connect to the target, run the handshake as initiator, then pump.
async fn encrypt_end(plain: Stream, tunnel: &Tunnel) -> Result<Summary, ConnError> {
    let (mut er, mut ew) = connect_target(tunnel).await?.into_split();
    let e = EphemeralKey::generate(&mut rand::rng());
    let handshake = async {
        let (initiator, hello) = Initiator::start(&tunnel.psk, e);
        ew.write_all(&hello).await?;
        let mut msg2 = [0u8; MSG2_LEN];
        er.read_exact(&mut msg2).await?;
        let mut confirmation = Vec::new();
        let transport = initiator.read_response(&msg2, &mut confirmation).map_err(io_proto)?;
        Ok::<_, io::Error>((transport, confirmation))
    };
    let (transport, confirmation) = match timeout(tunnel.timeout, handshake).await {
        Err(_) => return Err(ConnError::HandshakeTimeout),
        Ok(Err(e)) => return Err(handshake_error(e)),
        Ok(Ok(done)) => done,
    };
    let (tx, rx) = transport.split();
    let (pr, pw) = plain.into_split();
    // The key confirmation leaves with the client's first bytes when they are already here.
    pump((tx, confirmation), (rx, Vec::new()), (pr, pw), (er, ew)).await
}

/// `-d`: run the handshake as responder; only once the initiator is confirmed, connect to the target.
async fn decrypt_end(encrypted: Stream, tunnel: &Tunnel) -> Result<Summary, ConnError> {
    let (mut er, mut ew) = encrypted.into_split();
    let e = EphemeralKey::generate(&mut rand::rng());
    let handshake = async {
        let hello = read_hello(&mut er).await?;
        let (mut unconfirmed, msg2) = Responder::accept(&tunnel.psk, &hello, e).map_err(io_proto)?;
        ew.write_all(&msg2).await?;
        let mut buf = Vec::with_capacity(RECORD_MAX_LEN);
        loop {
            if er.read_buf(&mut buf).await? == 0 {
                return Err(io_proto(ProtoError::Truncated));
            }
            match unconfirmed.confirm(&mut buf).map_err(io_proto)? {
                Confirm::NeedMore(u) => unconfirmed = u,
                Confirm::Confirmed { transport, data, consumed } => {
                    let first = data.to_vec();
                    buf.drain(..consumed);
                    return Ok((transport, first, buf));
                }
            }
        }
    };
    let (transport, first, pending) = match timeout(tunnel.timeout, handshake).await {
        Err(_) => return Err(ConnError::HandshakeTimeout),
        Ok(Err(e)) => return Err(handshake_error(e)),
        Ok(Ok(done)) => done,
    };
    // The peer is authenticated: only now does the protected service see a connection.
    let (pr, mut pw) = connect_target(tunnel).await?.into_split();
    if let Err(e) = pw.write_all(&first).await {
        pw.abort();
        ew.abort();
        return Err(PumpError::Io(e).into());
    }
    let (tx, rx) = transport.split();
    pump((tx, Vec::new()), (rx, pending), (pr, pw), (er, ew)).await
}

/// Reads the initiator's hello, usually in one read. The preamble is checked as soon as it is in, so a
/// classic spiped or another protocol is refused at once rather than at the handshake timeout.
async fn read_hello(er: &mut ReadHalf) -> io::Result<[u8; HELLO_LEN]> {
    let mut hello = [0u8; HELLO_LEN];
    let mut filled = 0;
    while filled < HELLO_LEN {
        let n = er.read(&mut hello[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if filled < PREAMBLE_LEN && filled + n >= PREAMBLE_LEN {
            Preamble::check(hello[..PREAMBLE_LEN].try_into().expect("PREAMBLE_LEN bytes"))
                .map_err(io_proto)?;
        }
        filled += n;
    }
    Ok(hello)
}

/// Connects to the first target address that answers, within -o.
async fn connect_target(tunnel: &Tunnel) -> Result<Stream, ConnError> {
    let addrs = tunnel.target.current();
    let attempt = async {
        let mut last = None;
        for addr in addrs.iter() {
            match Stream::connect(addr, tunnel.bind.as_ref(), tunnel.tcp).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, source) = last.map_or_else(
            || (String::from("(none)"), io::Error::from(io::ErrorKind::AddrNotAvailable)),
            |(a, e): (&Addr, io::Error)| (a.to_string(), e),
        );
        Err(ConnError::Target { target: addr, source })
    };
    timeout(tunnel.timeout, attempt).await.unwrap_or(Err(ConnError::TargetTimeout))
}

/// Runs both directions until both are done; on any failure aborts both sockets, so a truncated or
/// tampered stream never reaches either side as a clean end. `to_send` is sealed records to send
/// first; `received` is records already read from the peer, to open first.
async fn pump(
    (tx, to_send): (Sealer, Vec<u8>),
    (rx, received): (Opener, Vec<u8>),
    (mut pr, mut pw): (ReadHalf, WriteHalf),
    (mut er, mut ew): (ReadHalf, WriteHalf),
) -> Result<Summary, ConnError> {
    let both = tokio::try_join!(
        seal_stream(tx, to_send, &mut pr, &mut ew),
        open_stream(rx, received, &mut er, &mut pw)
    );
    match both {
        Ok((sealed, opened)) => Ok(Summary { sealed, opened }),
        Err(e) => {
            pw.abort();
            ew.abort();
            Err(e.into())
        }
    }
}

/// Carries a protocol error through the handshake's `io::Result`.
fn io_proto(e: ProtoError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn handshake_error(e: io::Error) -> ConnError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<ProtoError>()) {
        Some(proto) => ConnError::Handshake(*proto),
        None => ConnError::HandshakeIo(e),
    }
}
