//! The native wire protocol, with no I/O: `docs/PROTOCOL.md` is its specification.
//!
//! Nothing in this module touches a socket, a file or a clock (but for [`init_backends`], which the
//! daemon calls once at start-up so that OpenSSL reads its configuration then). Randomness arrives as
//! an [`EphemeralKey`] the caller made; bytes arrive in caller-owned buffers; bytes to send are
//! appended to caller-owned vectors. Both ends can therefore be driven in memory, deterministically, by tests,
//! benchmarks and fuzzers, and the daemon's I/O shell only moves bytes.
//!
//! Each phase of a connection is a type, consumed into the next:
//!
//! ```text
//! initiator (-e):  Initiator::start ──hello──▶ Initiator::read_response ──▶ Transport (+ first record)
//! responder (-d):  read the preamble, Responder::accept ──response──▶ Unconfirmed::confirm ──▶ Transport
//! ```
//!
//! A [`Transport`] splits into a [`Sealer`] for the sending direction and an [`Opener`] for the
//! receiving one, so that each direction can be pumped by its own task. Nothing here panics on bytes
//! from a peer: every malformed input is a [`ProtoError`].
//!
//! ```
//! use spiped::proto::{Confirm, EphemeralKey, Initiator, Psk, Record, Responder};
//!
//! let psk = Psk::from_key_file(b"an example key file, 32 bytes or more");
//! let mut rng = rand::rng();
//!
//! let (initiator, hello) = Initiator::start(&psk, EphemeralKey::generate(&mut rng));
//! let (unconfirmed, response) = Responder::accept(&psk, &hello, EphemeralKey::generate(&mut rng))?;
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
//! # Ok::<(), spiped::proto::ProtoError>(())
//! ```

mod aead;
mod cipher;
pub mod classic;
mod crypto;
mod dh;
mod error;
pub mod framing;
mod handshake;
mod psk;
mod record;
mod symmetric;

pub use aead::BackendUnavailable;
pub use error::ProtoError;
pub use handshake::{
    Confirm, EphemeralKey, HELLO_LEN, Initiator, MAGIC, MSG1_LEN, MSG2_LEN, PREAMBLE, PREAMBLE_LEN, PROLOGUE,
    PROTOCOL_NAME, Preamble, Responder, Unconfirmed, VERSION,
};
pub use psk::{PSK_LEN, Psk};
pub use record::{
    MAX_RECORD_DATA, Opened, Opener, RECORD_HEADER_LEN, RECORD_MAX_BODY, RECORD_MAX_CIPHERTEXT,
    RECORD_MAX_LEN, RECORD_MIN_CIPHERTEXT, RECORD_OVERHEAD, Record, Sealer, TYPE_DATA, TYPE_END, Transport,
    frame_len,
};

/// Readies the crypto backends before connections arrive: OpenSSL reads its configuration file and
/// looks up ChaCha20-Poly1305 here, once, so that no connection waits on it, nothing is read after
/// privileges are dropped, and a system that refuses the cipher stops the daemon at start-up. The
/// one place this module lets a library read a file. Idempotent.
///
/// # Errors
/// [`BackendUnavailable`] when the backend cannot work on this system.
pub fn init_backends() -> Result<(), BackendUnavailable> {
    aead::init()
}

/// The wire protocols this build speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// spiped-rs's own: Noise NNpsk0 and ChaCha20-Poly1305 records (docs/PROTOCOL.md).
    Native,
    /// Classic spiped 1.x's: finite-field Diffie-Hellman, AES-256-CTR and HMAC-SHA256 packets.
    Classic,
}

/// Length of a Poly1305 authentication tag, appended to every encrypted message.
pub const TAG_LEN: usize = 16;

/// Length of an X25519 public key on the wire.
pub const DH_LEN: usize = 32;

#[cfg(test)]
mod vectors;
