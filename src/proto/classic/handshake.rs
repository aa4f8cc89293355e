//! The classic handshake's phases, one type each, consumed into the next (the message order is in
//! the module docs). The initiator sends its y as soon as it has the responder's nonce; the responder
//! makes its y only once the initiator's has verified, so an end without the key costs it a MAC and
//! no exponentiation.

use core::fmt;

use super::keys::{self, DhMacKeys, DhPrivate};
use super::packet::Transport;
use super::{ForwardSecrecy, HandshakeError, NONCE_LEN, Y_AND_MAC_LEN};
use crate::proto::Psk;

/// The `-e` end, its nonce sent, waiting for the responder's.
pub struct Initiator {
    /// K, for both derivations.
    psk: Psk,
    /// `-f`, `-g` or neither.
    fs: ForwardSecrecy,
    /// Our nonce, nonce_C: half of both derivations' salt.
    nonce: [u8; NONCE_LEN],
}

impl Initiator {
    /// Starts a handshake with a fresh random `nonce`: returns the state waiting for the
    /// responder's nonce, and the [`NONCE_LEN`] bytes to send at once.
    pub fn start(psk: &Psk, fs: ForwardSecrecy, nonce: [u8; NONCE_LEN]) -> (Self, [u8; NONCE_LEN]) {
        (Initiator { psk: psk.clone(), fs, nonce }, nonce)
    }

    /// Takes the responder's nonce: returns the state waiting for its y, and our y and MAC to send
    /// at once. `private` is this connection's fresh Diffie-Hellman secret (unused under
    /// [`ForwardSecrecy::Skip`]). Costs one exponentiation.
    pub fn read_nonce(
        self,
        responder_nonce: &[u8; NONCE_LEN],
        private: DhPrivate,
    ) -> (InitiatorAwaitingY, [u8; Y_AND_MAC_LEN]) {
        let nonces_cs = keys::nonces_cs(&self.nonce, responder_nonce);
        let dhmac = DhMacKeys::derive(&self.psk, &nonces_cs);
        let signed_y = keys::signed_y(self.fs, &private, &dhmac.initiator);
        let next = InitiatorAwaitingY { psk: self.psk, fs: self.fs, nonces_cs, dhmac, private };
        (next, signed_y)
    }
}

/// The `-e` end, its y sent, waiting for the responder's.
pub struct InitiatorAwaitingY {
    /// K, for the session keys.
    psk: Psk,
    /// `-g` refuses a responder's y = 1; `-f` means our y was 1.
    fs: ForwardSecrecy,
    /// nonce_C || nonce_S, the session keys' salt.
    nonces_cs: [u8; 2 * NONCE_LEN],
    /// The responder's y must carry its MAC.
    dhmac: DhMacKeys,
    /// Our exponent's x, for the shared secret.
    private: DhPrivate,
}

impl InitiatorAwaitingY {
    /// Takes the responder's y and MAC: checks them and derives the session. Costs one
    /// exponentiation (none if either end sent y = 1).
    ///
    /// # Errors
    /// [`HandshakeError::BadMac`] under another key, [`HandshakeError::NoForwardSecrecy`] for y = 1
    /// under [`ForwardSecrecy::Require`], and the invalid-y errors.
    pub fn read_y(self, responder_y: &[u8; Y_AND_MAC_LEN]) -> Result<Transport, HandshakeError> {
        let (y, kind) = keys::verify_y(responder_y, &self.dhmac.responder, self.fs)?;
        let shared = keys::shared_secret(self.fs, &self.private, y, kind);
        let (to_responder, to_initiator) = keys::session_keys(&self.psk, &self.nonces_cs, &shared);
        Ok(Transport::new(&to_responder, &to_initiator))
    }
}

/// The `-d` end, its nonce sent (or about to be), waiting for the initiator's.
pub struct Responder {
    /// Every K the initiator may hold, in the order they are tried.
    keys: Vec<Psk>,
    /// `-f`, `-g` or neither.
    fs: ForwardSecrecy,
    /// Our nonce, nonce_S: half of both derivations' salt.
    nonce: [u8; NONCE_LEN],
}

impl Responder {
    /// Starts a handshake with a fresh random `nonce` that accepts an initiator holding any of
    /// `keys`: returns the state waiting for the initiator's nonce, and the [`NONCE_LEN`] bytes to
    /// send.
    pub fn start(keys: &[Psk], fs: ForwardSecrecy, nonce: [u8; NONCE_LEN]) -> (Self, [u8; NONCE_LEN]) {
        (Responder { keys: keys.to_vec(), fs, nonce }, nonce)
    }

    /// Takes the initiator's nonce and derives each key's MAC keys (one PBKDF2-SHA256 iteration per
    /// key). Nothing is sent in reply: the responder waits for the initiator's y.
    pub fn read_nonce(self, initiator_nonce: &[u8; NONCE_LEN]) -> ResponderAwaitingY {
        let nonces_cs = keys::nonces_cs(initiator_nonce, &self.nonce);
        let candidates = self
            .keys
            .into_iter()
            .map(|psk| {
                let dhmac = DhMacKeys::derive(&psk, &nonces_cs);
                Candidate { psk, dhmac }
            })
            .collect();
        ResponderAwaitingY { candidates, fs: self.fs, nonces_cs }
    }
}

/// One key the initiator may hold, with the MAC keys it gives on this handshake's nonces.
struct Candidate {
    /// K, for the session keys if the initiator's y verifies under it.
    psk: Psk,
    /// Checks the initiator's MAC and makes ours.
    dhmac: DhMacKeys,
}

/// The `-d` end with both nonces, waiting for the initiator's y.
pub struct ResponderAwaitingY {
    /// Each key the initiator may hold, in the order they are tried.
    candidates: Vec<Candidate>,
    /// `-g` refuses an initiator's y = 1; `-f` makes our y 1.
    fs: ForwardSecrecy,
    /// nonce_C || nonce_S, the session keys' salt.
    nonces_cs: [u8; 2 * NONCE_LEN],
}

impl ResponderAwaitingY {
    /// Takes the initiator's y and MAC: checks the MAC under each key in turn (the first that
    /// verifies wins), then y, then makes our y from `private` (unused under
    /// [`ForwardSecrecy::Skip`]) and derives the session under the key that verified. Returns the
    /// session, our y and MAC, to send before any packet, and the index of that key in the slice
    /// given to [`Responder::start`]. Costs an HMAC per key tried, then two exponentiations (one, or
    /// none, with y = 1 on either side), and those only once a MAC has verified. How long the MACs
    /// take tells which key verified, and nothing more: the index is not secret.
    ///
    /// # Errors
    /// As [`InitiatorAwaitingY::read_y`], [`HandshakeError::BadMac`] when the MAC verifies under none
    /// of the keys; nothing is to be sent then.
    pub fn read_y(
        self,
        initiator_y: &[u8; Y_AND_MAC_LEN],
        private: DhPrivate,
    ) -> Result<(Transport, [u8; Y_AND_MAC_LEN], usize), HandshakeError> {
        let index = self
            .candidates
            .iter()
            .position(|candidate| keys::mac_verifies(initiator_y, &candidate.dhmac.initiator))
            .ok_or(HandshakeError::BadMac)?;
        let (y, kind) = keys::check_y(initiator_y, self.fs)?;
        let Candidate { psk, dhmac } = &self.candidates[index];
        let signed_y = keys::signed_y(self.fs, &private, &dhmac.responder);
        let shared = keys::shared_secret(self.fs, &private, y, kind);
        let (to_responder, to_initiator) = keys::session_keys(psk, &self.nonces_cs, &shared);
        Ok((Transport::new(&to_initiator, &to_responder), signed_y, index))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Initiator").field("fs", &self.fs).field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

impl fmt::Debug for InitiatorAwaitingY {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &mut f.debug_struct("InitiatorAwaitingY");
        s.field("fs", &self.fs).field("nonces_cs", &self.nonces_cs).finish_non_exhaustive()
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &mut f.debug_struct("Responder");
        s.field("keys", &self.keys.len())
            .field("fs", &self.fs)
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ResponderAwaitingY {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &mut f.debug_struct("ResponderAwaitingY");
        s.field("keys", &self.candidates.len())
            .field("fs", &self.fs)
            .field("nonces_cs", &self.nonces_cs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::ONE;
    use super::super::{MAX_DATA, Opener, Sealer, Y_LEN};
    use super::*;
    use crate::proto::crypto::group14::P;
    use crate::proto::crypto::hmac::{self, HmacSha256};
    use crate::proto::framing::{Open, Record};

    fn psk() -> Psk {
        Psk::from_key_file(b"a classic spiped key file")
    }

    fn private(seed: u8) -> DhPrivate {
        DhPrivate::from_bytes([seed; 32])
    }

    /// Both ends' messages, in the order they are sent.
    struct Exchange {
        y_c: [u8; Y_AND_MAC_LEN],
        y_s: Option<[u8; Y_AND_MAC_LEN]>,
        result: Result<(Transport, Transport), HandshakeError>,
    }

    /// A whole handshake in memory: `-e` with `fs_c`, `-d` with `fs_s`, the same key unless `psk_s`.
    fn run(fs_c: ForwardSecrecy, fs_s: ForwardSecrecy, psk_s: &Psk) -> Exchange {
        let (initiator, nonce_c) = Initiator::start(&psk(), fs_c, [0xc0; NONCE_LEN]);
        let (responder, nonce_s) = Responder::start(std::slice::from_ref(psk_s), fs_s, [0x5e; NONCE_LEN]);
        let (initiator, y_c) = initiator.read_nonce(&nonce_s, private(1));
        let responder = responder.read_nonce(&nonce_c);
        let (server, y_s) = match responder.read_y(&y_c, private(2)) {
            Ok((server, y_s, 0)) => (server, y_s),
            Ok((_, _, key)) => panic!("one key, reported as key {key}"),
            Err(e) => return Exchange { y_c, y_s: None, result: Err(e) },
        };
        let result = initiator.read_y(&y_s).map(|client| (client, server));
        Exchange { y_c, y_s: Some(y_s), result }
    }

    /// `data` sealed by `tx` opens to the same bytes at `rx`, packet by packet.
    fn carries(tx: &mut Sealer, rx: &mut Opener, data: &[u8]) {
        let mut wire = Vec::new();
        tx.seal_data(data, &mut wire).unwrap();
        assert_eq!(wire.len(), data.len().div_ceil(MAX_DATA) * super::super::PACKET_LEN);
        let mut received = Vec::new();
        let mut at = 0;
        while let Some(opened) = rx.open(&mut wire[at..]).unwrap() {
            let Record::Data(bytes) = opened.record else { panic!("classic packets carry data only") };
            received.extend_from_slice(bytes);
            at += opened.consumed;
        }
        assert_eq!(at, wire.len());
        assert_eq!(received, data);
    }

    fn both_ways(client: Transport, server: Transport) {
        let ((mut c_tx, mut c_rx), (mut s_tx, mut s_rx)) = (client.split(), server.split());
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31) as u8).collect();
        carries(&mut c_tx, &mut s_rx, &data);
        carries(&mut s_tx, &mut c_rx, b"PONG");
        carries(&mut c_tx, &mut s_rx, b"x");
    }

    #[test]
    fn both_ends_reach_a_transport_and_talk_both_ways() {
        use ForwardSecrecy::*;
        for (fs_c, fs_s) in [(Offer, Offer), (Require, Require), (Offer, Require), (Require, Offer)] {
            let exchange = run(fs_c, fs_s, &psk());
            let (client, server) = exchange.result.unwrap();
            assert_ne!(&exchange.y_c[..Y_LEN], &ONE[..]);
            both_ways(client, server);
        }
    }

    /// `-f` on either end or both: that end sends y = 1 and both still agree (on y_SC = 1).
    #[test]
    fn skip_on_either_or_both_ends_still_agrees() {
        use ForwardSecrecy::*;
        for (fs_c, fs_s) in [(Skip, Offer), (Offer, Skip), (Skip, Skip)] {
            let exchange = run(fs_c, fs_s, &psk());
            assert_eq!(exchange.y_c[..Y_LEN] == ONE[..], fs_c == Skip);
            assert_eq!(exchange.y_s.unwrap()[..Y_LEN] == ONE[..], fs_s == Skip);
            let (client, server) = exchange.result.unwrap();
            both_ways(client, server);
        }
    }

    /// With `-f` on both ends the session depends on K and the nonces alone: the same twice.
    #[test]
    fn skip_on_both_ends_is_deterministic() {
        use ForwardSecrecy::Skip;
        let seal = || {
            let (client, _) = run(Skip, Skip, &psk()).result.unwrap();
            let mut wire = Vec::new();
            client.split().0.seal_data(b"same", &mut wire).unwrap();
            wire
        };
        assert_eq!(seal(), seal());
    }

    #[test]
    fn require_refuses_a_peer_that_skips() {
        use ForwardSecrecy::*;
        let at_responder = run(Skip, Require, &psk());
        assert_eq!(at_responder.result.unwrap_err(), HandshakeError::NoForwardSecrecy);
        assert!(at_responder.y_s.is_none(), "the responder sends no y to a refused initiator");
        let at_initiator = run(Require, Skip, &psk());
        assert_eq!(at_initiator.result.unwrap_err(), HandshakeError::NoForwardSecrecy);
    }

    #[test]
    fn a_wrong_key_is_refused_at_the_responder() {
        let exchange = run(ForwardSecrecy::Offer, ForwardSecrecy::Offer, &Psk::from_key_file(b"another key"));
        assert_eq!(exchange.result.unwrap_err(), HandshakeError::BadMac);
        assert!(exchange.y_s.is_none());
    }

    /// A responder under another key that does not check (a relay) still cannot pass the initiator.
    #[test]
    fn a_wrong_key_is_refused_at_the_initiator() {
        let other = Psk::from_key_file(b"another key");
        let (initiator, _) = Initiator::start(&psk(), ForwardSecrecy::Offer, [0xc0; NONCE_LEN]);
        let (initiator, _) = initiator.read_nonce(&[0x5e; NONCE_LEN], private(1));
        // The relay's responder completes with its own initiator on the same nonces.
        let (relay, _) = Initiator::start(&other, ForwardSecrecy::Offer, [0xc0; NONCE_LEN]);
        let (_, relay_y) = relay.read_nonce(&[0x5e; NONCE_LEN], private(3));
        let (responder, _) = Responder::start(&[other], ForwardSecrecy::Offer, [0x5e; NONCE_LEN]);
        let (_, y_s, _) = responder.read_nonce(&[0xc0; NONCE_LEN]).read_y(&relay_y, private(2)).unwrap();
        assert_eq!(initiator.read_y(&y_s).unwrap_err(), HandshakeError::BadMac);
    }

    /// Every bit of either y and MAC, and of either nonce, flipped on the way, is refused.
    #[test]
    fn any_flipped_bit_is_refused() {
        use ForwardSecrecy::*;
        let (initiator, nonce_c) = Initiator::start(&psk(), Skip, [0xc0; NONCE_LEN]);
        let (responder, nonce_s) = Responder::start(&[psk()], Offer, [0x5e; NONCE_LEN]);
        let (initiator, y_c) = initiator.read_nonce(&nonce_s, private(1));
        let waiting = || Responder::start(&[psk()], Offer, nonce_s).0.read_nonce(&nonce_c);
        for bit in 0..Y_AND_MAC_LEN * 8 {
            let mut flipped = y_c;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                waiting().read_y(&flipped, private(2)).unwrap_err(),
                HandshakeError::BadMac,
                "bit {bit}"
            );
        }
        for bit in 0..NONCE_LEN * 8 {
            let mut flipped = nonce_c;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let responder = Responder::start(&[psk()], Offer, nonce_s).0.read_nonce(&flipped);
            assert_eq!(responder.read_y(&y_c, private(2)).unwrap_err(), HandshakeError::BadMac, "bit {bit}");
        }
        let (_, y_s, _) = responder.read_nonce(&nonce_c).read_y(&y_c, private(2)).unwrap();
        // The initiator's state is consumed by each try, so a fresh one per flip: -f makes it cheap.
        let waiting = || Initiator::start(&psk(), Skip, nonce_c).0.read_nonce(&nonce_s, private(1)).0;
        for bit in 0..Y_AND_MAC_LEN * 8 {
            let mut flipped = y_s;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(waiting().read_y(&flipped).unwrap_err(), HandshakeError::BadMac, "bit {bit}");
        }
        initiator.read_y(&y_s).expect("the unaltered message verifies");
    }

    /// y with a valid MAC under the initiator's dhmac key, as a peer holding the key could send.
    fn signed_by_initiator(y: &[u8; Y_LEN]) -> [u8; Y_AND_MAC_LEN] {
        signed_under(&psk(), y)
    }

    /// y with a valid MAC under `psk`'s initiator dhmac key for the nonces 0xc0.. and 0x5e...
    fn signed_under(psk: &Psk, y: &[u8; Y_LEN]) -> [u8; Y_AND_MAC_LEN] {
        let nonces = super::keys::nonces_cs(&[0xc0; NONCE_LEN], &[0x5e; NONCE_LEN]);
        let dhmac = DhMacKeys::derive(psk, &nonces);
        let mut message = [0; Y_AND_MAC_LEN];
        message[..Y_LEN].copy_from_slice(y);
        message[Y_LEN..].copy_from_slice(&hmac::Backend::new(&*dhmac.initiator).mac(&[y]));
        message
    }

    #[test]
    fn invalid_y_values_are_refused_even_with_a_valid_mac() {
        let mut minus_one = P;
        minus_one[Y_LEN - 1] -= 1;
        let mut above = P;
        above[Y_LEN - 9] += 1;
        let cases = [
            ([0; Y_LEN], HandshakeError::ZeroY),
            (minus_one, HandshakeError::MinusOneY),
            (P, HandshakeError::YOutOfRange),
            (above, HandshakeError::YOutOfRange),
            ([0xff; Y_LEN], HandshakeError::YOutOfRange),
        ];
        for fs in [ForwardSecrecy::Offer, ForwardSecrecy::Require, ForwardSecrecy::Skip] {
            for (y, refusal) in &cases {
                let responder =
                    Responder::start(&[psk()], fs, [0x5e; NONCE_LEN]).0.read_nonce(&[0xc0; NONCE_LEN]);
                assert_eq!(responder.read_y(&signed_by_initiator(y), private(2)).unwrap_err(), *refusal);
            }
        }
        // The same message with y = 1 passes unless -g.
        let responder = Responder::start(&[psk()], ForwardSecrecy::Offer, [0x5e; NONCE_LEN])
            .0
            .read_nonce(&[0xc0; NONCE_LEN]);
        responder.read_y(&signed_by_initiator(&ONE), private(2)).expect("y = 1 is spiped's -f");
    }

    #[test]
    fn debug_prints_nothing_secret() {
        let (initiator, _) = Initiator::start(&psk(), ForwardSecrecy::Offer, [0xc0; NONCE_LEN]);
        let shown = format!("{initiator:?}");
        assert!(shown.starts_with("Initiator { fs: Offer, nonce: [192,"), "{shown}");
        let (waiting, _) = initiator.read_nonce(&[0x5e; NONCE_LEN], DhPrivate::from_bytes([0xab; 32]));
        let shown = format!("{waiting:?} {:?}", DhPrivate::from_bytes([0xab; 32]));
        assert!(!shown.contains("171"), "no byte of x (0xab) is shown: {shown}");
        assert!(shown.ends_with("DhPrivate(<redacted>)"), "{shown}");
        let (client, server) = run(ForwardSecrecy::Offer, ForwardSecrecy::Offer, &psk()).result.unwrap();
        assert_eq!(
            format!("{client:?}"),
            "Transport { sealer: Sealer { next: Some(0), ended: false }, opener: Opener { next: Some(0), failed: false } }"
        );
        drop(server);
    }

    fn key(name: &str) -> Psk {
        Psk::from_key_file(name.as_bytes())
    }

    /// An initiator under `psk` against a responder holding `keys`, both offering forward secrecy: the
    /// key index the responder reports and both ends' transports, or the responder's refusal.
    fn among(psk: &Psk, keys: &[Psk]) -> Result<(usize, Transport, Transport), HandshakeError> {
        let (initiator, nonce_c) = Initiator::start(psk, ForwardSecrecy::Offer, [0xc0; NONCE_LEN]);
        let (responder, nonce_s) = Responder::start(keys, ForwardSecrecy::Offer, [0x5e; NONCE_LEN]);
        let (initiator, y_c) = initiator.read_nonce(&nonce_s, private(1));
        let (server, y_s, index) = responder.read_nonce(&nonce_c).read_y(&y_c, private(2))?;
        let client = initiator.read_y(&y_s).expect("the responder used our key");
        Ok((index, client, server))
    }

    #[test]
    fn a_responder_with_several_keys_accepts_each_and_names_it() {
        let keys = [key("A"), key("B"), key("C")];
        for (expected, psk) in keys.iter().enumerate() {
            let (index, client, server) = among(psk, &keys).unwrap();
            assert_eq!(index, expected);
            both_ways(client, server);
        }
    }

    #[test]
    fn a_key_outside_the_set_is_refused() {
        let keys = [key("A"), key("B"), key("C")];
        assert_eq!(among(&key("D"), &keys).unwrap_err(), HandshakeError::BadMac);
    }

    #[test]
    fn an_empty_key_set_refuses_everyone() {
        assert_eq!(among(&key("A"), &[]).unwrap_err(), HandshakeError::BadMac);
    }

    /// The same key twice (a reload that lists a file twice): the first wins.
    #[test]
    fn the_first_matching_key_wins() {
        let keys = [key("B"), key("A"), key("A")];
        assert_eq!(among(&key("A"), &keys).unwrap().0, 1);
    }

    /// The responder's y is made under the key that verified: the one a single-key responder sends.
    #[test]
    fn the_responders_y_is_the_one_a_single_key_responder_sends() {
        let y_c = signed_under(&key("B"), &ONE);
        let answer = |keys: &[Psk]| {
            let responder = Responder::start(keys, ForwardSecrecy::Skip, [0x5e; NONCE_LEN]).0;
            let (_, y_s, index) = responder.read_nonce(&[0xc0; NONCE_LEN]).read_y(&y_c, private(2)).unwrap();
            (y_s, index)
        };
        let (alone, _) = answer(&[key("B")]);
        assert_eq!(answer(&[key("A"), key("B"), key("C")]), (alone, 1));
    }

    /// Every key's MAC is checked before y: an invalid y under a later key gets y's refusal, under no
    /// key the MAC's.
    #[test]
    fn the_macs_are_checked_under_every_key_before_y() {
        let keys = [key("A"), key("B"), key("C")];
        let read = |psk: &Psk| {
            let responder = Responder::start(&keys, ForwardSecrecy::Offer, [0x5e; NONCE_LEN]).0;
            responder.read_nonce(&[0xc0; NONCE_LEN]).read_y(&signed_under(psk, &[0; Y_LEN]), private(2))
        };
        assert_eq!(read(&key("C")).map(|(_, _, index)| index), Err(HandshakeError::ZeroY));
        assert_eq!(read(&key("D")).map(|(_, _, index)| index), Err(HandshakeError::BadMac));
    }

    #[test]
    fn debug_shows_how_many_keys_and_none_of_them() {
        let keys = [Psk::from_bytes([0xab; 32]), Psk::from_bytes([0xcd; 32])];
        let (responder, _) = Responder::start(&keys, ForwardSecrecy::Offer, [0x5e; NONCE_LEN]);
        let shown = format!("{responder:?}");
        assert!(shown.starts_with("Responder { keys: 2, fs: Offer, nonce: [94,"), "{shown}");
        let shown = format!("{:?}", responder.read_nonce(&[0xc0; NONCE_LEN]));
        assert!(shown.starts_with("ResponderAwaitingY { keys: 2, fs: Offer, nonces_cs: [192,"), "{shown}");
        assert!(!shown.contains("171") && !shown.contains("205"), "no byte of a key is shown: {shown}");
    }
}
