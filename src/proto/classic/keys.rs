//! The handshake's secrets and how each key is derived from them (the table in the module docs).

use core::fmt;

use rand::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{ForwardSecrecy, HandshakeError, MAC_LEN, NONCE_LEN, PRIVATE_LEN, Y_AND_MAC_LEN, Y_LEN};
use crate::proto::Psk;
use crate::proto::crypto::aes_ctr;
use crate::proto::crypto::group14::{Element, Exponent};
use crate::proto::crypto::hmac::{self, HmacSha256, pbkdf2_sha256_once};

/// Length of each Diffie-Hellman MAC key.
const DHMAC_LEN: usize = 32;
/// Length of one direction's keys: an AES-256 key, then an HMAC-SHA256 key.
const DIRECTION_KEYS_LEN: usize = aes_ctr::KEY_LEN + MAC_LEN;

/// y = 1, what an end with `-f` sends, and the shared secret whenever either end did.
pub(super) const ONE: [u8; Y_LEN] = {
    let mut one = [0; Y_LEN];
    one[Y_LEN - 1] = 1;
    one
};

/// The random part x of a Diffie-Hellman private exponent (which is 2^258 + x). Zeroized on drop,
/// never printed.
pub struct DhPrivate(Zeroizing<[u8; PRIVATE_LEN]>);

impl DhPrivate {
    /// Draws x from a cryptographic random source.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut x = Zeroizing::new([0; PRIVATE_LEN]);
        rng.fill_bytes(&mut *x);
        DhPrivate(x)
    }

    /// x from fixed bytes: for known-answer tests only, never for a real connection.
    pub fn from_bytes(x: [u8; PRIVATE_LEN]) -> Self {
        DhPrivate(Zeroizing::new(x))
    }

    /// The exponent 2^258 + x.
    pub(super) fn exponent(&self) -> Exponent {
        Exponent::new(&self.0)
    }
}

impl fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DhPrivate(<redacted>)")
    }
}

/// The two nonces in the derivations' order: the initiator's, then the responder's.
pub(super) fn nonces_cs(initiator: &[u8; NONCE_LEN], responder: &[u8; NONCE_LEN]) -> [u8; 2 * NONCE_LEN] {
    let mut cs = [0; 2 * NONCE_LEN];
    cs[..NONCE_LEN].copy_from_slice(initiator);
    cs[NONCE_LEN..].copy_from_slice(responder);
    cs
}

/// The keys that MAC each end's y: the initiator's, then the responder's.
pub(super) struct DhMacKeys {
    /// MACs the initiator's y.
    pub(super) initiator: Zeroizing<[u8; DHMAC_LEN]>,
    /// MACs the responder's y.
    pub(super) responder: Zeroizing<[u8; DHMAC_LEN]>,
}

impl DhMacKeys {
    /// dk_1 = PBKDF2-SHA256(K, nonce_C || nonce_S, 1, 64), cut in two.
    pub(super) fn derive(psk: &Psk, nonces_cs: &[u8; 2 * NONCE_LEN]) -> Self {
        let mut dk = Zeroizing::new([0u8; 2 * DHMAC_LEN]);
        pbkdf2_sha256_once(psk.as_bytes(), nonces_cs, &mut dk[..]);
        let (initiator, responder) = dk.split_at(DHMAC_LEN);
        DhMacKeys {
            initiator: Zeroizing::new(initiator.try_into().expect("the first half is DHMAC_LEN bytes")),
            responder: Zeroizing::new(responder.try_into().expect("the second half is DHMAC_LEN bytes")),
        }
    }
}

/// This end's y and its MAC, the second message: y = 1 under `-f`, else 2^(2^258 + x) mod p.
pub(super) fn signed_y(
    fs: ForwardSecrecy,
    private: &DhPrivate,
    dhmac: &[u8; DHMAC_LEN],
) -> [u8; Y_AND_MAC_LEN] {
    let y = match fs {
        ForwardSecrecy::Skip => ONE,
        ForwardSecrecy::Offer | ForwardSecrecy::Require => private.exponent().public(),
    };
    let mut message = [0; Y_AND_MAC_LEN];
    message[..Y_LEN].copy_from_slice(&y);
    message[Y_LEN..].copy_from_slice(&hmac::Backend::new(dhmac).mac(&[&y]));
    message
}

/// Checks the peer's y and MAC as spiped 1.6 does, in its order (the MAC first, in constant time,
/// then y below p, then y = 1 under `-g`), and also refuses y = 0 and y = p - 1. Returns y and
/// whether it is 1.
///
/// # Errors
/// Every [`HandshakeError`].
pub(super) fn verify_y<'a>(
    message: &'a [u8; Y_AND_MAC_LEN],
    dhmac: &[u8; DHMAC_LEN],
    fs: ForwardSecrecy,
) -> Result<(&'a [u8; Y_LEN], Element), HandshakeError> {
    if !mac_verifies(message, dhmac) {
        return Err(HandshakeError::BadMac);
    }
    check_y(message, fs)
}

/// Whether the MAC of the peer's y verifies under `dhmac`, compared in constant time.
pub(super) fn mac_verifies(message: &[u8; Y_AND_MAC_LEN], dhmac: &[u8; DHMAC_LEN]) -> bool {
    let (y, mac) = message.split_first_chunk::<Y_LEN>().expect("the message is y and a MAC");
    let expected = hmac::Backend::new(dhmac).mac(&[y]);
    expected.ct_eq(mac).into()
}

/// The checks on the peer's y once its MAC has verified ([`verify_y`] after [`mac_verifies`]).
///
/// # Errors
/// Every [`HandshakeError`] but [`HandshakeError::BadMac`].
pub(super) fn check_y(
    message: &[u8; Y_AND_MAC_LEN],
    fs: ForwardSecrecy,
) -> Result<(&[u8; Y_LEN], Element), HandshakeError> {
    let (y, _) = message.split_first_chunk::<Y_LEN>().expect("the message is y and a MAC");
    let element = Element::classify(y);
    match element {
        Element::OutOfRange => Err(HandshakeError::YOutOfRange),
        Element::Zero => Err(HandshakeError::ZeroY),
        Element::MinusOne => Err(HandshakeError::MinusOneY),
        Element::One if fs == ForwardSecrecy::Require => Err(HandshakeError::NoForwardSecrecy),
        Element::One | Element::Valid => Ok((y, element)),
    }
}

/// y_SC: 1 when either end sent y = 1 (as spiped 1.6 computes it), else the peer's y to our
/// exponent. `their_y` has passed [`verify_y`].
pub(super) fn shared_secret(
    fs: ForwardSecrecy,
    private: &DhPrivate,
    their_y: &[u8; Y_LEN],
    their_kind: Element,
) -> Zeroizing<[u8; Y_LEN]> {
    if fs == ForwardSecrecy::Skip || their_kind == Element::One {
        return Zeroizing::new(ONE);
    }
    private.exponent().agree(their_y)
}

/// One direction's keys, as dk_2 holds them.
pub(super) struct DirectionKeys(Zeroizing<[u8; DIRECTION_KEYS_LEN]>);

impl DirectionKeys {
    /// The AES-256 key.
    pub(super) fn aes(&self) -> &[u8; aes_ctr::KEY_LEN] {
        self.0.first_chunk().expect("the AES key comes first")
    }

    /// The HMAC-SHA256 key.
    pub(super) fn mac(&self) -> &[u8; MAC_LEN] {
        self.0.last_chunk().expect("the HMAC key comes last")
    }
}

/// dk_2 = PBKDF2-SHA256(K, nonce_C || nonce_S || y_SC, 1, 128): the initiator-to-responder keys,
/// then the responder-to-initiator keys.
pub(super) fn session_keys(
    psk: &Psk,
    nonces_cs: &[u8; 2 * NONCE_LEN],
    shared: &[u8; Y_LEN],
) -> (DirectionKeys, DirectionKeys) {
    let mut salt = Zeroizing::new([0u8; 2 * NONCE_LEN + Y_LEN]);
    salt[..2 * NONCE_LEN].copy_from_slice(nonces_cs);
    salt[2 * NONCE_LEN..].copy_from_slice(shared);
    let mut dk = Zeroizing::new([0u8; 2 * DIRECTION_KEYS_LEN]);
    pbkdf2_sha256_once(psk.as_bytes(), &salt[..], &mut dk[..]);
    let (to_responder, to_initiator) = dk.split_at(DIRECTION_KEYS_LEN);
    let keys = |half: &[u8]| DirectionKeys(Zeroizing::new(half.try_into().expect("half of dk_2")));
    (keys(to_responder), keys(to_initiator))
}
