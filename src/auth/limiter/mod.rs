//! Rate limiting: GCRA quotas (governor's semantics) behind one small trait.
//!
//! [`RateLimitStore`] is async and fallible so that a shared store (Redis)
//! can implement it; [`MemoryLimiter`] is the default, governor's GCRA
//! (its constants, step for step) in this process. [`Limits`] is what the services call: it knows the
//! quotas, the on/off switch, and which refusals are worth an audit row.
//!
//! With `WARDEN_REDIS_URL`, [`Limits::build`] puts the [`RedisLimiter`]
//! behind a [`Failover`]: while Redis fails, each instance answers from its
//! own memory with the same quotas, so limits loosen (per instance instead
//! of shared) but never vanish, and logins never fail because of Redis.
//!
//! # Layout
//! One direction only: this file builds the stores, the stores import
//! [`store`] and nothing above it.
//! - this file, [`Limits`]: the facade the services call;
//! - [`store`], the [`RateLimitStore`] trait, [`BucketState`] (what a check
//!   spent and what is left), [`Decision`], [`LimiterError`],
//!   [`Quotas`], [`governor_quota`];
//! - [`memory`], [`MemoryLimiter`]: the same GCRA in this process;
//! - [`redis`], [`RedisLimiter`]: the connection to Redis;
//! - [`gcra`], the Lua script it runs and the constants it takes;
//! - [`failover`], [`Failover`]: the shared store with memory as fallback;
//! - [`report`], [`RateReport`]: what one request's checks said, for its
//!   `RateLimit-Policy` and `RateLimit` headers.
//!
//! The rules themselves ([`Rule`]: names, variables, default quotas, key
//! parts) are one table in [`config::rates`](crate::config::rates).

use std::{fmt, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{clock::DefaultClock, state::keyed::DefaultKeyedStateStore, Quota, RateLimiter};

pub mod failover;
pub mod gcra;
pub mod memory;
pub mod redis;
pub mod report;
pub mod store;

pub use self::failover::{Failover, RETRY_SHARED_AFTER};
pub use self::memory::MemoryLimiter;
pub use self::redis::RedisLimiter;
pub use self::report::RateReport;
pub use self::store::{
    first_refusal, governor_quota, BucketState, Decision, LimiterError, Quotas, RateLimitStore,
};
pub use crate::config::{KeyPart, Rule};
use crate::{config::Config, metrics::Metrics};

/// What the services call before doing anything costly.
#[derive(Clone)]
pub struct Limits {
    store: Arc<dyn RateLimitStore>,
    enabled: bool,
    /// At most one `RATE_LIMITED` audit row per rule and key per minute: an
    /// attacker hammering a spent bucket must not turn each refusal into a
    /// database write.
    audit_gate: Arc<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
    /// The Redis behind `store`, for readiness: `None` when not configured,
    /// `Err` when its URL could not be used.
    redis: Option<Result<Arc<RedisLimiter>, String>>,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("backend", &self.store.backend())
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Limits {
    /// Limits on `store`; `enabled = false` allows everything.
    pub fn new(store: Arc<dyn RateLimitStore>, enabled: bool) -> Self {
        Self {
            store,
            enabled,
            audit_gate: Arc::new(RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN))),
            redis: None,
        }
    }

    /// In-memory limits with the configured quotas.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            Arc::new(MemoryLimiter::new(Quotas::from_config(config))),
            config.rate_limits,
        )
    }

    /// The limits of a server: in memory, or shared through Redis when
    /// `WARDEN_REDIS_URL` is set. Never fails: a Redis that is down at
    /// start-up must not keep Warden down too, so it starts limiting in
    /// memory and switches to Redis once it answers. With rate limits off,
    /// Redis is neither used nor part of readiness.
    pub async fn build(config: &Config, metrics: Arc<Metrics>) -> Self {
        let Some(url) = config.redis_url.as_ref().filter(|_| config.rate_limits) else {
            return Self::from_config(config);
        };
        let quotas = Quotas::from_config(config);
        let redis = match RedisLimiter::connect(url, &config.redis_prefix, quotas).await {
            Ok(redis) => Arc::new(redis),
            Err(err) => {
                tracing::error!(error = %err, "rate limits stay in memory: WARDEN_REDIS_URL is unusable");
                let mut limits = Self::from_config(config);
                limits.redis = Some(Err(err.to_string()));
                return limits;
            }
        };
        let failover = Failover::new(
            redis.clone(),
            MemoryLimiter::new(quotas),
            metrics,
            RETRY_SHARED_AFTER,
        );
        let failover = if redis.is_connected() {
            failover
        } else {
            tracing::warn!("redis is not reachable at start-up; limiting in memory until it is");
            failover.starting_down()
        };
        let mut limits = Self::new(Arc::new(failover), config.rate_limits);
        limits.redis = Some(Ok(redis));
        limits
    }

    /// Whether the shared store answers; `None` when there is none.
    pub async fn ready(&self) -> Option<Result<(), String>> {
        match self.redis.as_ref()? {
            Ok(redis) => Some(redis.ping().await.map_err(|err| err.to_string())),
            Err(err) => Some(Err(err.clone())),
        }
    }

    /// Spends one unit of `rule` for `key`. Redis failures never get here
    /// ([`Failover`] answers them from memory); a custom store that fails
    /// allows the request (logged): a limiter outage must not lock everyone
    /// out.
    pub async fn check(&self, rule: Rule, key: &str) -> Decision {
        Decision::from_refusal(first_refusal(&self.check_in_order(&[(rule, key)]).await))
    }

    /// [`check`](Self::check) for several buckets in order, in one round
    /// trip to a shared store: the state of each bucket checked, up to and
    /// including the first refusal ([`first_refusal`]). Empty when limits
    /// are off or a custom store failed (allowed, and nothing to report).
    pub async fn check_in_order(&self, checks: &[(Rule, &str)]) -> Vec<BucketState> {
        if !self.enabled {
            return Vec::new();
        }
        match self.store.check_in_order(checks).await {
            Ok(states) => states,
            Err(err) => {
                tracing::warn!(error = %err, "rate limiter failed; allowing");
                Vec::new()
            }
        }
    }

    /// True when this refusal should be written to the audit log.
    pub fn should_audit(&self, rule: Rule, key: &str) -> bool {
        self.audit_gate
            .check_key(&format!("{}:{key}", rule.name()))
            .is_ok()
    }

    /// Drops idle state; called every minute by the server.
    pub fn housekeeping(&self) {
        self.store.housekeeping();
        self.audit_gate.retain_recent();
    }

    /// `memory`, `redis`, or `off`.
    pub fn backend(&self) -> &'static str {
        if self.enabled {
            self.store.backend()
        } else {
            "off"
        }
    }
}

/// Whole seconds to announce in `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests;
