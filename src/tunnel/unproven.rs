//! Connections whose peer has not yet proved it holds the key, kept apart from the ones `-n` protects.
//!
//! Anyone who can reach a `-d` end can open connections and say nothing. If those held `-n` slots, or
//! stopped the accept loop, a burst of silent connections would lock every legitimate client out for
//! the length of the handshake timeout. Instead, unproven connections have a cap of their own; when it
//! is full, the oldest one is closed to make room for the newest. A legitimate initiator sends its hello
//! as soon as it connects and proves the key one round trip later, so it is the newest for the short
//! time it needs; an attacker's silent connections are the oldest and go first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The set of unproven connections, oldest first.
#[derive(Debug)]
pub struct Unproven {
    /// Most connections in the set; admitting one more evicts the oldest.
    cap: usize,
    /// The members, under one lock.
    inner: Mutex<Members>,
}

/// The members of [`Unproven`].
#[derive(Debug, Default)]
struct Members {
    /// The admission number of the last connection: increasing, so the first key is the oldest.
    last: u64,
    /// Admission number -> the sender whose drop tells that connection it was evicted.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One connection's place in [`Unproven`]; it leaves the set when this is dropped.
#[derive(Debug)]
pub struct Ticket {
    /// The key of this connection's entry.
    id: u64,
    /// Completes (with an error) when the entry is evicted.
    evicted: oneshot::Receiver<()>,
    /// The set, to leave it on drop.
    set: Arc<Unproven>,
}

impl Unproven {
    /// A set that holds at most `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Unproven { cap: cap.max(1), inner: Mutex::default() })
    }

    /// Admits a new connection, evicting the oldest if the set is full. Returns its ticket and whether
    /// another connection was evicted for it.
    pub fn admit(self: &Arc<Self>) -> (Ticket, bool) {
        let (tx, evicted) = oneshot::channel();
        let mut members = self.lock();
        // Dropping the oldest sender wakes its connection, which closes itself.
        let made_room = members.waiting.len() >= self.cap && members.waiting.pop_first().is_some();
        members.last += 1;
        let id = members.last;
        members.waiting.insert(id, tx);
        (Ticket { id, evicted, set: self.clone() }, made_room)
    }

    /// Connections in the set now.
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most connections the set holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        // No code that holds the lock can panic between two changes, so a poisoned lock (a panic
        // elsewhere on the thread) still guards consistent members.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Ticket {
    /// Completes when this connection has been evicted to make room for a newer one.
    pub async fn evicted(&mut self) {
        // The sender is only ever dropped, never used: an error is the eviction.
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.set.lock().waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_evicted(ticket: &mut Ticket) -> bool {
        ticket.evicted.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed)
    }

    #[test]
    fn a_full_set_evicts_its_oldest_member_and_only_that_one() {
        let set = Unproven::new(2);
        let (mut first, made_room) = set.admit();
        assert!(!made_room);
        let (mut second, _) = set.admit();
        let (mut third, made_room) = set.admit();
        assert!(made_room, "the third admission needed room");
        assert!(is_evicted(&mut first), "the oldest goes");
        assert!(!is_evicted(&mut second) && !is_evicted(&mut third), "the others stay");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn a_connection_that_proves_the_key_leaves_the_set_and_is_never_evicted() {
        let set = Unproven::new(2);
        let (first, _) = set.admit();
        let (mut second, _) = set.admit();
        drop(first); // the handshake finished
        assert_eq!(set.len(), 1);
        let (_third, made_room) = set.admit();
        assert!(!made_room, "there was room again");
        assert!(!is_evicted(&mut second));
        drop(second);
        assert_eq!(set.len(), 1);
    }

    #[tokio::test]
    async fn eviction_wakes_the_evicted_connection() {
        let set = Unproven::new(1);
        let (mut first, _) = set.admit();
        let waiting = tokio::spawn(async move { first.evicted().await });
        let _second = set.admit();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("woken")
            .expect("no panic");
    }
}
