//! How fast an overloaded hasher answers the requests it has no room for.
//!
//! A login the hashing queue cannot take is refused with
//! `SERVICE_UNAVAILABLE`. A client that resends at once (a script, a retry
//! loop without backoff, wrk's closed loop) turns every quick refusal into
//! another request. Measured on 2 cores with 32 such connections, Warden
//! answered about 19,000 refusals a second and completed 4 logins a second
//! instead of 13: parsing the refusals took the CPU that the hashing
//! threads, at the lowest priority, would have had.
//!
//! So refusals leave at a pace: while they come slower than one per
//! [`INTERVAL`] each is answered at once; faster, each waits for its slot,
//! asleep (it costs a timer, no CPU). A resending client is slowed to the
//! pace, and the executor spends at most a few percent of a core on them.
//! No refusal waits longer than [`MAX_DELAY`]: past it the slots are not
//! taken, so a flood of many more connections than that holds (each is a
//! sleeping request, bounded by `WARDEN_MAX_CONNECTIONS`) cannot push the
//! wait of the next refusal further out.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;

/// The gap between two refusals answered at the pace: 500 a second, at
/// about 0.1 ms of executor time each, is 5% of a core.
pub const INTERVAL: Duration = Duration::from_millis(2);
/// The longest a refusal waits for its slot.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// A GCRA-like pace of refusals, shared by every request of the process.
#[derive(Debug)]
pub struct RefusalPace {
    origin: Instant,
    /// The next free slot, in nanoseconds after `origin`.
    next: AtomicU64,
    interval: u64,
    max_delay: u64,
}

impl Default for RefusalPace {
    fn default() -> Self {
        Self::new(INTERVAL, MAX_DELAY)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RefusalPace {
    /// A pace of one refusal per `interval`, none waiting past `max_delay`.
    pub fn new(interval: Duration, max_delay: Duration) -> Self {
        Self {
            origin: Instant::now(),
            next: AtomicU64::new(0),
            interval: nanos(interval),
            max_delay: nanos(max_delay),
        }
    }

    /// How long a refusal asked for at `now` waits before it is answered,
    /// taking its slot: zero while refusals come slower than the pace.
    pub fn delay_at(&self, now: Instant) -> Duration {
        let now = nanos(now.saturating_duration_since(self.origin));
        let mut next = self.next.load(Ordering::Acquire);
        loop {
            let slot = next.max(now);
            let wait = slot - now;
            if wait >= self.max_delay {
                // The pace is full a whole `max_delay` ahead: wait that long
                // and leave the slots to those already waiting.
                return Duration::from_nanos(self.max_delay);
            }
            match self.next.compare_exchange_weak(
                next,
                slot.saturating_add(self.interval),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Duration::from_nanos(wait),
                Err(actual) => next = actual,
            }
        }
    }

    /// Waits out the delay of a refusal asked for now.
    pub async fn wait_turn(&self) {
        let delay = self.delay_at(Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn refusals_slower_than_the_pace_are_answered_at_once() {
        let pace = RefusalPace::new(2 * MS, 1000 * MS);
        let t0 = pace.origin;
        for n in 0..10u32 {
            assert_eq!(pace.delay_at(t0 + n * 3 * MS), Duration::ZERO, "{n}");
        }
    }

    #[test]
    fn a_burst_is_spread_over_slots_and_no_refusal_waits_past_the_cap() {
        let pace = RefusalPace::new(2 * MS, 100 * MS);
        let t0 = pace.origin + 5 * MS;
        let delays: Vec<Duration> = (0..200).map(|_| pace.delay_at(t0)).collect();
        // Slots 0, 2, …, 98 ms are taken in order; the rest wait the cap.
        for (n, delay) in delays.iter().enumerate().take(50) {
            assert_eq!(*delay, 2 * MS * n as u32, "refusal {n}");
        }
        assert!(delays[50..].iter().all(|d| *d == 100 * MS), "{delays:?}");
        // The capped ones took no slot: 10 ms on, the pace is 90 ms out.
        assert_eq!(pace.delay_at(t0 + 10 * MS), 90 * MS);
        // Once the backlog has gone, refusals are answered at once again.
        assert_eq!(pace.delay_at(t0 + 200 * MS), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_a_turn_sleeps_for_the_slot() {
        let pace = RefusalPace::new(2 * MS, 1000 * MS);
        let start = Instant::now();
        for _ in 0..5 {
            pace.wait_turn().await;
        }
        // Each turn was taken after the previous one had waited: the fifth
        // refusal left 4 intervals after the first.
        assert_eq!(start.elapsed(), 8 * MS);
    }
}
