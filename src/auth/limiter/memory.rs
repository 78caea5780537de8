//! [`MemoryLimiter`]: governor's keyed GCRA in this process, the default
//! store and the fallback of [`Failover`](super::failover::Failover).

use governor::{
    clock::{Clock as GovernorClock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
    RateLimiter,
};

use futures::future::BoxFuture;

use super::store::{governor_quota, Decision, LimiterError, Quotas, RateLimitStore};
use crate::config::Rule;

type Keyed<C> = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    C,
    NoOpMiddleware<<C as GovernorClock>::Instant>,
>;

/// governor's keyed GCRA, in this process.
pub struct MemoryLimiter<C: GovernorClock = DefaultClock> {
    /// One limiter per rule, at [`Rule::index`].
    limiters: Vec<Keyed<C>>,
    clock: C,
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
        let limiters = Rule::ALL
            .iter()
            .map(|rule| {
                RateLimiter::new(
                    governor_quota(quotas.get(*rule)),
                    DefaultKeyedStateStore::default(),
                    clock.clone(),
                )
            })
            .collect();
        Self { limiters, clock }
    }

    /// Spends one unit, synchronously.
    pub fn check_now(&self, rule: Rule, key: &str) -> Decision {
        let Some(limiter) = self.limiters.get(rule.index()) else {
            return Decision::Allow;
        };
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Decision::Allow,
            Err(not_until) => Decision::Deny {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
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
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        let decision = self.check_now(rule, key);
        Box::pin(async move { Ok(decision) })
    }

    fn housekeeping(&self) {
        for limiter in &self.limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
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
    use crate::config::RateQuota;

    #[test]
    fn a_burst_is_the_count_and_units_come_back_one_per_period() {
        let clock = FakeRelativeClock::default();
        let quota: RateQuota = "3/min".parse().unwrap();
        let limiter = MemoryLimiter::with_clock(Quotas::uniform(quota), clock.clone());
        for _ in 0..3 {
            assert_eq!(limiter.check_now(Rule::LoginIp, "1.2.3.4"), Decision::Allow);
        }
        let Decision::Deny { retry_after } = limiter.check_now(Rule::LoginIp, "1.2.3.4") else {
            panic!("the fourth unit is refused");
        };
        assert_eq!(retry_after, Duration::from_secs(20));
        assert_eq!(
            limiter.check_now(Rule::LoginIp, "5.6.7.8"),
            Decision::Allow,
            "keys are separate"
        );
        assert_eq!(
            limiter.check_now(Rule::RefreshIp, "1.2.3.4"),
            Decision::Allow,
            "rules are separate"
        );
        clock.advance(Duration::from_secs(20));
        assert_eq!(limiter.check_now(Rule::LoginIp, "1.2.3.4"), Decision::Allow);
        assert!(matches!(
            limiter.check_now(Rule::LoginIp, "1.2.3.4"),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn every_rule_has_its_own_limiter_with_its_own_quota() {
        let mut quotas = crate::config::RateQuotas::uniform("1/h".parse().unwrap());
        quotas.set(Rule::AuditLogUser, "2/h".parse().unwrap());
        let limiter = MemoryLimiter::new(quotas.into());
        assert_eq!(limiter.limiters.len(), Rule::COUNT);
        for rule in Rule::ALL {
            assert_eq!(limiter.check_now(rule, "k"), Decision::Allow, "{rule:?}");
        }
        assert_eq!(limiter.check_now(Rule::AuditLogUser, "k"), Decision::Allow);
        assert!(matches!(
            limiter.check_now(Rule::LoginIp, "k"),
            Decision::Deny { .. }
        ));
    }
}
