//! spiped-rs: a secure pipe daemon with spiped's command line and a Noise NNpsk0 + ChaCha20-Poly1305
//! protocol, which also speaks classic spiped 1.x's protocol.
//!
//! # Layout
//! - [`cli`]: the command line (spiped 1.6's options), parsed without I/O.
//! - [`config`]: arguments to settings: addresses resolved, key read. The only place a flag becomes a value.
//! - [`keys`]: key files (size and permission checks, hashed into the protocol key), fingerprints, and
//!   the key set in force, swapped whole at reload.
//! - [`proto`]: the wire protocols, with no I/O: `native/` and `classic/`, each with its handshake
//!   phases as types and its frames sealed and opened in caller-owned buffers behind the shared
//!   `Seal`/`Open` traits; `crypto/` holds the primitives behind seams. `docs/PROTOCOL.md` is the
//!   specification of both.
//! - [`tunnel`]: the I/O shell: addresses, sockets, the accept loop, one handshake driver per protocol
//!   (the `-d` end tells them apart by the first bytes), the dialer, the PROXY v2 header a `-d` end
//!   may write to its service, and the pump, generic over the protocols.
//! - [`daemon`]: fork after binding, the pid file (locked), the unix socket file it bound, privilege drop.
//! - [`logging`]: log lines to standard error or syslog.
//! - [`reload`]: SIGHUP reads the key files again; new connections use the new set.
//! - [`stats`]: connection counters and their snapshot, for the systemd status line.
//! - [`systemd`]: readiness, status, watchdog and socket activation; no-ops without systemd.
//! - [`app`]: start-up in spiped's order and the runtime, used by `main`.
//! - [`spipe`]: the `spipe` client: one connection as initiator, standard input and output as its
//!   plaintext side; its command line in [`spipe::cli`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod proto;
pub mod reload;
pub mod spipe;
pub mod stats;
pub mod systemd;
pub mod tunnel;
