//! The delay link's timers: one thread that wakes each waiting task at its instant, to within the
//! kernel's timer slack (tens of microseconds). tokio's own timers count whole milliseconds and fire
//! at the first tick after the deadline, about 1 ms late on average: a tenth of the one-way delay at
//! R = 20 ms, added again at every hop, so paths with more round trips would look slower than they are.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Result;
use tokio::sync::oneshot;

/// A clock thread, stopped when dropped.
pub struct Clock {
    /// What the thread and the waiting tasks share.
    shared: Arc<Shared>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

/// A handle the tasks wait on, cloned into each.
#[derive(Clone)]
pub struct Alarms(Arc<Shared>);

struct Shared {
    state: Mutex<State>,
    /// Signalled when an alarm earlier than all others is set, or the clock stops.
    changed: Condvar,
}

struct State {
    /// The alarms set, earliest first.
    due: BinaryHeap<Reverse<Alarm>>,
    /// Tells alarms at the same instant apart, in the order they were set.
    next: u64,
    /// Set when the clock is dropped.
    stopped: bool,
}

/// One waiting task: its instant, and where to wake it.
struct Alarm {
    at: Instant,
    order: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Alarm {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Alarm {}

impl PartialOrd for Alarm {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Alarm {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl Clock {
    /// Starts the clock's thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start() -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { due: BinaryHeap::new(), next: 0, stopped: false }),
            changed: Condvar::new(),
        });
        let ticking = shared.clone();
        let thread = std::thread::Builder::new().name("delay-clock".into()).spawn(move || ticking.run())?;
        Ok(Self { shared, thread: Some(thread) })
    }

    /// A handle to wait on the clock with.
    pub fn alarms(&self) -> Alarms {
        Alarms(self.shared.clone())
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Alarms {
    /// Waits until `at` (at once if it has passed, or if the clock has stopped).
    pub async fn sleep_until(&self, at: Instant) {
        if at <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut state = self.0.lock();
            let earliest = state.due.peek().is_none_or(|Reverse(first)| at < first.at);
            let order = state.next;
            state.next += 1;
            state.due.push(Reverse(Alarm { at, order, wake }));
            if earliest {
                self.0.changed.notify_one();
            }
        }
        // An error means the clock stopped and dropped the alarm: nothing is left to wait for.
        let _ = woken.await;
    }
}

impl Shared {
    /// The state, even if a thread panicked holding it: every update leaves it whole.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clock's thread: wakes every alarm that is due, then sleeps until the next.
    fn run(&self) {
        let mut state = self.lock();
        while !state.stopped {
            let now = Instant::now();
            while state.due.peek().is_some_and(|Reverse(first)| first.at <= now) {
                if let Some(Reverse(alarm)) = state.due.pop() {
                    let _ = alarm.wake.send(());
                }
            }
            state = match state.due.peek() {
                Some(Reverse(first)) => {
                    let wait = first.at - now;
                    self.changed.wait_timeout(state, wait).unwrap_or_else(|poisoned| poisoned.into_inner()).0
                }
                None => self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }
}
