//! One type for the two kinds of socket spiped speaks over, TCP and unix, split into owned halves so
//! each direction of a connection can be driven on its own.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UnixStream, tcp, unix};

use super::addr::Addr;

/// A connected socket.
#[derive(Debug)]
pub enum Stream {
    /// TCP, with TCP_NODELAY set (by the listener it was accepted from, or before connecting).
    Tcp(TcpStream),
    /// A unix-domain stream socket.
    Unix(UnixStream),
}

/// Socket options for TCP connections, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    /// SO_KEEPALIVE, on unless -j.
    pub keepalive: bool,
}

impl TcpOptions {
    /// Sets TCP_NODELAY, and SO_KEEPALIVE as asked, on `socket`: a listener (whose connections
    /// inherit them), an accepted socket, or one about to connect.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn apply(self, socket: &impl AsFd) -> io::Result<()> {
        let socket = socket2::SockRef::from(socket);
        socket.set_tcp_nodelay(true)?;
        socket.set_keepalive(self.keepalive)
    }
}

/// TCP keepalive probing, as a socket has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probes {
    /// SO_KEEPALIVE.
    pub on: bool,
    /// TCP_KEEPIDLE: quiet time before the first probe.
    pub idle: Duration,
    /// TCP_KEEPINTVL: time between unanswered probes.
    pub interval: Duration,
    /// TCP_KEEPCNT: probes left unanswered before the connection is dropped.
    pub count: u32,
}

impl Stream {
    /// Connects to `addr`, binding TCP connections to `bind` first when given. A TCP socket gets
    /// TCP_NODELAY and the keepalive setting of `options` before it connects.
    ///
    /// # Errors
    /// The operating system's error.
    pub async fn connect(addr: &Addr, bind: Option<&Addr>, options: TcpOptions) -> io::Result<Self> {
        match addr {
            Addr::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            Addr::Tcp(target) => {
                let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                options.apply(&socket)?;
                if let Some(Addr::Tcp(local)) = bind {
                    socket.bind(*local)?;
                }
                Ok(Stream::Tcp(socket.connect(*target).await?))
            }
        }
    }

    /// Closes the connection as a failure: for TCP an RST (SO_LINGER 0), so the far side sees an error
    /// rather than a clean, empty stream. A unix socket is closed; it has no such signal.
    pub fn abort(self) {
        self.into_split().1.abort();
    }

    /// Splits into halves that can be moved to different futures.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// TCP.
    Tcp(tcp::OwnedReadHalf),
    /// Unix.
    Unix(unix::OwnedReadHalf),
}

/// The writing half of a [`Stream`]; `shutdown` sends a FIN (half-close).
#[derive(Debug)]
pub enum WriteHalf {
    /// TCP.
    Tcp(tcp::OwnedWriteHalf),
    /// Unix.
    Unix(unix::OwnedWriteHalf),
}

impl WriteHalf {
    /// Aborts the connection instead of ending it cleanly: for TCP an RST (SO_LINGER 0, and no FIN
    /// first), so the far side cannot take a failed stream for a complete one. Unix sockets have no
    /// such signal; they are closed without a shutdown. The socket closes once the read half is
    /// dropped too.
    pub fn abort(self) {
        match self {
            WriteHalf::Tcp(w) => {
                // Best effort: the socket is being closed either way.
                let _ = socket2::SockRef::from(w.as_ref()).set_linger(Some(Duration::ZERO));
                w.forget();
            }
            WriteHalf::Unix(w) => w.forget(),
        }
    }
}

impl ReadHalf {
    /// Ready once the socket has something to read (data, an end, or an error), without a buffer and
    /// without a future to hold: a parked direction keeps no memory for reading. The readiness stays
    /// until a read returns `WouldBlock`, which clears it, so a wake-up with nothing to read parks again
    /// at the next poll rather than spinning. The socket keeps only the last waker given, so it must
    /// have one reader: the direction that owns this half.
    ///
    /// # Errors
    /// The runtime's error when its I/O driver has shut down.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadHalf::Tcp(r) => r.as_ref().poll_read_ready(cx),
            ReadHalf::Unix(r) => r.as_ref().poll_read_ready(cx),
        }
    }

    /// Reads what is there into `bufs`, in order, without waiting; `WouldBlock` when nothing is.
    pub fn try_read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(r) => r.try_read_vectored(bufs),
            ReadHalf::Unix(r) => r.try_read_vectored(bufs),
        }
    }

    /// The socket's keepalive probing; `None` for a unix socket, which has none.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn probes(&self) -> io::Result<Option<Probes>> {
        let ReadHalf::Tcp(r) = self else { return Ok(None) };
        let socket = socket2::SockRef::from(r.as_ref());
        Ok(Some(Probes {
            on: socket.keepalive()?,
            idle: socket.tcp_keepalive_time()?,
            interval: socket.tcp_keepalive_interval()?,
            count: socket.tcp_keepalive_retries()?,
        }))
    }

    /// Sets the socket's keepalive probing; nothing for a unix socket.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn set_probes(&self, probes: Probes) -> io::Result<()> {
        let ReadHalf::Tcp(r) = self else { return Ok(()) };
        let socket = socket2::SockRef::from(r.as_ref());
        let times = socket2::TcpKeepalive::new()
            .with_time(probes.idle)
            .with_interval(probes.interval)
            .with_retries(probes.count);
        socket.set_tcp_keepalive(&times)?;
        socket.set_keepalive(probes.on)
    }

    /// A second handle on the socket (a duplicated descriptor), to set its options from elsewhere;
    /// `None` for a unix socket. The socket stays open while the handle lives.
    ///
    /// # Errors
    /// The operating system's error (no descriptor left, for one).
    pub fn duplicate(&self) -> io::Result<Option<socket2::Socket>> {
        match self {
            ReadHalf::Tcp(r) => socket2::SockRef::from(r.as_ref()).try_clone().map(Some),
            ReadHalf::Unix(_) => Ok(None),
        }
    }

    /// Appends what is there to `buf`'s spare capacity without waiting; `WouldBlock` when nothing is.
    pub fn try_read_buf(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(r) => r.try_read_buf(buf),
            ReadHalf::Unix(r) => r.try_read_buf(buf),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Unix(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Unix(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Unix(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Unix(w) => Pin::new(w).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Unix(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}
