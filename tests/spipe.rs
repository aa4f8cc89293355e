//! The `spipe` client end to end: the built `spipe` against the built `spiped -d` (which accepts both
//! protocols) in front of real loopback services, with standard input and output as files, pipes and
//! /dev/null. Debian's spiped 1.6 at the other end is in `tests/classic/spipe.rs`.
//!
//! Layout:
//! - `transfer`: a few MiB byte-exact both ways through an echo, over TCP and a unix socket, and each
//!   direction on its own (a sink that answers a digest, a service that speaks first).
//! - `half_close`: spiped's own test 08: the end of standard input crosses as a half-close and the
//!   slow echo's whole answer still arrives.
//! - `failures`: exit 1 with one line on standard error for each way a connection fails: nobody
//!   listening, a wrong key, the `-d` end killed mid-stream, its service down, the reader of standard
//!   output gone, a target that never answers.
//! - `command_line`: `-v`, `-h`, `-k -` and an empty key file.
//! - `signals`: a SIGHUP mid-stream (ssh sends one to its ProxyCommand) changes nothing.
//! - `stdin`: standard input at /dev/null still gets the service's whole answer.

mod support;

#[path = "spipe/command_line.rs"]
mod command_line;
#[path = "spipe/failures.rs"]
mod failures;
#[path = "spipe/half_close.rs"]
mod half_close;
#[path = "spipe/signals.rs"]
mod signals;
#[path = "spipe/stdin.rs"]
mod stdin;
#[path = "spipe/transfer.rs"]
mod transfer;
