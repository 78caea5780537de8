//! One lockout counter as pure arithmetic, apart from storage: its policy
//! (threshold, window, duration), a reservation against it ([`reserve`]),
//! and giving one back ([`give_back`]).

use chrono::{DateTime, TimeDelta, Utc};

use crate::{clock::delta, config::Config};

/// Threshold, window and duration of one counter.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts per window that arm the lock.
    pub threshold: u32,
    /// How long attempts count.
    pub window: TimeDelta,
    /// How long a lock lasts.
    pub duration: TimeDelta,
}

impl Policy {
    /// A client's counter, from `WARDEN_LOCKOUT_*`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            threshold: config.lockout_threshold.max(1),
            window: delta(config.lockout_window),
            duration: delta(config.lockout_duration),
        }
    }

    /// The email's counter: `WARDEN_LOCKOUT_GLOBAL_THRESHOLD` in a window
    /// closes the email to untrusted clients until a window has passed.
    pub fn global_from_config(config: &Config) -> Self {
        let window = delta(config.lockout_window);
        Self {
            threshold: config.lockout_global_threshold.max(1),
            window,
            duration: window,
        }
    }
}

/// Both policies.
#[derive(Clone, Copy, Debug)]
pub struct Policies {
    /// Per email and client.
    pub client: Policy,
    /// Per email, from every client.
    pub email: Policy,
}

impl Policies {
    /// The configured policies.
    pub fn from_config(config: &Config) -> Self {
        Self {
            client: Policy::from_config(config),
            email: Policy::global_from_config(config),
        }
    }
}

/// One counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Attempts reserved in this window.
    pub attempts: u32,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// Locked until then, if set and in the future.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Counter {
    /// No attempts yet, the window starting `now`.
    pub fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            attempts: 0,
            window_started_at: now,
            locked_until: None,
        }
    }
}

/// Whether one counter lets an attempt check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Counted. `arms_lock`: this attempt reached the threshold, so the
    /// lock is on unless its password turns out right.
    Proceed {
        /// This attempt armed the lock.
        arms_lock: bool,
    },
    /// Locked: refuse without checking anything.
    Locked {
        /// When the lock ends.
        until: DateTime<Utc>,
    },
}

/// The pure state transition of one counter's reservation.
pub fn reserve(current: Option<Counter>, now: DateTime<Utc>, policy: Policy) -> (Counter, Step) {
    if let Some(counter) = current {
        if let Some(until) = counter.locked_until.filter(|until| *until > now) {
            return (counter, Step::Locked { until });
        }
    }
    let fresh = Counter::fresh(now);
    let mut counter = match current {
        // An expired lock or an expired window starts over.
        Some(c) if c.locked_until.is_none() && c.window_started_at + policy.window > now => c,
        _ => fresh,
    };
    counter.attempts = counter.attempts.saturating_add(1);
    let arms_lock = counter.attempts >= policy.threshold;
    if arms_lock {
        counter.locked_until = Some(now + policy.duration);
    }
    (counter, Step::Proceed { arms_lock })
}

/// The state transition of giving a reservation back: one attempt fewer,
/// and the lock gone if this attempt armed it. (If the window started over
/// while the attempt waited, the attempt it takes back is the new window's:
/// at worst one guess more, and only for an attempt the server refused.)
pub fn give_back(counter: Counter, armed_lock: bool) -> Counter {
    Counter {
        attempts: counter.attempts.saturating_sub(1),
        locked_until: if armed_lock {
            None
        } else {
            counter.locked_until
        },
        ..counter
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client policy: 3 failures in 15 minutes lock for 15 minutes.
    pub(in crate::services::lockout) fn policy() -> Policy {
        Policy {
            threshold: 3,
            window: TimeDelta::minutes(15),
            duration: TimeDelta::minutes(15),
        }
    }

    /// A fixed instant to count from.
    pub(in crate::services::lockout) fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn the_threshold_attempt_arms_the_lock_and_later_ones_are_refused() {
        let mut state = None;
        let mut verdicts = Vec::new();
        for _ in 0..5 {
            let (next, verdict) = reserve(state, t0(), policy());
            state = Some(next);
            verdicts.push(verdict);
        }
        let until = t0() + TimeDelta::minutes(15);
        assert_eq!(
            verdicts,
            [
                Step::Proceed { arms_lock: false },
                Step::Proceed { arms_lock: false },
                Step::Proceed { arms_lock: true },
                Step::Locked { until },
                Step::Locked { until },
            ]
        );
    }

    #[test]
    fn a_lock_ends_after_its_duration_and_counting_starts_over() {
        let (s1, _) = reserve(
            None,
            t0(),
            Policy {
                threshold: 1,
                ..policy()
            },
        );
        let later = t0() + TimeDelta::minutes(15);
        let (s2, verdict) = reserve(
            Some(s1),
            later,
            Policy {
                threshold: 2,
                ..policy()
            },
        );
        assert_eq!(verdict, Step::Proceed { arms_lock: false });
        assert_eq!(s2.attempts, 1);
        assert_eq!(s2.locked_until, None);
    }

    #[test]
    fn attempts_outside_the_window_do_not_add_up() {
        let (s1, _) = reserve(None, t0(), policy());
        let (s2, _) = reserve(Some(s1), t0() + TimeDelta::minutes(1), policy());
        let (s3, verdict) = reserve(Some(s2), t0() + TimeDelta::minutes(16), policy());
        assert_eq!(s3.attempts, 1);
        assert_eq!(verdict, Step::Proceed { arms_lock: false });
    }

    #[test]
    fn giving_back_the_arming_attempt_unlocks_and_uncounts_it() {
        let mut state = None;
        for _ in 0..3 {
            state = Some(reserve(state, t0(), policy()).0);
        }
        let armed = state.unwrap_or_else(|| panic!("three reservations were made"));
        assert!(armed.locked_until.is_some());
        let back = give_back(armed, true);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.locked_until, None);
        let (_, verdict) = reserve(Some(back), t0(), policy());
        assert_eq!(
            verdict,
            Step::Proceed { arms_lock: true },
            "the next attempt arms it again"
        );
        let plain = give_back(back, false);
        assert_eq!((plain.attempts, plain.window_started_at), (1, t0()));
        assert_eq!(
            give_back(give_back(plain, false), false).attempts,
            0,
            "never below zero"
        );
    }
}
