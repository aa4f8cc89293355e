//! The wire protocols, with no I/O: `docs/PROTOCOL.md` is their specification.
//!
//! - [`native`]: spiped-rs's own protocol, Noise NNpsk0 and ChaCha20-Poly1305 records.
//! - [`classic`]: classic spiped 1.x's, finite-field Diffie-Hellman and AES-CTR + HMAC packets.
//! - [`framing`]: what both protocols' established connections share: the [`Seal`] and [`Open`] traits
//!   the I/O shell's pump is generic over, with each protocol's frame geometry.
//! - `crypto`: the primitives behind seams, one backend per cargo feature.
//! - [`Psk`]: K, the key file's hash, which both protocols start from.
//!
//! Nothing in this module touches a socket, a file or a clock (but for [`init_backends`], which the
//! daemon calls once at start-up so that OpenSSL reads its configuration then). Randomness arrives as
//! values the caller made (an [`EphemeralKey`](native::EphemeralKey), a classic
//! [`DhPrivate`](classic::DhPrivate) and nonces); bytes arrive in caller-owned buffers; bytes to send
//! are appended to caller-owned vectors. Both ends can therefore be driven in memory,
//! deterministically, by tests, benchmarks and fuzzers, and the daemon's I/O shell only moves bytes.
//!
//! Each phase of a native connection is a type, consumed into the next:
//!
//! ```text
//! initiator (-e):  Initiator::start ──hello──▶ Initiator::read_response ──▶ Transport (+ first record)
//! responder (-d):  read the preamble, Responder::accept ──response──▶ Unconfirmed::confirm ──▶ Transport
//! ```
//!
//! A [`Transport`](native::Transport) splits into a [`Sealer`](native::Sealer) for the sending
//! direction and an [`Opener`](native::Opener) for the receiving one, so that each direction can be
//! pumped by its own task. Nothing here panics on bytes from a peer: every malformed input is a
//! [`native::ProtoError`], a [`classic::HandshakeError`] or a [`RecordError`].
//!
//! ```
//! use spiped::proto::native::{Confirm, EphemeralKey, Initiator, ProtoError, Responder};
//! use spiped::proto::{Open, Psk, Record, Seal};
//!
//! let psk = Psk::from_key_file(b"an example key file, 32 bytes or more");
//! let mut rng = rand::rng();
//!
//! let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rng));
//! let keys = [psk.clone()]; // a -d end may hold several keys: the hello is checked against each
//! let (unconfirmed, response, _key) = Responder::accept(&keys, &hello, EphemeralKey::generate(&mut rng))?;
//! let mut to_responder = Vec::new();
//! let client = initiator.read_response(&response, &mut to_responder)?;
//! let (mut client_tx, _client_rx) = client.split();
//! client_tx.seal_data(b"PING\r\n", &mut to_responder)?;
//!
//! let Confirm::Confirmed { transport, consumed, .. } = unconfirmed.confirm(&mut to_responder)? else {
//!     unreachable!("the whole first record is in the buffer");
//! };
//! let (_server_tx, mut server_rx) = transport.split();
//! let opened = server_rx.open(&mut to_responder[consumed..])?.expect("a whole record follows");
//! assert_eq!(opened.record, Record::Data(b"PING\r\n"));
//! # Ok::<(), ProtoError>(())
//! ```

pub mod classic;
mod crypto;
pub mod framing;
pub mod native;
mod psk;

pub use crypto::BACKENDS;
pub use crypto::aead::BackendUnavailable;
pub use framing::{Open, Opened, Record, RecordError, Seal};
pub use psk::{FINGERPRINT_LABEL, FINGERPRINT_LEN, Fingerprint, PSK_LEN, Psk};

/// Readies the crypto backends before connections arrive: OpenSSL reads its configuration file and
/// looks up ChaCha20-Poly1305 here, once, so that no connection waits on it, nothing is read after
/// privileges are dropped, and a system that refuses the cipher stops the daemon at start-up. The
/// one place this module lets a library read a file. Idempotent.
///
/// # Errors
/// [`BackendUnavailable`] when the backend cannot work on this system.
pub fn init_backends() -> Result<(), BackendUnavailable> {
    crypto::aead::init()
}

/// The wire protocols this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// spiped-rs's own: Noise NNpsk0 and ChaCha20-Poly1305 records (docs/PROTOCOL.md).
    Native,
    /// Classic spiped 1.x's: finite-field Diffie-Hellman, AES-256-CTR and HMAC-SHA256 packets.
    Classic,
}

impl Protocol {
    /// Its name, as `--protocol` takes it and metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Classic => "classic",
        }
    }
}

/// The wire protocols connections may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// Exactly this one: always on -e (native unless --protocol classic), and on -d with --protocol.
    Only(Protocol),
    /// Either, told apart by the initiator's first bytes: -d without --protocol, so that one -d end
    /// serves native and classic -e ends at once while a site migrates.
    Both,
}

impl Protocols {
    /// Whether a connection speaking `protocol` may be made or accepted.
    pub fn allows(self, protocol: Protocol) -> bool {
        match self {
            Protocols::Only(only) => only == protocol,
            Protocols::Both => true,
        }
    }
}
