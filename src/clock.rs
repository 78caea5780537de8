//! The only place that reads the time.
//!
//! Expiry, lockout, cleanup cutoffs and token timestamps all take the time
//! from an injected [`Clock`], so tests move time forward instead of sleeping.
//! `clippy.toml` forbids reading the clock anywhere else.

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A source of "now". Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Microseconds added to the system time; only tests change it.
    offset_micros: Arc<AtomicI64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The real time.
    pub fn system() -> Self {
        Self {
            offset_micros: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Now, truncated to microseconds: the precision Postgres stores, so a
    /// time written and read back compares equal on every backend.
    pub fn now(&self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read
        let real = Utc::now();
        let shifted = real + TimeDelta::microseconds(self.offset_micros.load(Ordering::Relaxed));
        shifted
            .duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(shifted)
    }

    /// Moves this clock (and every clone of it) forward. For tests.
    pub fn advance(&self, by: std::time::Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Converts a configured duration to chrono's, saturating at 100 years.
pub fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or_else(|_| TimeDelta::days(36_500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = clock.now();
        other.advance(std::time::Duration::from_secs(3600));
        assert!(clock.now() - before >= TimeDelta::seconds(3600));
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(Clock::system().now().timestamp_subsec_nanos() % 1000, 0);
    }
}
