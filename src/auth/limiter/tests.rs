//! Unit tests of [`Limits`](super::Limits), alone and on top of a
//! [`Failover`](super::Failover) (moved here from the failover's file, so
//! that the stores never import the facade above them).

use std::sync::Arc;

use futures::future::BoxFuture;

use super::*;
use crate::config::RateQuota;

fn quotas(q: &str) -> Quotas {
    let q: RateQuota = q.parse().unwrap_or(RateQuota {
        count: 1,
        per: Duration::from_secs(60),
    });
    Quotas::uniform(q)
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(20_001)), 21);
    assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
}

#[tokio::test]
async fn disabled_limits_allow_everything() {
    let limits = Limits::new(Arc::new(MemoryLimiter::new(quotas("1/h"))), false);
    for _ in 0..5 {
        assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
    }
    assert_eq!(limits.backend(), "off");
}

#[test]
fn refusals_are_audited_once_a_minute_per_key() {
    let limits = Limits::new(Arc::new(MemoryLimiter::new(quotas("1/h"))), true);
    assert!(limits.should_audit(Rule::LoginIp, "k"));
    assert!(!limits.should_audit(Rule::LoginIp, "k"));
    assert!(limits.should_audit(Rule::LoginIp, "other"));
    assert!(limits.should_audit(Rule::RefreshIp, "k"));
}

#[tokio::test]
async fn without_redis_there_is_no_readiness_check() {
    let limits = Limits::new(Arc::new(MemoryLimiter::new(quotas("1/h"))), true);
    assert!(limits.ready().await.is_none());
    assert_eq!(limits.backend(), "memory");
}

#[tokio::test]
async fn an_unreachable_redis_neither_fails_start_up_nor_allows_everything() {
    let mut config = Config::defaults().unwrap();
    config.redis_url = Some("redis://127.0.0.1:1/".to_owned().into());
    config.rates.rate_login_ip = "1/h".parse().unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let limits = Limits::build(&config, metrics.clone()).await;
    assert_eq!(limits.backend(), "redis");
    assert!(matches!(limits.ready().await, Some(Err(_))));
    assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
    assert!(matches!(
        limits.check(Rule::LoginIp, "k").await,
        Decision::Deny { .. }
    ));
    assert_eq!(metrics.limiter_fallbacks.get(), 2);
}

#[tokio::test]
async fn an_unusable_redis_url_shows_in_readiness() {
    let mut config = Config::defaults().unwrap();
    config.redis_url = Some("nonsense://x".to_owned().into());
    let limits = Limits::build(&config, Arc::new(Metrics::new().unwrap())).await;
    assert!(matches!(limits.ready().await, Some(Err(_))));
    assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
}

/// A shared store that refuses everything while up, so answers from it
/// and from memory can be told apart.
#[derive(Default)]
struct Flaky {
    down: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicUsize,
}

impl RateLimitStore for Flaky {
    fn check<'a>(
        &'a self,
        rule: Rule,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<BucketState, LimiterError>> {
        use std::sync::atomic::Ordering;
        self.calls.fetch_add(1, Ordering::SeqCst);
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                Err(LimiterError("down".into()))
            } else {
                Ok(BucketState {
                    rule,
                    quota: RateQuota {
                        count: 1,
                        per: Duration::from_secs(60),
                    },
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_secs(7),
                    retry_after: Duration::from_secs(7),
                })
            }
        })
    }

    fn backend(&self) -> &'static str {
        "flaky"
    }
}

fn failover(shared: Arc<Flaky>, retry: Duration) -> (Limits, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let store = Failover::new(
        shared,
        MemoryLimiter::new(quotas("2/h")),
        metrics.clone(),
        retry,
    );
    (Limits::new(Arc::new(store), true), metrics)
}

#[tokio::test]
async fn a_failing_shared_store_is_answered_from_memory_with_the_same_quotas() {
    use std::sync::atomic::Ordering;
    let shared = Arc::new(Flaky::default());
    let (limits, metrics) = failover(shared.clone(), Duration::from_secs(60));
    let from_shared = Decision::Deny {
        retry_after: Duration::from_secs(7),
    };
    assert_eq!(limits.check(Rule::LoginIp, "k").await, from_shared);
    assert_eq!(limits.backend(), "flaky");
    shared.down.store(true, Ordering::SeqCst);
    assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
    assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
    assert!(
        matches!(limits.check(Rule::LoginIp, "k").await, Decision::Deny { retry_after } if retry_after > Duration::from_secs(1700)),
        "memory keeps the quota: never allow-all"
    );
    assert_eq!(metrics.limiter_fallbacks.get(), 3);
    assert_eq!(
        shared.calls.load(Ordering::SeqCst),
        2,
        "after the failure the shared store is skipped"
    );
}

#[tokio::test]
async fn when_the_shared_store_is_back_it_answers_again() {
    use std::sync::atomic::Ordering;
    let shared = Arc::new(Flaky::default());
    let (limits, metrics) = failover(shared.clone(), Duration::ZERO);
    shared.down.store(true, Ordering::SeqCst);
    assert_eq!(limits.check(Rule::LoginIp, "k").await, Decision::Allow);
    shared.down.store(false, Ordering::SeqCst);
    assert!(matches!(
        limits.check(Rule::LoginIp, "k").await,
        Decision::Deny { retry_after } if retry_after == Duration::from_secs(7)
    ));
    assert_eq!(metrics.limiter_fallbacks.get(), 1);
}
