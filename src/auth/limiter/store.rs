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

/// One bucket after a check: whether the unit was spent, and what is left.
/// Both stores compute it with the same GCRA arithmetic on the bucket's
/// theoretical arrival time (TAT), so they agree for the same sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketState {
    /// The rule whose bucket this is.
    pub rule: Rule,
    /// Its quota: the burst and the period it refills in.
    pub quota: RateQuota,
    /// Whether the unit was spent (`false`: refused, nothing spent).
    pub allowed: bool,
    /// Units that could still be spent at once after this check.
    pub remaining: u32,
    /// Time until the bucket is full again (`TAT - now`).
    pub reset: Duration,
    /// Time until the next unit can be spent: zero while `remaining > 0`.
    pub retry_after: Duration,
}

impl BucketState {
    /// The state from GCRA's numbers, in nanoseconds: `d` is `TAT - now`
    /// after the check (before it, when refused), `t` the emission
    /// interval, `tau` the tolerance; a unit can be spent while
    /// `d <= tau`.
    pub fn from_gcra(
        rule: Rule,
        quota: RateQuota,
        allowed: bool,
        d_ns: u64,
        t_ns: u64,
        tau_ns: u64,
    ) -> Self {
        let t_ns = t_ns.max(1);
        // Units that fit before the TAT passes tau + t: each spend moves it
        // on by t.
        let room = (tau_ns + t_ns).saturating_sub(d_ns) / t_ns;
        let remaining = if allowed || d_ns <= tau_ns {
            u32::try_from(room).unwrap_or(u32::MAX).min(quota.count)
        } else {
            0
        };
        let retry_after = if remaining > 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(d_ns.saturating_sub(tau_ns))
        };
        Self {
            rule,
            quota,
            allowed,
            remaining,
            reset: Duration::from_nanos(d_ns),
            retry_after,
        }
    }

    /// This state as a [`Decision`].
    pub fn decision(&self) -> Decision {
        if self.allowed {
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: self.retry_after,
            }
        }
    }
}

/// The states of checks spent in order: every bucket up to and including
/// the first refusal (later ones are not checked).
pub fn first_refusal(states: &[BucketState]) -> Option<(usize, Duration)> {
    states
        .iter()
        .position(|s| !s.allowed)
        .map(|i| (i, states[i].retry_after))
}

/// A store that could not answer (only shared stores fail).
#[derive(Debug, thiserror::Error)]
#[error("rate limit store unavailable: {0}")]
pub struct LimiterError(pub String);

/// Where rate-limit state lives. Spends one unit of `rule` for `key`.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Spends one unit, atomically, and says what is left.
    fn check<'a>(
        &'a self,
        rule: Rule,
        key: &'a str,
    ) -> BoxFuture<'a, Result<BucketState, LimiterError>>;
    /// Spends one unit of each check in order and stops at the first
    /// refusal: the states of the buckets checked, the refusal last (see
    /// [`first_refusal`]). A later bucket is never spent when an earlier
    /// one refuses. Shared stores override it to answer in one round trip.
    fn check_in_order<'a>(
        &'a self,
        checks: &'a [(Rule, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<BucketState>, LimiterError>> {
        Box::pin(async move {
            let mut states = Vec::with_capacity(checks.len());
            for (rule, key) in checks {
                let state = self.check(*rule, key).await?;
                states.push(state);
                if !state.allowed {
                    break;
                }
            }
            Ok(states)
        })
    }
    /// Drops state that no longer limits anything (memory stores).
    fn housekeeping(&self) {}
    /// For the start-up line and logs.
    fn backend(&self) -> &'static str;
}
