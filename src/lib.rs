//! spiped-rs: a secure pipe daemon with spiped's command line and a Noise NNpsk0 + ChaCha20-Poly1305
//! protocol.
//!
//! # Layout
//! - [`cli`]: the command line (spiped 1.6's options), parsed without I/O.
//! - [`config`]: arguments to settings: addresses resolved, key read. The only place a flag becomes a value.
//! - [`key`]: the key file: size and permission checks, hashed into the protocol key.
//! - [`proto`]: the wire protocol, with no I/O: handshake phases as types, records sealed and opened in
//!   caller-owned buffers. `docs/PROTOCOL.md` is its specification.
//! - [`tunnel`]: the I/O shell: addresses, sockets, the accept loop, the per-connection pump.
//! - [`daemon`]: fork after binding, the pid file (locked), the unix socket file it bound, privilege drop.
//! - [`logging`]: log lines to standard error or syslog.
//! - [`systemd`]: readiness, status, watchdog and socket activation; no-ops without systemd.
//! - [`app`]: start-up in spiped's order and the runtime, used by `main`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod key;
pub mod logging;
pub mod proto;
pub mod systemd;
pub mod tunnel;
