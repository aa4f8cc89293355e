//! The two stages of stopping, as every connection sees them: after the first signal the accept loop
//! stops and live connections finish on their own; after a second one, each connection resets its sockets
//! (an RST, never a FIN on data that did not all arrive) and returns, so the daemon still exits through
//! its normal path and removes its pid file and socket.

use tokio::sync::watch;

/// Sends the forced stop to every connection.
#[derive(Debug)]
pub struct AbortSender(watch::Sender<bool>);

/// A connection's view of the forced stop.
#[derive(Debug, Clone)]
pub struct Abort(watch::Receiver<bool>);

/// A linked sender and receiver; clone the receiver for each connection.
pub fn abort_channel() -> (AbortSender, Abort) {
    let (tx, rx) = watch::channel(false);
    (AbortSender(tx), Abort(rx))
}

impl AbortSender {
    /// Tells every connection to reset its sockets and return.
    pub fn abort_all(&self) {
        self.0.send_replace(true);
    }
}

impl Abort {
    /// An abort that never comes: for callers with no forced stop (tests, benchmarks).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // With its sender gone, `requested` pends forever.
        drop(tx);
        Abort(rx)
    }

    /// Completes once the forced stop has been asked for; never, if it is not.
    pub async fn requested(&mut self) {
        if self.0.wait_for(|&aborted| aborted).await.is_err() {
            // The sender is gone without asking: nothing will ever ask.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_receiver_sees_the_abort_even_one_cloned_after_it() {
        let (tx, rx) = abort_channel();
        let mut early = rx.clone();
        tx.abort_all();
        let mut late = rx.clone();
        for abort in [&mut early, &mut late] {
            tokio::time::timeout(Duration::from_secs(10), abort.requested()).await.expect("seen");
        }
    }

    #[tokio::test]
    async fn no_abort_without_the_signal() {
        let mut never = Abort::never();
        assert!(tokio::time::timeout(Duration::from_millis(20), never.requested()).await.is_err());
        let (_tx, mut rx) = abort_channel();
        assert!(tokio::time::timeout(Duration::from_millis(20), rx.requested()).await.is_err());
    }
}
