//! The idle timeout (`--idle-timeout`): a connection with no data either way for that long is closed
//! cleanly at both ends, as a policy end rather than a failure.
//!
//! The data path pays per burst, not per record: each direction of the pump marks its [`Lane`] busy when
//! its socket wakes it and quiet, with the time, when it parks again with nothing in hand (a clock read
//! and two relaxed stores). One [`Timer`] per connection decides: it sleeps until the earliest moment
//! both lanes could have been quiet for the timeout, and when it wakes and finds them so, it moves the
//! connection's [`Phase`] on; otherwise it sleeps again until the new earliest moment.
//!
//! Directions learn of a new phase where they park on their socket. The check there registers no waker:
//! it relies on the pump polling both directions again after every phase change, which it does, as the
//! timer and the directions are branches of one `select!` loop, and each new `select!` polls every
//! branch still running.
//!
//! Only a connection given a timeout holds a [`Watch`], on the heap; one without it holds an empty
//! pointer's worth of state for it, and its directions never read the clock.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

/// A lane's value while its direction holds data (between a wake and the end of the write it causes,
/// or while part of a record waits for the rest): never idle, whatever the clock says.
const BUSY: u64 = u64::MAX;

/// Where a connection is in its idle life. Ordered: a connection only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Data may move; the timer is watching.
    Open = 0,
    /// Both directions were quiet for the timeout. The sealing direction ends its stream as if its
    /// plaintext source had ended (the native end record, then a FIN; a FIN alone on classic); the
    /// opening direction half-closes its plaintext side and waits for the peer end's own end of stream,
    /// refusing any data.
    Closing = 1,
    /// One more timeout has passed since [`Phase::Closing`] without the peer end ending its stream: the
    /// opening direction stops waiting for it, and the connection's sockets are closed (every FIN this
    /// end owes has been sent). A sealing direction whose end of stream is still unsent then (the peer
    /// end reads nothing) gives up, and the connection is reset.
    Over = 2,
}

impl Phase {
    /// The phase whose discriminant is `value`; anything larger is the last phase.
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Open,
            1 => Phase::Closing,
            _ => Phase::Over,
        }
    }
}

/// One direction of the pump, as the timer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Plaintext in, records out.
    Sealing = 0,
    /// Records in, plaintext out.
    Opening = 1,
}

/// A connection's idle state and its timer, together on the heap; [`Watch::parts`] lends the first
/// to the directions and the second to the pump.
#[derive(Debug)]
pub struct Watch {
    /// What the directions mark and the timer reads.
    activity: Activity,
    /// The connection's one timer.
    timer: Timer,
}

/// What the directions share with the timer: when each last moved data, and the phase.
#[derive(Debug)]
pub struct Activity {
    /// The clock's origin for this connection: lanes hold nanoseconds since it, so that a time fits in
    /// one atomic word (for 584 years).
    start: Instant,
    /// Per [`Side`]: [`BUSY`], or the tick since which that direction has been quiet.
    lanes: [AtomicU64; 2],
    /// The [`Phase`], as its discriminant.
    phase: AtomicU8,
}

/// One direction's handle on the [`Activity`].
#[derive(Debug, Clone, Copy)]
pub struct Lane<'a> {
    /// The connection's activity.
    activity: &'a Activity,
    /// Which lane is this direction's.
    side: Side,
}

/// The pump's side of the watch: the timeout, and the sleep that is re-armed rather than re-created.
#[derive(Debug)]
pub struct Timer {
    /// `--idle-timeout`.
    timeout: Duration,
    /// Sleeps until the next moment worth looking; boxed, as a `Sleep` must stay where it is once polled.
    sleep: Pin<Box<Sleep>>,
}

/// What the timer concludes when it wakes, from the lanes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Both directions have been quiet for the timeout.
    Idle,
    /// Not yet: look again at this tick.
    LookAt(u64),
}

impl Watch {
    /// A watch for a connection whose pump starts now, both directions counted quiet from now.
    pub fn new(timeout: Duration) -> Box<Watch> {
        let start = Instant::now();
        Box::new(Watch {
            activity: Activity {
                start,
                lanes: [AtomicU64::new(0), AtomicU64::new(0)],
                phase: AtomicU8::new(Phase::Open as u8),
            },
            timer: Timer { timeout, sleep: Box::pin(sleep_until(start + timeout)) },
        })
    }

    /// The activity, for the directions, and the timer, for the pump.
    pub fn parts(&mut self) -> (&Activity, &mut Timer) {
        (&self.activity, &mut self.timer)
    }
}

impl Activity {
    /// The handle of the direction on `side`.
    pub fn lane(&self, side: Side) -> Lane<'_> {
        Lane { activity: self, side }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// `at` as a tick of this connection's clock.
    fn tick(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(BUSY - 1)
    }

    /// Both lanes as they are now.
    fn lanes(&self) -> [u64; 2] {
        [self.lanes[0].load(Ordering::Relaxed), self.lanes[1].load(Ordering::Relaxed)]
    }
}

impl Lane<'_> {
    /// The direction holds data: not idle, however long that lasts.
    pub fn busy(self) {
        self.activity.lanes[self.side as usize].store(BUSY, Ordering::Relaxed);
    }

    /// The direction holds nothing and has moved no data since now.
    pub fn quiet(self) {
        let now = self.activity.tick(Instant::now());
        self.activity.lanes[self.side as usize].store(now, Ordering::Relaxed);
    }

    /// The connection's phase.
    pub fn phase(self) -> Phase {
        self.activity.phase()
    }

    /// Completes with the phase once it is past `seen`. Registers no waker: see the module's docs for
    /// why the pump's loop makes that enough.
    pub fn past(self, seen: Phase) -> impl Future<Output = Phase> {
        std::future::poll_fn(move |_| match self.activity.phase() {
            phase if phase > seen => Poll::Ready(phase),
            _ => Poll::Pending,
        })
    }
}

impl Timer {
    /// Completes when the connection moves to its next phase, having moved it: to [`Phase::Closing`]
    /// once both lanes have been quiet for the timeout, to [`Phase::Over`] one timeout after that.
    /// Never completes once the phase is [`Phase::Over`].
    pub fn next_phase<'a>(&'a mut self, activity: &'a Activity) -> impl Future<Output = Phase> + 'a {
        std::future::poll_fn(move |cx| self.poll_next_phase(cx, activity))
    }

    /// [`Timer::next_phase`] as a poll, so that the pump's state holds two pointers for it, not a
    /// future's saved locals.
    fn poll_next_phase(&mut self, cx: &mut Context<'_>, activity: &Activity) -> Poll<Phase> {
        loop {
            if activity.phase() == Phase::Over {
                return Poll::Pending;
            }
            ready!(self.sleep.as_mut().poll(cx));
            let now = Instant::now();
            let next = match activity.phase() {
                Phase::Open => match verdict(activity.tick(now), ticks(self.timeout), activity.lanes()) {
                    Verdict::Idle => Phase::Closing,
                    Verdict::LookAt(tick) => {
                        self.sleep.as_mut().reset(activity.start + Duration::from_nanos(tick));
                        continue;
                    }
                },
                Phase::Closing | Phase::Over => Phase::Over,
            };
            activity.phase.store(next as u8, Ordering::Relaxed);
            self.sleep.as_mut().reset(now + self.timeout);
            return Poll::Ready(next);
        }
    }

    /// The timeout being enforced.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Waits for the next phase of `timer`, if there is one; never completes without.
pub fn next_phase<'a>(
    mut timer: Option<&'a mut Timer>,
    activity: Option<&'a Activity>,
) -> impl Future<Output = Phase> + 'a {
    std::future::poll_fn(move |cx| match (timer.as_deref_mut(), activity) {
        (Some(timer), Some(activity)) => timer.poll_next_phase(cx, activity),
        _ => Poll::Pending,
    })
}

/// `duration` in ticks (nanoseconds); `--idle-timeout` is at most 10^9 s, far below the limit.
fn ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(BUSY - 1)
}

/// Whether a connection whose lanes read `lanes` at tick `now` has been idle for `timeout` ticks, and
/// if not, when to look again: when the later of the two quiet times is `timeout` old, or, while a
/// direction is busy, a whole timeout from now (a busy direction is at least that far from idle).
fn verdict(now: u64, timeout: u64, lanes: [u64; 2]) -> Verdict {
    if lanes.contains(&BUSY) {
        return Verdict::LookAt(now.saturating_add(timeout));
    }
    let last = lanes[0].max(lanes[1]);
    match last.saturating_add(timeout) {
        due if due <= now => Verdict::Idle,
        due => Verdict::LookAt(due),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000;

    #[test]
    fn quiet_for_the_timeout_on_both_lanes_is_idle() {
        assert_eq!(verdict(T, T, [0, 0]), Verdict::Idle);
        assert_eq!(verdict(5 * T, T, [4 * T, 3 * T]), Verdict::Idle);
        assert_eq!(verdict(10 * T, T, [0, 2 * T]), Verdict::Idle, "long past due");
    }

    #[test]
    fn the_later_lane_decides_when_to_look_again() {
        assert_eq!(verdict(T / 2, T, [0, 0]), Verdict::LookAt(T));
        assert_eq!(verdict(T, T, [0, T / 2]), Verdict::LookAt(T + T / 2), "one lane moved later");
        assert_eq!(verdict(3 * T, T, [2 * T + 1, 0]), Verdict::LookAt(3 * T + 1));
    }

    #[test]
    fn a_busy_lane_is_never_idle_and_puts_the_next_look_a_timeout_away() {
        assert_eq!(verdict(10 * T, T, [BUSY, 0]), Verdict::LookAt(11 * T));
        assert_eq!(verdict(10 * T, T, [0, BUSY]), Verdict::LookAt(11 * T));
        assert_eq!(verdict(10 * T, T, [BUSY, BUSY]), Verdict::LookAt(11 * T));
    }

    #[test]
    fn ticks_and_deadlines_do_not_overflow_at_the_largest_timeout() {
        let largest = ticks(Duration::from_secs_f64(crate::cli::MAX_SECONDS));
        assert!(largest < BUSY - 1);
        assert_eq!(verdict(0, largest, [0, 0]), Verdict::LookAt(largest));
        assert_eq!(verdict(BUSY - 2, largest, [BUSY - 3, 0]), Verdict::LookAt(BUSY));
    }

    #[tokio::test]
    async fn lanes_record_busy_and_quiet_and_phases_only_move_forward() {
        let mut watch = Watch::new(Duration::from_secs(3600));
        let (activity, _) = watch.parts();
        let (sealing, opening) = (activity.lane(Side::Sealing), activity.lane(Side::Opening));
        assert_eq!(activity.lanes(), [0, 0], "quiet from the start");
        sealing.busy();
        assert_eq!(activity.lanes(), [BUSY, 0]);
        opening.quiet();
        sealing.quiet();
        let [s, o] = activity.lanes();
        assert!(s != BUSY && s >= o, "quiet since now: {s} after {o}");
        for (stored, phase) in [(0, Phase::Open), (1, Phase::Closing), (2, Phase::Over)] {
            assert_eq!(Phase::from_u8(stored), phase);
            assert_eq!(phase as u8, stored);
        }
        assert!(Phase::Open < Phase::Closing && Phase::Closing < Phase::Over);
    }

    #[tokio::test]
    async fn a_quiet_connection_closes_then_is_over_and_a_waiting_lane_sees_each_phase() {
        let mut watch = Watch::new(Duration::from_millis(20));
        let (activity, timer) = watch.parts();
        let lane = activity.lane(Side::Opening);
        assert!(poll_once(lane.past(Phase::Open)).is_none(), "nothing to see while open");
        assert_eq!(timer.next_phase(activity).await, Phase::Closing);
        assert_eq!(poll_once(lane.past(Phase::Open)), Some(Phase::Closing));
        assert!(poll_once(lane.past(Phase::Closing)).is_none());
        assert_eq!(timer.next_phase(activity).await, Phase::Over);
        assert_eq!(poll_once(lane.past(Phase::Closing)), Some(Phase::Over));
        let after = tokio::time::timeout(Duration::from_millis(60), timer.next_phase(activity)).await;
        assert!(after.is_err(), "nothing comes after Over");
    }

    #[tokio::test]
    async fn a_busy_lane_holds_the_connection_open_until_it_goes_quiet() {
        let mut watch = Watch::new(Duration::from_millis(20));
        let (activity, timer) = watch.parts();
        activity.lane(Side::Sealing).busy();
        let held = tokio::time::timeout(Duration::from_millis(100), timer.next_phase(activity)).await;
        assert!(held.is_err(), "a busy lane is never idle");
        assert_eq!(activity.phase(), Phase::Open);
        activity.lane(Side::Sealing).quiet();
        assert_eq!(timer.next_phase(activity).await, Phase::Closing);
    }

    /// Polls `future` once: its output if it is ready.
    fn poll_once<F: Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }
}
