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
    /// `-d`: the peer closed the connection without sending a byte, as a port check does; no initiator
    /// of either protocol does so.
    #[error("closed by the peer before it sent anything (a port check)")]
    Silent,
    /// `-d`: a parked connection was put to use after a reload removed the key it was parked under.
    #[error("a parked connection was put to use after its key was removed by a reload")]
    KeyRemoved,
    /// `-e --pool`: the `-d` end refused to park a connection: it holds as many as it allows, or is
    /// stopping.
    #[error("the -d end refused to park a connection (it holds as many as it allows, or is stopping)")]
    ParkRefused,
    /// `-e --pool`: the `-d` end closed a connection it was asked to park without answering, as a `-d`
    /// end from before parked connections does.
    #[error("the -d end closed a connection it was asked to park without answering")]
    ParkUnanswered,
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
    let n = er.read(&mut first).await?;
    if n == 0 {
        return Err(HandshakeError::Silent);
    }
    er.read_exact(&mut first[n..]).await?;
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixStream;

    use super::*;
    use crate::proto::classic::ForwardSecrecy;
    use crate::proto::{Open, Psk, Record, Seal};
    use crate::tunnel::stream::{Stream, WriteHalf};

    fn key(name: &str) -> Psk {
        Psk::from_key_file(name.as_bytes())
    }

    /// Both ends of a connected socket pair, each split into its halves.
    fn sockets() -> ((ReadHalf, WriteHalf), (ReadHalf, WriteHalf)) {
        let (a, b) = UnixStream::pair().expect("a socket pair");
        (Stream::Unix(a).into_split(), Stream::Unix(b).into_split())
    }

    /// `-e` under `psk` against `-d` holding `keys`, each driver as the daemon runs it (the `-d` end
    /// detects the protocol first): both ends' pairs, or the first refusal.
    async fn connect(protocol: Protocol, psk: &Psk, keys: &[Psk]) -> Result<(Pair, Pair), HandshakeError> {
        let ((mut ir, mut iw), (mut rr, mut rw)) = sockets();
        let fs = ForwardSecrecy::Offer;
        let initiator = async {
            match protocol {
                Protocol::Native => {
                    let pair = native::initiate(&mut ir, &mut iw, psk).await?;
                    iw.write_all(&pair.first).await?;
                    Ok(Pair::Native(pair))
                }
                Protocol::Classic => classic::initiate(&mut ir, &mut iw, psk, fs).await.map(Pair::Classic),
            }
        };
        let responder = async {
            match detect(&mut rr, Protocols::Both).await? {
                (Protocol::Native, first) => {
                    let (unconfirmed, key) = native::answer_hello(&mut rr, &mut rw, keys, first).await?;
                    match native::read_confirmation(&mut rr, unconfirmed, key).await? {
                        native::Proven::Established(pair) => Ok(pair),
                        native::Proven::Park { .. } => panic!("the initiator here never parks"),
                    }
                }
                (Protocol::Classic, first) => {
                    classic::respond(&mut rr, &mut rw, keys, fs, first).await.map(Pair::Classic)
                }
            }
        };
        // A refusal ends both: the refused initiator would otherwise wait for an answer.
        tokio::try_join!(initiator, responder)
    }

    /// `data` sealed by `tx` opens to the same bytes at `rx`.
    fn carries<S: Seal, O: Open>(tx: &mut S, rx: &mut O, data: &[u8]) {
        let mut frame = vec![0; S::frame_len(data.len())];
        frame[S::BODY_OFFSET..S::BODY_OFFSET + data.len()].copy_from_slice(data);
        tx.seal_frame(&mut frame, data.len()).unwrap();
        let opened = rx.open(&mut frame).unwrap().expect("a whole frame");
        assert_eq!(opened.record, Record::Data(data));
    }

    /// The index each end reports, after checking the pair talks both ways.
    fn keys_and_talk(client: Pair, server: Pair) -> (usize, usize) {
        match (client, server) {
            (Pair::Native(mut c), Pair::Native(mut s)) => {
                assert!(s.first.is_empty() && s.pending.is_empty(), "spiped-rs confirms with no data");
                carries(&mut c.sealer, &mut s.opener, b"PING\r\n");
                carries(&mut s.sealer, &mut c.opener, b"+PONG\r\n");
                (c.key, s.key)
            }
            (Pair::Classic(mut c), Pair::Classic(mut s)) => {
                carries(&mut c.sealer, &mut s.opener, b"PING\r\n");
                carries(&mut s.sealer, &mut c.opener, b"+PONG\r\n");
                (c.key, s.key)
            }
            _ => panic!("both ends speak the protocol the initiator chose"),
        }
    }

    #[tokio::test]
    async fn a_responder_with_several_keys_reports_the_key_each_initiator_used() {
        let keys = [key("A"), key("B"), key("C")];
        for protocol in [Protocol::Native, Protocol::Classic] {
            for (expected, psk) in keys.iter().enumerate() {
                let (client, server) = connect(protocol, psk, &keys).await.unwrap();
                assert_eq!(keys_and_talk(client, server), (0, expected), "{protocol:?}");
            }
        }
    }

    #[tokio::test]
    async fn an_initiator_with_another_key_is_refused() {
        let keys = [key("A"), key("B"), key("C")];
        let native = connect(Protocol::Native, &key("D"), &keys).await.map(drop).unwrap_err();
        assert!(matches!(native, HandshakeError::Native(ProtoError::HandshakeAuth)), "{native:?}");
        let classic = connect(Protocol::Classic, &key("D"), &keys).await.map(drop).unwrap_err();
        let bad_mac = crate::proto::classic::HandshakeError::BadMac;
        assert!(matches!(classic, HandshakeError::Classic(e) if e == bad_mac), "{classic:?}");
    }
}
