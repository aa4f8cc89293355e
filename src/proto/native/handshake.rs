//! The handshake, `Noise_NNpsk0_25519_ChaChaPoly_SHA256` behind an 8-byte preamble, with key
//! confirmation (docs/PROTOCOL.md, section 4). Each phase is a type consumed by the next.

use core::fmt;

use rand::CryptoRng;
use zeroize::Zeroizing;

use super::park::{ParkRequest, Spare};
use super::record::{First, Opener, Sealer, Transport};
use super::symmetric::SymmetricState;
use super::{DH_LEN, ProtoError, TAG_LEN};
use crate::proto::crypto::x25519::{self as dh, Dh};
use crate::proto::{Psk, Record};

/// Marks the native protocol: the ASCII bytes `spipedN`.
pub const MAGIC: [u8; 7] = *b"spipedN";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the preamble: `MAGIC || VERSION`.
pub const PREAMBLE_LEN: usize = MAGIC.len() + 1;
/// The first bytes an initiator sends.
pub const PREAMBLE: [u8; PREAMBLE_LEN] = *b"spipedN\x01";
/// The Noise protocol name, hashed into the initial handshake state.
pub const PROTOCOL_NAME: &[u8] = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256";
/// The Noise prologue: names this protocol and its version, so versions can never cross-accept.
pub const PROLOGUE: &[u8] = b"spiped-rs native protocol v1";
/// Message 1: the initiator's ephemeral public key and the tag of an empty payload.
pub const MSG1_LEN: usize = DH_LEN + TAG_LEN;
/// Message 2: the responder's ephemeral public key and the tag of an empty payload.
pub const MSG2_LEN: usize = DH_LEN + TAG_LEN;
/// What the initiator sends before anything else: preamble and message 1.
pub const HELLO_LEN: usize = PREAMBLE_LEN + MSG1_LEN;

/// What a connection's first [`PREAMBLE_LEN`] bytes say about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// spiped-rs native protocol, the version this module speaks.
    Native,
    /// spiped-rs native protocol, another version.
    OtherVersion(u8),
    /// Not spiped-rs: perhaps a classic spiped client, whose first bytes are a random nonce.
    Foreign,
}

impl Preamble {
    /// Classifies the first bytes of a connection, so the daemon can dispatch on them.
    pub fn classify(first: &[u8; PREAMBLE_LEN]) -> Self {
        match first.split_last() {
            Some((&VERSION, magic)) if magic == MAGIC => Preamble::Native,
            Some((&version, magic)) if magic == MAGIC => Preamble::OtherVersion(version),
            _ => Preamble::Foreign,
        }
    }

    /// `Ok` for the version this module speaks, otherwise the error that explains the refusal.
    ///
    /// # Errors
    /// [`ProtoError::UnsupportedVersion`] or [`ProtoError::NotNative`].
    pub fn check(first: &[u8; PREAMBLE_LEN]) -> Result<(), ProtoError> {
        match Self::classify(first) {
            Preamble::Native => Ok(()),
            Preamble::OtherVersion(v) => Err(ProtoError::UnsupportedVersion(v)),
            Preamble::Foreign => Err(ProtoError::NotNative),
        }
    }
}

/// A fresh X25519 key pair for one handshake. Zeroized on drop, never printed.
pub struct EphemeralKey {
    secret: dh::Backend,
    public: [u8; DH_LEN],
}

impl EphemeralKey {
    /// Generates a key from a cryptographic random source.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; DH_LEN]);
        rng.fill_bytes(&mut *secret);
        Self::from_secret(&secret)
    }

    /// A key from fixed bytes: for known-answer tests only, never for a real connection.
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self::from_secret(&Zeroizing::new(secret))
    }

    fn from_secret(secret: &[u8; DH_LEN]) -> Self {
        let secret = dh::Backend::from_secret(secret);
        let public = secret.public();
        EphemeralKey { secret, public }
    }

    /// The token `e`: send the public key and mix it into the state (twice, since a psk is in use).
    pub(crate) fn write_e(&self, state: &mut SymmetricState) -> [u8; DH_LEN] {
        mix_e(state, &self.public);
        self.public
    }

    /// The token `ee`: mix in the Diffie-Hellman result, refusing an all-zero one.
    pub(crate) fn mix_dh(
        self,
        state: &mut SymmetricState,
        their_public: &[u8; DH_LEN],
    ) -> Result<(), ProtoError> {
        let shared = self.secret.agree(their_public).ok_or(ProtoError::NonContributory)?;
        state.mix_key(&*shared);
        Ok(())
    }
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKey").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Reading the token `e` from the peer: `MixHash(re)`, and `MixKey(re)` because a psk is in use.
pub(crate) fn mix_e(state: &mut SymmetricState, public: &[u8; DH_LEN]) {
    state.mix_hash(public);
    state.mix_key(public);
}

/// Splits a received handshake message into its public key and tag.
fn split_message(msg: &[u8; DH_LEN + TAG_LEN]) -> (&[u8; DH_LEN], &[u8; TAG_LEN]) {
    let (e, tag) = msg.split_first_chunk::<DH_LEN>().expect("the message is DH_LEN + TAG_LEN bytes");
    (e, tag.try_into().expect("the rest is TAG_LEN bytes"))
}

/// The `-e` end after sending its hello, waiting for message 2.
pub struct Initiator {
    state: SymmetricState,
    e: EphemeralKey,
}

impl Initiator {
    /// Starts a handshake: returns the state waiting for message 2 and the [`HELLO_LEN`] bytes to send
    /// (preamble and message 1).
    pub fn start(psk: &Psk, e: EphemeralKey) -> (Self, [u8; HELLO_LEN]) {
        let mut state = SymmetricState::new(psk);
        let public = e.write_e(&mut state);
        let tag = state.encrypt_and_hash_empty().expect("the first message uses counter 0");
        let mut hello = [0u8; HELLO_LEN];
        let (preamble, msg1) = hello.split_at_mut(PREAMBLE_LEN);
        preamble.copy_from_slice(&PREAMBLE);
        msg1[..DH_LEN].copy_from_slice(&public);
        msg1[DH_LEN..].copy_from_slice(&tag);
        (Initiator { state, e }, hello)
    }

    /// Reads message 2, finishes the handshake and appends the key-confirmation record (an empty data
    /// record) to `out`, which the caller must send before anything else.
    ///
    /// # Errors
    /// [`ProtoError::NonContributory`] for a low-order key, [`ProtoError::HandshakeAuth`] when the
    /// responder does not hold the key or the message was altered.
    pub fn read_response(self, msg2: &[u8; MSG2_LEN], out: &mut Vec<u8>) -> Result<Transport, ProtoError> {
        let mut transport = self.finish(msg2)?;
        transport.sealer_mut().seal_data(&[], out)?;
        Ok(transport)
    }

    /// As [`Initiator::read_response`], for a connection to be parked (docs/PROTOCOL.md, 4.6): the key
    /// confirmation appended to `out` is a park record, and the connection waits for the responder's.
    ///
    /// # Errors
    /// As [`Initiator::read_response`].
    pub fn read_response_parked(self, msg2: &[u8; MSG2_LEN], out: &mut Vec<u8>) -> Result<Spare, ProtoError> {
        let mut transport = self.finish(msg2)?;
        transport.sealer_mut().seal_park(out)?;
        Ok(Spare::new(transport))
    }

    /// Message 2's tokens: both directions' keys once its tag verifies.
    fn finish(mut self, msg2: &[u8; MSG2_LEN]) -> Result<Transport, ProtoError> {
        let (re, tag) = split_message(msg2);
        mix_e(&mut self.state, re);
        self.e.mix_dh(&mut self.state, re)?;
        self.state.decrypt_and_hash_empty(tag)?;
        let (to_responder, from_responder) = self.state.split();
        Ok(Transport::new(Sealer::new(to_responder), Opener::new(from_responder)))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator").finish_non_exhaustive()
    }
}

/// The `-d` end's entry point.
#[derive(Debug)]
pub struct Responder;

impl Responder {
    /// Reads the initiator's hello (preamble and message 1) made with any of `keys`, and returns the
    /// state waiting for key confirmation, the [`MSG2_LEN`] bytes of message 2 to send, and the index
    /// in `keys` of the key the hello was made with.
    ///
    /// Message 1's tag depends only on the key, the prologue and the initiator's ephemeral key, so it
    /// is checked under each key in turn before any Diffie-Hellman: `N` keys cost `N` hash chains
    /// and one exchange. The first key under which it verifies wins. How long this takes tells which
    /// key that was, and nothing more: the index is not secret (its fingerprint is logged).
    ///
    /// # Errors
    /// [`ProtoError::NotNative`] or [`ProtoError::UnsupportedVersion`] for a wrong preamble,
    /// [`ProtoError::HandshakeAuth`] when the initiator holds none of the keys (or `keys` is empty) or
    /// the bytes were altered, [`ProtoError::NonContributory`] for a low-order key.
    pub fn accept(
        keys: &[Psk],
        hello: &[u8; HELLO_LEN],
        e: EphemeralKey,
    ) -> Result<(Unconfirmed, [u8; MSG2_LEN], usize), ProtoError> {
        let (preamble, msg1) =
            hello.split_first_chunk::<PREAMBLE_LEN>().expect("hello starts with a preamble");
        Preamble::check(preamble)?;
        let (re, tag) = split_message(msg1.try_into().expect("the rest of hello is message 1"));
        let (key, mut state) = keys
            .iter()
            .enumerate()
            .find_map(|(key, psk)| read_msg1(psk, re, tag).map(|state| (key, state)))
            .ok_or(ProtoError::HandshakeAuth)?;

        let public = e.write_e(&mut state);
        e.mix_dh(&mut state, re)?;
        let tag = state.encrypt_and_hash_empty()?;
        let mut msg2 = [0u8; MSG2_LEN];
        msg2[..DH_LEN].copy_from_slice(&public);
        msg2[DH_LEN..].copy_from_slice(&tag);

        let (from_initiator, to_initiator) = state.split();
        let transport = Transport::new(Sealer::new(to_initiator), Opener::new(from_initiator));
        Ok((Unconfirmed { transport }, msg2, key))
    }
}

/// Message 1's tokens `psk, e` and its tag, under `psk`: the state after message 1 if the tag verifies
/// under this key, `None` if not.
fn read_msg1(psk: &Psk, re: &[u8; DH_LEN], tag: &[u8; TAG_LEN]) -> Option<SymmetricState> {
    let mut state = SymmetricState::new(psk);
    mix_e(&mut state, re);
    state.decrypt_and_hash_empty(tag).ok().map(|()| state)
}

/// The `-d` end after message 2: the initiator is not authenticated until its first record opens.
/// Nothing can be sealed in this phase.
pub struct Unconfirmed {
    transport: Transport,
}

/// The outcome of [`Unconfirmed::confirm`].
#[derive(Debug)]
pub enum Confirm<'a> {
    /// The buffer does not yet hold the whole first record: read more and call again.
    NeedMore(Unconfirmed),
    /// The initiator is authenticated and asks to park the connection (docs/PROTOCOL.md, 4.6): the
    /// target must not be contacted until it is put to use.
    Park {
        /// The request, to accept or refuse.
        request: ParkRequest,
        /// How many bytes of the buffer the park record took.
        consumed: usize,
    },
    /// The initiator is authenticated.
    Confirmed {
        /// Both directions, ready for records.
        transport: Transport,
        /// The first record's data, decrypted in place (often empty).
        data: &'a [u8],
        /// How many bytes of the buffer the first record took.
        consumed: usize,
    },
}

impl Unconfirmed {
    /// Opens the initiator's first record from the start of `buf`. Only when it decrypts is the peer
    /// known to hold the key *and* to have taken part in this handshake.
    ///
    /// # Errors
    /// Any record error, or [`ProtoError::ConfirmationNotData`] if the first record is an end-of-stream.
    pub fn confirm(mut self, buf: &mut [u8]) -> Result<Confirm<'_>, ProtoError> {
        match self.transport.opener_mut().open_as(buf, true)? {
            None => Ok(Confirm::NeedMore(self)),
            Some((First::Record(Record::Data(data)), consumed)) => {
                Ok(Confirm::Confirmed { transport: self.transport, data, consumed })
            }
            Some((First::Park, consumed)) => {
                Ok(Confirm::Park { request: ParkRequest::new(self.transport), consumed })
            }
            Some((First::Record(Record::End), _)) => Err(ProtoError::ConfirmationNotData),
        }
    }
}

impl fmt::Debug for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unconfirmed").finish_non_exhaustive()
    }
}

/// Exposes the pieces the vector generator needs to build messages no honest peer would send.
#[cfg(test)]
pub(crate) mod internals {
    pub(crate) use super::mix_e;
    pub(crate) use crate::proto::native::symmetric::SymmetricState;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Open;

    fn key(name: &str) -> Psk {
        Psk::from_key_file(name.as_bytes())
    }

    fn ephemeral(seed: u8) -> EphemeralKey {
        EphemeralKey::from_bytes([seed; DH_LEN])
    }

    /// An initiator under `psk` against a responder holding `keys`: the key index the responder
    /// reports and both ends' transports, or the responder's refusal.
    fn handshake(psk: &Psk, keys: &[Psk]) -> Result<(usize, Transport, Transport), ProtoError> {
        let (initiator, hello) = Initiator::start(psk, ephemeral(1));
        let (unconfirmed, msg2, key) = Responder::accept(keys, &hello, ephemeral(2))?;
        let mut first = Vec::new();
        let client = initiator.read_response(&msg2, &mut first).expect("the responder used our key");
        let confirmation_len = first.len();
        let Confirm::Confirmed { transport: server, data, consumed } = unconfirmed.confirm(&mut first)?
        else {
            panic!("the whole confirmation record is in the buffer");
        };
        assert_eq!((data, consumed), (&[][..], confirmation_len));
        Ok((key, client, server))
    }

    /// `data` sealed by `tx` opens to the same bytes at `rx`.
    fn carries(tx: &mut Sealer, rx: &mut Opener, data: &[u8]) {
        let mut wire = Vec::new();
        tx.seal_data(data, &mut wire).unwrap();
        let sealed_len = wire.len();
        let opened = rx.open(&mut wire).unwrap().expect("a whole record");
        assert_eq!((opened.record, opened.consumed), (Record::Data(data), sealed_len));
    }

    #[test]
    fn a_responder_with_several_keys_accepts_each_and_names_it() {
        let keys = [key("A"), key("B"), key("C")];
        for (expected, psk) in keys.iter().enumerate() {
            let (index, client, server) = handshake(psk, &keys).unwrap();
            assert_eq!(index, expected);
            let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = (client.split(), server.split());
            carries(&mut c_tx, &mut s_rx, b"PING\r\n");
            carries(&mut s_tx, &mut c_rx, b"+PONG\r\n");
        }
    }

    #[test]
    fn a_key_outside_the_set_is_refused() {
        let keys = [key("A"), key("B"), key("C")];
        assert_eq!(handshake(&key("D"), &keys).unwrap_err(), ProtoError::HandshakeAuth);
    }

    #[test]
    fn an_empty_key_set_refuses_everyone() {
        assert_eq!(handshake(&key("A"), &[]).unwrap_err(), ProtoError::HandshakeAuth);
    }

    /// The same key twice (a reload that lists a file twice): the first wins.
    #[test]
    fn the_first_matching_key_wins() {
        let keys = [key("B"), key("A"), key("A")];
        assert_eq!(handshake(&key("A"), &keys).unwrap().0, 1);
    }

    /// Message 2 is made under the key that verified: an initiator under that key reads it, and the
    /// responder's answer is the one a single-key responder gives.
    #[test]
    fn message_2_is_the_one_a_single_key_responder_sends() {
        let (_, hello) = Initiator::start(&key("B"), ephemeral(1));
        let (_, alone, _) = Responder::accept(&[key("B")], &hello, ephemeral(2)).unwrap();
        let (_, among, index) =
            Responder::accept(&[key("A"), key("B"), key("C")], &hello, ephemeral(2)).unwrap();
        assert_eq!((among, index), (alone, 1));
    }

    #[test]
    fn an_altered_hello_is_refused_under_every_key() {
        let keys = [key("A"), key("B"), key("C")];
        let (_, hello) = Initiator::start(&key("B"), ephemeral(1));
        for bit in PREAMBLE_LEN * 8..HELLO_LEN * 8 {
            let mut flipped = hello;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let refused = Responder::accept(&keys, &flipped, ephemeral(2)).map(|(_, _, key)| key);
            assert_eq!(refused, Err(ProtoError::HandshakeAuth), "bit {bit}");
        }
    }
}
