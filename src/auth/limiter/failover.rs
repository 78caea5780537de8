//! [`Failover`]: a shared rate-limit store with this process's memory as
//! the fallback.
//!
//! While Redis fails, each instance answers from its own memory with the
//! same quotas, so limits loosen (per instance instead of shared) but never
//! vanish, and logins never fail because of Redis. One warning per outage,
//! one line when it ends, and a metric for every check answered in memory.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;

use super::{
    memory::MemoryLimiter,
    store::{BucketState, LimiterError, RateLimitStore},
};
use crate::{config::Rule, metrics::Metrics};

/// How long to answer from memory after the shared store failed before
/// asking it again: while Redis is down, requests must not each pay its
/// timeout.
pub const RETRY_SHARED_AFTER: Duration = Duration::from_secs(1);

/// The shared store's health as the failover sees it. Pure bookkeeping on
/// instants the caller passes in, so it is tested without sleeping.
#[derive(Debug, Default)]
struct Health {
    /// Between a failure and the next success; logs once per outage.
    outage: bool,
    /// While set and in the future, checks skip the shared store.
    retry_at: Option<Instant>,
}

impl Health {
    /// Whether this check should ask the shared store. During an outage
    /// only one check per window gets to probe: it moves the window on, so
    /// concurrent requests do not all wait on a dead Redis.
    fn should_try(&mut self, now: Instant, retry_after: Duration) -> bool {
        match self.retry_at {
            Some(at) if now < at => false,
            Some(_) => {
                self.retry_at = Some(now + retry_after);
                true
            }
            None => true,
        }
    }

    /// Records a failure; true when it starts an outage.
    fn failed(&mut self, now: Instant, retry_after: Duration) -> bool {
        self.retry_at = Some(now + retry_after);
        !std::mem::replace(&mut self.outage, true)
    }

    /// Records a success; true when it ends an outage.
    fn succeeded(&mut self) -> bool {
        self.retry_at = None;
        std::mem::replace(&mut self.outage, false)
    }
}

/// A shared store with this process's memory as the fallback.
///
/// Fail-soft, not fail-open: when the shared store errors or times out the
/// check is answered by a [`MemoryLimiter`] with the same quotas. Allowing
/// everything would hand an attacker unlimited guesses for as long as they
/// can keep Redis busy; refusing everything would lock every user out.
pub struct Failover {
    shared: Arc<dyn RateLimitStore>,
    memory: MemoryLimiter,
    metrics: Arc<Metrics>,
    health: Mutex<Health>,
    retry_after: Duration,
}

impl Failover {
    /// `shared` first, `memory` while it fails; after a failure `shared`
    /// is left alone for `retry_after`.
    pub fn new(
        shared: Arc<dyn RateLimitStore>,
        memory: MemoryLimiter,
        metrics: Arc<Metrics>,
        retry_after: Duration,
    ) -> Self {
        Self {
            shared,
            memory,
            metrics,
            health: Mutex::new(Health::default()),
            retry_after,
        }
    }

    /// Starts in an outage (the shared store could not be reached at
    /// start-up), so the first failure is not announced twice.
    pub(crate) fn starting_down(self) -> Self {
        self.health().failed(Instant::now(), self.retry_after);
        self
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spends one unit of `rule` for `key`: one check is a sequence of one.
    async fn decide(&self, rule: Rule, key: &str) -> BucketState {
        let states = self.decide_in_order(&[(rule, key)]).await;
        match states.last() {
            Some(state) => *state,
            None => self.memory.check_now(rule, key),
        }
    }

    /// Asks the shared store while it is healthy (or due a probe), else
    /// memory, spending the buckets in order up to the first refusal.
    async fn decide_in_order(&self, checks: &[(Rule, &str)]) -> Vec<BucketState> {
        if self.health().should_try(Instant::now(), self.retry_after) {
            match self.shared.check_in_order(checks).await {
                Ok(states) => {
                    if self.health().succeeded() {
                        tracing::info!(
                            backend = self.shared.backend(),
                            "shared rate limiter is back; buckets are shared again"
                        );
                    }
                    return states;
                }
                Err(err) => {
                    if self.health().failed(Instant::now(), self.retry_after) {
                        tracing::warn!(
                            backend = self.shared.backend(),
                            error = %err,
                            "shared rate limiter failed; limiting in memory until it is back"
                        );
                    }
                }
            }
        }
        self.metrics.limiter_fallbacks.inc();
        let mut states = Vec::with_capacity(checks.len());
        for (rule, key) in checks {
            let state = self.memory.check_now(*rule, key);
            states.push(state);
            if !state.allowed {
                break;
            }
        }
        states
    }
}

impl RateLimitStore for Failover {
    fn check<'a>(
        &'a self,
        rule: Rule,
        key: &'a str,
    ) -> BoxFuture<'a, Result<BucketState, LimiterError>> {
        Box::pin(async move { Ok(self.decide(rule, key).await) })
    }

    fn check_in_order<'a>(
        &'a self,
        checks: &'a [(Rule, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<BucketState>, LimiterError>> {
        Box::pin(async move { Ok(self.decide_in_order(checks).await) })
    }

    fn housekeeping(&self) {
        self.shared.housekeeping();
        self.memory.housekeeping();
    }

    fn backend(&self) -> &'static str {
        self.shared.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_failure_the_shared_store_is_skipped_for_a_while_then_probed_once() {
        let retry = Duration::from_secs(1);
        let start = Instant::now();
        let mut health = Health::default();
        assert!(health.should_try(start, retry), "healthy: always ask");
        assert!(
            health.failed(start, retry),
            "the first failure starts an outage"
        );
        assert!(
            !health.failed(start, retry),
            "later ones do not announce it again"
        );
        assert!(!health.should_try(start + Duration::from_millis(999), retry));
        let later = start + Duration::from_millis(1001);
        assert!(health.should_try(later, retry), "one probe per window");
        assert!(
            !health.should_try(later, retry),
            "the probe moved the window on"
        );
        assert!(health.succeeded(), "a success ends the outage");
        assert!(!health.succeeded());
        assert!(health.should_try(later, retry), "healthy again: always ask");
    }
}
