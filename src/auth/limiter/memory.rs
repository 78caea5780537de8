//! [`MemoryLimiter`]: GCRA in this process, the default store and the
//! fallback of [`Failover`](super::failover::Failover).
//!
//! It is governor's GCRA (the same constants, [`GcraParams`], from the same
//! [`governor_quota`](super::store::governor_quota)) written out step for
//! step like the Lua script of the Redis store, rather than governor's own
//! keyed limiter: that one answers only "allowed" or "wait", and the
//! `RateLimit` header needs what is left and when the bucket is full again.
//! Keeping the bucket's TAT here gives both, with the same arithmetic as
//! Redis, so the two stores agree for the same sequence of checks.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use governor::clock::{Clock as GovernorClock, DefaultClock, Reference};

use futures::future::BoxFuture;

use super::{
    gcra::GcraParams,
    store::{BucketState, LimiterError, Quotas, RateLimitStore},
};
use crate::config::Rule;

/// One rule's buckets: key → TAT, in nanoseconds since the limiter started.
/// A missing key (or a TAT in the past) is a full bucket.
#[derive(Default)]
struct Buckets(Mutex<HashMap<String, u64>>);

impl Buckets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // Each update is one insert: a poisoned map is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// GCRA buckets in this process.
pub struct MemoryLimiter<C: GovernorClock = DefaultClock> {
    /// One map per rule, at [`Rule::index`].
    buckets: Vec<Buckets>,
    quotas: Quotas,
    clock: C,
    /// Time zero of the TATs.
    start: C::Instant,
}

impl MemoryLimiter<DefaultClock> {
    /// A limiter on the real clock.
    pub fn new(quotas: Quotas) -> Self {
        Self::with_clock(quotas, DefaultClock::default())
    }
}

impl<C: GovernorClock + Clone> MemoryLimiter<C> {
    /// A limiter on `clock` (governor's fake clock in tests).
    pub fn with_clock(quotas: Quotas, clock: C) -> Self {
        let buckets = Rule::ALL.iter().map(|_| Buckets::default()).collect();
        let start = clock.now();
        Self {
            buckets,
            quotas,
            clock,
            start,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    /// Spends one unit, synchronously: the GCRA step of the Redis script.
    /// Refused when `TAT - now > tau`, and nothing changes; otherwise the
    /// TAT becomes `max(TAT, now) + t`.
    pub fn check_now(&self, rule: Rule, key: &str) -> BucketState {
        let quota = self.quotas.get(rule);
        let params = GcraParams::of(quota);
        let now = self.now_ns();
        let Some(buckets) = self.buckets.get(rule.index()) else {
            return BucketState::from_gcra(rule, quota, true, 0, params.t_ns, params.tau_ns);
        };
        let mut map = buckets.lock();
        let tat = map.get(key).copied().unwrap_or(now);
        let d = tat.saturating_sub(now);
        if d > params.tau_ns {
            return BucketState::from_gcra(rule, quota, false, d, params.t_ns, params.tau_ns);
        }
        let next = d.saturating_add(params.t_ns);
        match map.get_mut(key) {
            Some(stored) => *stored = now.saturating_add(next),
            None => {
                map.insert(key.to_owned(), now.saturating_add(next));
            }
        }
        BucketState::from_gcra(rule, quota, true, next, params.t_ns, params.tau_ns)
    }

    /// Forgets full buckets (TAT passed): they mean the same as no entry.
    fn forget_full(&self) {
        let now = self.now_ns();
        for buckets in &self.buckets {
            let mut map = buckets.lock();
            map.retain(|_, tat| *tat > now);
            map.shrink_to_fit();
        }
    }
}

impl<C> RateLimitStore for MemoryLimiter<C>
where
    C: GovernorClock + Clone + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    fn check<'a>(
        &'a self,
        rule: Rule,
        key: &'a str,
    ) -> BoxFuture<'a, Result<BucketState, LimiterError>> {
        let state = self.check_now(rule, key);
        Box::pin(async move { Ok(state) })
    }

    fn housekeeping(&self) {
        self.forget_full();
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::{auth::limiter::store::Decision, config::RateQuota};

    #[test]
    fn a_burst_is_the_count_and_units_come_back_one_per_period() {
        let clock = FakeRelativeClock::default();
        let quota: RateQuota = "3/min".parse().unwrap();
        let limiter = MemoryLimiter::with_clock(Quotas::uniform(quota), clock.clone());
        for _ in 0..3 {
            assert_eq!(
                limiter.check_now(Rule::LoginIp, "1.2.3.4").decision(),
                Decision::Allow
            );
        }
        let Decision::Deny { retry_after } = limiter.check_now(Rule::LoginIp, "1.2.3.4").decision()
        else {
            panic!("the fourth unit is refused");
        };
        assert_eq!(retry_after, Duration::from_secs(20));
        assert_eq!(
            limiter.check_now(Rule::LoginIp, "5.6.7.8").decision(),
            Decision::Allow,
            "keys are separate"
        );
        assert_eq!(
            limiter.check_now(Rule::RefreshIp, "1.2.3.4").decision(),
            Decision::Allow,
            "rules are separate"
        );
        clock.advance(Duration::from_secs(20));
        assert_eq!(
            limiter.check_now(Rule::LoginIp, "1.2.3.4").decision(),
            Decision::Allow
        );
        assert!(matches!(
            limiter.check_now(Rule::LoginIp, "1.2.3.4").decision(),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn every_rule_has_its_own_limiter_with_its_own_quota() {
        let mut quotas = crate::config::RateQuotas::uniform("1/h".parse().unwrap());
        quotas.set(Rule::AuditLogUser, "2/h".parse().unwrap());
        let limiter = MemoryLimiter::new(quotas.into());
        assert_eq!(limiter.buckets.len(), Rule::COUNT);
        for rule in Rule::ALL {
            assert_eq!(
                limiter.check_now(rule, "k").decision(),
                Decision::Allow,
                "{rule:?}"
            );
        }
        assert_eq!(
            limiter.check_now(Rule::AuditLogUser, "k").decision(),
            Decision::Allow
        );
        assert!(matches!(
            limiter.check_now(Rule::LoginIp, "k").decision(),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn each_check_says_what_is_left_and_when_the_bucket_is_full_again() {
        let clock = FakeRelativeClock::default();
        let limiter =
            MemoryLimiter::with_clock(Quotas::uniform("3/min".parse().unwrap()), clock.clone());
        let seen: Vec<(bool, u32, u64, u64)> = (0..4)
            .map(|_| {
                let s = limiter.check_now(Rule::LoginIp, "k");
                (
                    s.allowed,
                    s.remaining,
                    s.reset.as_secs(),
                    s.retry_after.as_secs(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (true, 2, 20, 0),
                (true, 1, 40, 0),
                (true, 0, 60, 20),
                (false, 0, 60, 20)
            ]
        );
        clock.advance(Duration::from_secs(30));
        let after = limiter.check_now(Rule::LoginIp, "k");
        assert!(after.allowed);
        assert_eq!((after.remaining, after.reset.as_secs()), (0, 50));
        assert_eq!(after.quota.count, 3);
        clock.advance(Duration::from_secs(51));
        limiter.housekeeping();
        assert!(
            limiter.buckets[Rule::LoginIp.index()].lock().is_empty(),
            "full buckets are forgotten"
        );
    }
}
