//! The connections an end makes itself: to its target (the service on `-d`, the `-d` end on `-e` and
//! for `spipe`), from -b's address, within -o.

use std::io;
use std::time::Duration;

use tokio::time::timeout;

use super::addr::{Addr, TargetAddrs};
use super::connection::ConnError;
use super::stream::{Stream, TcpOptions};

/// How this end reaches its target.
#[derive(Debug)]
pub struct Dialer {
    /// Where connections go, re-resolved in the background for host names.
    pub target: TargetAddrs,
    /// Local address for outgoing connections (-b), for hosts whose peers admit one address only.
    pub bind: Option<Addr>,
    /// Bound on the connect, and on the initiator's handshake (-o): a target that does not answer
    /// fails the connection rather than holding the client forever.
    pub timeout: Duration,
    /// TCP socket options for the connections this end makes (accepted ones get theirs from the
    /// listener).
    pub tcp: TcpOptions,
}

impl Dialer {
    /// Connects to the first target address that answers, within -o.
    ///
    /// # Errors
    /// [`ConnError::Target`] with the last address tried and its error, or
    /// [`ConnError::TargetTimeout`].
    pub async fn connect(&self) -> Result<Stream, ConnError> {
        let addrs = self.target.current();
        let attempt = async {
            let mut last = None;
            for addr in addrs.iter() {
                match Stream::connect(addr, self.bind.as_ref(), self.tcp).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some((addr, e)),
                }
            }
            let (addr, source) = last.map_or_else(
                || (String::from("(none)"), io::Error::from(io::ErrorKind::AddrNotAvailable)),
                |(a, e): (&Addr, io::Error)| (a.to_string(), e),
            );
            Err(ConnError::Target { target: addr, source })
        };
        timeout(self.timeout, attempt).await.unwrap_or(Err(ConnError::TargetTimeout))
    }
}
