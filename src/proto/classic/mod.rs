//! Classic spiped 1.x's wire protocol, with no I/O, in both roles: what Tarsnap's spiped 1.6 speaks
//! (its `lib/proto/` and libcperciva's `crypto/`, which this follows where its DESIGN.md is silent).
//!
//! # Keys
//!
//! ```text
//! K            = SHA-256(key file)                                   (crate::proto::Psk)
//! dk_1         = PBKDF2-SHA256(K, nonce_C || nonce_S, 1 iteration, 64 bytes)
//! dhmac_C      = dk_1[0..32]      dhmac_S = dk_1[32..64]
//! x            = 32 random bytes; the exponent is 2^258 + x
//! y            = 2^(2^258 + x) mod p   (RFC 3526 group 14), 256 bytes big-endian; 1 with -f
//! y_SC         = y_peer^(2^258 + x) mod p; 1 when either end sent y = 1
//! dk_2         = PBKDF2-SHA256(K, nonce_C || nonce_S || y_SC, 1 iteration, 128 bytes)
//! C -> S keys  = AES key dk_2[0..32],   HMAC key dk_2[32..64]
//! S -> C keys  = AES key dk_2[64..96],  HMAC key dk_2[96..128]
//! ```
//!
//! C, the client, is the initiator (the `-e` end, which connects); S, the server, is the responder
//! (the `-d` end, which accepts).
//!
//! # Messages, in the order the I/O driver must follow
//!
//! ```text
//! initiator (-e)                                            responder (-d)
//!  1. nonce_C (32 bytes) ──────────▶            ◀────────── nonce_S (32 bytes)
//!     Both send at once and neither waits for the other's: Initiator::start, Responder::start.
//!  2. after nonce_S is read (and nonce_C written):
//!     y_C || HMAC-SHA256(dhmac_C, y_C) (288 bytes) ─────────▶
//!     Initiator::read_nonce                                  Responder::read_nonce (sends nothing)
//!  3.                                                        after y_C is read and verified, and
//!                                                            only then (spiped 1.6 does the same):
//!                 ◀───────── y_S || HMAC-SHA256(dhmac_S, y_S) (288 bytes)
//!                                                            Responder::read_y: the Transport
//!  4. InitiatorAwaitingY::read_y: the Transport
//!  5. packets both ways; each direction ends with a TCP FIN
//! ```
//!
//! The responder may hold its nonce back until it has read the first bytes of the initiator's (to
//! tell a classic initiator from a native one): a classic initiator sends its nonce unprompted, so
//! that cannot deadlock. The initiator must not wait for anything before sending its y once it has
//! the responder's nonce: spiped 1.6's responder sends nothing more until it has the initiator's y.
//! The responder's packets may follow its y at once, so the initiator keeps whatever it read past
//! the 288 bytes as the start of the packet stream. The initiator sends no packet before it has the
//! responder's y, nor does the responder before it has sent its own.
//!
//! # Packets
//!
//! ```text
//! packet    = AES-256-CTR(aes key, pnum, data || zeros || length) || HMAC-SHA256(mac key, that || pnum)
//!             1024 bytes of zero-padded data, a 4-byte big-endian length (1..=1024), a 32-byte tag:
//!             1060 bytes always
//! pnum      = the packet's number in its direction, from 0, as a 64-bit big-endian integer
//! counter   = pnum (8 bytes, big-endian) || block index within the packet (8 bytes, big-endian, from 0)
//! ```
//!
//! The tag is checked (in constant time) before anything is decrypted. Nothing authenticates the end
//! of a direction: it is the transport's FIN, clean only at a packet boundary.
//!
//! ```
//! use spiped::proto::classic::{DhPrivate, ForwardSecrecy, Initiator, Responder};
//! use spiped::proto::framing::{Open, Record};
//! use spiped::proto::Psk;
//!
//! let psk = Psk::from_key_file(b"an example key file");
//! let mut rng = rand::rng();
//! let fs = ForwardSecrecy::Offer;
//!
//! let (initiator, nonce_c) = Initiator::start(&psk, fs, [1; 32]);
//! let keys = [psk.clone()]; // a -d end may hold several keys: y_C's MAC is checked under each
//! let (responder, nonce_s) = Responder::start(&keys, fs, [2; 32]);
//! let (initiator, y_c) = initiator.read_nonce(&nonce_s, DhPrivate::generate(&mut rng));
//! let responder = responder.read_nonce(&nonce_c);
//! let (server, y_s, _key) = responder.read_y(&y_c, DhPrivate::generate(&mut rng))?;
//! let client = initiator.read_y(&y_s)?;
//!
//! let (mut client_tx, _client_rx) = client.split();
//! let (_server_tx, mut server_rx) = server.split();
//! let mut wire = Vec::new();
//! client_tx.seal_data(b"PING\r\n", &mut wire)?;
//! let opened = server_rx.open(&mut wire)?.expect("a whole packet");
//! assert_eq!(opened.record, Record::Data(b"PING\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod handshake;
mod keys;
mod packet;

pub use error::HandshakeError;
pub use handshake::{Initiator, InitiatorAwaitingY, Responder, ResponderAwaitingY};
pub use keys::DhPrivate;
pub use packet::{Opener, Sealer, Transport};

/// Length of each end's nonce, sent first.
pub const NONCE_LEN: usize = 32;
/// Length of the random part of a Diffie-Hellman private exponent.
pub const PRIVATE_LEN: usize = 32;
/// Length of a Diffie-Hellman public value y on the wire.
pub const Y_LEN: usize = 256;
/// Length of an HMAC-SHA256 tag, after y and after each packet.
pub const MAC_LEN: usize = 32;
/// The second message each end sends: y and its MAC.
pub const Y_AND_MAC_LEN: usize = Y_LEN + MAC_LEN;
/// Most stream data one packet carries.
pub const MAX_DATA: usize = 1024;
/// Length of the packet's length field, after the padded data.
pub const LENGTH_LEN: usize = 4;
/// The encrypted part of a packet: padded data and length.
pub const ENCRYPTED_LEN: usize = MAX_DATA + LENGTH_LEN;
/// Every packet's length on the wire.
pub const PACKET_LEN: usize = ENCRYPTED_LEN + MAC_LEN;

/// What an end does about forward secrecy: spiped's `-f` and `-g`. The two flags together make no
/// sense (spiped's command line refuses them), and this type cannot say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ForwardSecrecy {
    /// spiped's default: a Diffie-Hellman exchange, but a peer that sends y = 1 (its `-f`) is
    /// accepted, and the session then has no forward secrecy.
    #[default]
    Offer,
    /// `-g`: a Diffie-Hellman exchange, and a peer that sends y = 1 is refused.
    Require,
    /// `-f`: send y = 1 and skip the exponentiations: the session keys depend on the key file and
    /// the nonces only, and a later theft of the key file decrypts a recorded session.
    Skip,
}
