//! What every rate-limit store shares: the [`RateLimitStore`] trait, its
//! answers ([`Decision`], [`LimiterError`]), the quotas it enforces
//! ([`Quotas`]) and the GCRA constants both stores derive from them
//! ([`governor_quota`]).
//!
//! The stores ([`memory`](super::memory), [`redis`](super::redis),
//! [`failover`](super::failover)) import this module and nothing above it;
//! [`Limits`](super::Limits) sits on top of them all.

use std::{num::NonZeroU32, time::Duration};

use futures::future::BoxFuture;
use governor::Quota;

use crate::config::{Config, RateQuota, RateQuotas, Rule};

/// The quota of each rule, as the stores enforce them.
#[derive(Clone, Copy, Debug)]
pub struct Quotas(RateQuotas);

impl Quotas {
    /// The same quota for every rule.
    pub fn uniform(quota: RateQuota) -> Self {
        Self(RateQuotas::uniform(quota))
    }

    /// The quotas configured with `WARDEN_RATE_*`.
    pub fn from_config(config: &Config) -> Self {
        Self(config.rates)
    }

    /// The quota of `rule`.
    pub fn get(&self, rule: Rule) -> RateQuota {
        self.0.get(rule)
    }
}

impl From<RateQuotas> for Quotas {
    fn from(quotas: RateQuotas) -> Self {
        Self(quotas)
    }
}

/// governor's quota for `count` per `per`: a burst of `count`, one unit
/// replenished every `per / count`.
pub fn governor_quota(quota: RateQuota) -> Quota {
    let burst = NonZeroU32::new(quota.count).unwrap_or(NonZeroU32::MIN);
    let period = quota.per / quota.count.max(1);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

/// The answer for one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Spent; go ahead.
    Allow,
    /// Refused; the next unit is available after `retry_after`.
    Deny {
        /// Time until a retry can succeed.
        retry_after: Duration,
    },
}

impl Decision {
    /// The decision for one bucket from a [`RateLimitStore::check_in_order`]
    /// answer about that bucket alone.
    pub fn from_refusal(refusal: Option<(usize, Duration)>) -> Self {
        match refusal {
            Some((_, retry_after)) => Self::Deny { retry_after },
            None => Self::Allow,
        }
    }
}

/// A store that could not answer (only shared stores fail).
#[derive(Debug, thiserror::Error)]
#[error("rate limit store unavailable: {0}")]
pub struct LimiterError(pub String);

/// Where rate-limit state lives. Spends one unit of `rule` for `key`.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Spends one unit, atomically.
    fn check<'a>(
        &'a self,
        rule: Rule,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Decision, LimiterError>>;
    /// Spends one unit of each check in order and stops at the first
    /// refusal, whose index and wait it returns (`None`: all spent). A
    /// later bucket is never spent when an earlier one refuses. Shared
    /// stores override it to answer in one round trip.
    fn check_in_order<'a>(
        &'a self,
        checks: &'a [(Rule, &'a str)],
    ) -> BoxFuture<'a, Result<Option<(usize, Duration)>, LimiterError>> {
        Box::pin(async move {
            for (index, (rule, key)) in checks.iter().enumerate() {
                if let Decision::Deny { retry_after } = self.check(*rule, key).await? {
                    return Ok(Some((index, retry_after)));
                }
            }
            Ok(None)
        })
    }
    /// Drops state that no longer limits anything (memory stores).
    fn housekeeping(&self) {}
    /// For the start-up line and logs.
    fn backend(&self) -> &'static str;
}
