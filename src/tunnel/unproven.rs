//! Connections whose peer has not yet proved it holds the key, kept apart from the ones `-n` protects.
//!
//! Anyone who can reach a `-d` end can open connections and say nothing. If those held `-n` slots, or
//! stopped the accept loop, a burst of silent connections would lock every legitimate client out for
//! the length of the handshake timeout. Instead, unproven connections have room of their own, in two
//! tiers, each with the same cap:
//! - **waiting for a hello**: when full, the oldest is closed to make room for the newest. A legitimate
//!   initiator sends its hello as soon as it connects, so it leaves this tier at its first read; an
//!   attacker's silent connections are the oldest and go first. Under a storm of legitimate
//!   connections a peer may be slow to send its hello, so the oldest goes only once it has had
//!   [`GRACE`], unless the tier is twice full. A connection chosen for closing whose
//!   hello has arrived meanwhile is still read and moves up (the caller polls the handshake first).
//! - **hello verified, waiting for the key confirmation**: getting here takes a hello made with the
//!   key, so only a peer that replays one it captured can crowd it; it is full only then, or under a
//!   burst of legitimate connections larger than the cap, and again the oldest goes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The unproven connections, oldest first in each tier.
#[derive(Debug)]
pub struct Unproven {
    /// Most connections in each tier; one more evicts that tier's oldest.
    cap: usize,
    /// The members, under one lock.
    inner: Mutex<Members>,
}

/// The members of [`Unproven`]: admission number -> when it was admitted, and the sender whose drop
/// tells that connection it was evicted.
#[derive(Debug, Default)]
struct Members {
    /// The admission number of the last connection: increasing, so the first key is the oldest.
    last: u64,
    /// Connections that have not yet sent a valid hello.
    silent: Tier,
    /// Connections whose hello was made with the key, waiting for the key confirmation.
    hello: Tier,
}

/// One tier: admission number -> when it was admitted, and the sender whose drop evicts it.
type Tier = BTreeMap<u64, (Instant, oneshot::Sender<()>)>;

/// How long a connection may stay in a full tier before a newer one may evict it: a legitimate peer's
/// next message arrives within this even on a loaded machine, so only a tier more than twice full
/// (a flood, not a storm of legitimate connections) evicts younger ones.
pub const GRACE: Duration = Duration::from_secs(1);

/// One connection's place in [`Unproven`]; it leaves the set when this is dropped.
#[derive(Debug)]
pub struct Ticket {
    /// The key of this connection's entry.
    id: u64,
    /// Completes (with an error) when the entry is evicted.
    evicted: oneshot::Receiver<()>,
    /// The set, to move up and to leave it.
    set: Arc<Unproven>,
}

impl Unproven {
    /// A set that holds at most `cap` connections (at least one) in each tier.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Unproven { cap: cap.max(1), inner: Mutex::default() })
    }

    /// Admits a new connection to the first tier, evicting that tier's oldest if it is full. Returns
    /// its ticket and whether another connection was evicted for it.
    pub fn admit(self: &Arc<Self>) -> (Ticket, bool) {
        self.admit_at(Instant::now())
    }

    /// [`Unproven::admit`] at `now`.
    fn admit_at(self: &Arc<Self>, now: Instant) -> (Ticket, bool) {
        let (tx, evicted) = oneshot::channel();
        let mut members = self.lock();
        members.last += 1;
        let id = members.last;
        let made_room = make_room(&mut members.silent, self.cap, now);
        members.silent.insert(id, (now, tx));
        (Ticket { id, evicted, set: self.clone() }, made_room)
    }

    /// Connections in both tiers now.
    pub fn len(&self) -> usize {
        let members = self.lock();
        members.silent.len() + members.hello.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most connections each tier holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        // No code that holds the lock can panic between two changes, so a poisoned lock (a panic
        // elsewhere on the thread) still guards consistent members.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Evicts the oldest of `tier` if it holds `cap` and that one has had its [`GRACE`], or if it holds
/// twice `cap` whatever their age: dropping its sender wakes that connection, which closes itself.
fn make_room(tier: &mut Tier, cap: usize, now: Instant) -> bool {
    let due = match tier.first_key_value() {
        Some((_, (admitted, _))) => {
            tier.len() >= 2 * cap || (tier.len() >= cap && now.duration_since(*admitted) >= GRACE)
        }
        None => false,
    };
    due && tier.pop_first().is_some()
}

impl Ticket {
    /// Completes when this connection has been evicted to make room for a newer one.
    pub async fn evicted(&mut self) {
        // The sender is only ever dropped, never used: an error is the eviction.
        let _ = (&mut self.evicted).await;
    }

    /// Moves the connection to the second tier once its hello has been verified, keeping its age; it
    /// may have been evicted from the first meanwhile. Evicts the second tier's oldest if it is full.
    pub fn hello_verified(&mut self) {
        self.hello_verified_at(Instant::now());
    }

    /// [`Ticket::hello_verified`] at `now`, which starts its time in the second tier.
    fn hello_verified_at(&mut self, now: Instant) {
        let (tx, evicted) = oneshot::channel();
        self.evicted = evicted;
        let mut members = self.set.lock();
        members.silent.remove(&self.id);
        make_room(&mut members.hello, self.set.cap, now);
        members.hello.insert(self.id, (now, tx));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut members = self.set.lock();
        members.silent.remove(&self.id);
        members.hello.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_evicted(ticket: &mut Ticket) -> bool {
        ticket.evicted.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed)
    }

    #[test]
    fn a_full_tier_evicts_its_oldest_member_once_it_has_had_its_grace_and_only_that_one() {
        let set = Unproven::new(2);
        let start = Instant::now();
        let (mut first, made_room) = set.admit_at(start);
        assert!(!made_room);
        let (mut second, _) = set.admit_at(start);
        let (_young, made_room) = set.admit_at(start);
        assert!(!made_room && !is_evicted(&mut first), "within its grace, the oldest stays");
        let (mut fourth, made_room) = set.admit_at(start + GRACE);
        assert!(made_room, "the fourth admission needed room");
        assert!(is_evicted(&mut first), "the oldest goes");
        assert!(!is_evicted(&mut second) && !is_evicted(&mut fourth), "the others stay");
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn a_tier_twice_full_evicts_whatever_the_age() {
        let set = Unproven::new(2);
        let now = Instant::now();
        let mut tickets: Vec<_> = (0..4).map(|_| set.admit_at(now).0).collect();
        let (_fifth, made_room) = set.admit_at(now);
        assert!(made_room && is_evicted(&mut tickets[0]), "a flood cannot wait out the grace");
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn a_connection_that_proves_the_key_leaves_the_set_and_is_never_evicted() {
        let set = Unproven::new(2);
        let late = Instant::now() + GRACE;
        let (first, _) = set.admit();
        let (mut second, _) = set.admit();
        drop(first); // the handshake finished
        assert_eq!(set.len(), 1);
        let (_third, made_room) = set.admit_at(late);
        assert!(!made_room, "there was room again");
        assert!(!is_evicted(&mut second));
        drop(second);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn silent_connections_never_evict_one_whose_hello_was_verified() {
        let set = Unproven::new(2);
        let late = Instant::now() + GRACE;
        let (mut legitimate, _) = set.admit();
        legitimate.hello_verified();
        let silent: Vec<_> = (0..10).map(|_| set.admit_at(late).0).collect();
        assert!(!is_evicted(&mut legitimate), "a flood of silent connections only evicts its own kind");
        assert_eq!(set.len(), 5, "four silent (all young, so up to twice the cap) and the verified hello");
        drop(silent);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_connection_evicted_before_its_hello_was_read_moves_up_when_the_hello_is_good() {
        let set = Unproven::new(1);
        let now = Instant::now();
        let (mut slow, _) = set.admit_at(now);
        let (_newer, made_room) = set.admit_at(now + GRACE);
        assert!(made_room && is_evicted(&mut slow), "chosen for closing");
        slow.hello_verified_at(now + GRACE); // its hello was in the socket after all
        assert!(!is_evicted(&mut slow), "a fresh place in the second tier");
        assert_eq!(set.len(), 2);
        let (mut other, _) = set.admit_at(now + GRACE * 2);
        other.hello_verified_at(now + GRACE * 2);
        assert!(is_evicted(&mut slow), "the second tier is full too: its oldest goes");
    }

    #[tokio::test]
    async fn eviction_wakes_the_evicted_connection() {
        let set = Unproven::new(1);
        let now = Instant::now();
        let (mut first, _) = set.admit_at(now);
        let waiting = tokio::spawn(async move { first.evicted().await });
        let _second = set.admit_at(now + GRACE);
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken").expect("no panic");
    }
}
