//! A limit on how long the endpoint's replies may wait for a client to read them: an I/O wrapper whose
//! writes fail with [`io::ErrorKind::TimedOut`] once they have made no progress for a set time, so that
//! hyper ends the connection and its slot is freed. Reads pass through untouched (hyper bounds the
//! wait for a request's headers itself).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, whose writes, flushes and shutdown fail once one has waited `limit` without progress.
#[derive(Debug)]
pub struct StallLimited<T> {
    /// The connection.
    inner: T,
    /// How long a write may wait without any byte going out.
    limit: Duration,
    /// Armed when a write first has to wait, dropped as soon as one makes progress: while it is
    /// armed, every write since it was set has waited.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallLimited<T> {
    /// Wraps `inner`: a write that waits `limit` with no progress fails.
    pub fn new(inner: T, limit: Duration) -> Self {
        StallLimited { inner, limit, stalled: None }
    }

    /// Passes `polled`, the inner write's result, on; a wait starts the timer (if it is not running),
    /// anything else stops it. Once the timer has run out the wait becomes a `TimedOut` error.
    fn limit<R>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallLimited<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallLimited<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.limit(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.limit(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.limit(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.limit(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// Buffer of the in-memory pipe: small, so a write soon has to wait for the reader.
    const PIPE: usize = 4096;

    /// Writes until a write has to wait (which starts the timer), and returns.
    async fn fill(w: &mut StallLimited<DuplexStream>) -> io::Result<()> {
        let chunk = [7; 1024];
        std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut *w).poll_write(cx, &chunk) {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Ready(Ok(())),
                }
            }
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_once_the_limit_has_passed() {
        let limit = Duration::from_millis(100);
        let (near, mut far) = duplex(PIPE);
        let mut w = StallLimited::new(near, limit);
        fill(&mut w).await.unwrap();
        // A bound far beyond the limit, so that a write waiting for ever fails the test, not hangs it.
        let written = tokio::time::timeout(limit * 100, w.write_all(b"more")).await.expect("it fails");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        // Reads are not limited: what the far end sends still arrives.
        far.write_all(b"hi").await.unwrap();
        let mut got = [0; 2];
        w.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
    }

    /// Each wait is well under the limit, all of them together well over it: progress restarts it.
    /// (Paused time: the runtime's clock moves only by the sleeps, so no wait is longer than written.)
    #[tokio::test(start_paused = true)]
    async fn a_reader_that_keeps_reading_is_never_cut_off() {
        let limit = Duration::from_secs(1);
        let (near, mut far) = duplex(PIPE);
        let mut w = StallLimited::new(near, limit);
        let mut sink = vec![0; PIPE];
        for _ in 0..4 {
            fill(&mut w).await.unwrap();
            tokio::time::sleep(limit * 3 / 10).await;
            let _ = far.read(&mut sink).await.unwrap();
        }
        // Writes again until one waits: had the first wait's timer run on, this one would fail.
        fill(&mut w).await.unwrap();
    }
}
