//! Rate limiting: GCRA quotas (governor's semantics) behind one small trait.
//!
//! [`RateLimitStore`] is async and fallible so that a shared store (Redis)
//! can implement it; [`MemoryLimiter`] is the default, governor's keyed GCRA
//! in this process. [`Limits`] is what the services call: it knows the
//! quotas, the on/off switch, and which refusals are worth an audit row.
//!
//! With `WARDEN_REDIS_URL`, [`Limits::build`] puts the [`RedisLimiter`]
//! behind a [`Failover`]: while Redis fails, each instance answers from its
//! own memory with the same quotas, so limits loosen (per instance instead
//! of shared) but never vanish, and logins never fail because of Redis.

use std::{fmt, num::NonZeroU32, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use governor::{
    clock::{Clock as GovernorClock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};

use super::{
    failover::{Failover, RETRY_SHARED_AFTER},
    redis_limiter::RedisLimiter,
};
use crate::{
    config::{Config, RateQuota},
    metrics::Metrics,
};

/// What is being limited, each with its own quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `login` per client IP.
    LoginIp,
    /// `login` per client IP and email.
    LoginEmail,
    /// `register` per client IP.
    RegisterIp,
    /// `refresh` per client IP.
    RefreshIp,
    /// `auditLog` reads per account (user id): every read is a database
    /// query, so a token must not turn into a flood of them.
    AuditLogUser,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Self; 5] = [
        Self::LoginIp,
        Self::LoginEmail,
        Self::RegisterIp,
        Self::RefreshIp,
        Self::AuditLogUser,
    ];

    /// Stable name, for keys, logs, metrics and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginEmail => "login_email",
            Self::RegisterIp => "register_ip",
            Self::RefreshIp => "refresh_ip",
            Self::AuditLogUser => "audit_log_user",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::LoginIp => 0,
            Self::LoginEmail => 1,
            Self::RegisterIp => 2,
            Self::RefreshIp => 3,
            Self::AuditLogUser => 4,
        }
    }
}

/// The quota of each rule.
#[derive(Clone, Copy, Debug)]
pub struct Quotas([RateQuota; 5]);

impl Quotas {
    /// The same quota for every rule.
    pub fn uniform(quota: RateQuota) -> Self {
        Self([quota; 5])
    }

    /// The quotas configured with `WARDEN_RATE_*`.
    pub fn from_config(config: &Config) -> Self {
        Self([
            config.rate_login_ip,
            config.rate_login_email,
            config.rate_register_ip,
            config.rate_refresh_ip,
            config.rate_audit_log,
        ])
    }

    /// The quota of `rule`.
    pub fn get(&self, rule: Rule) -> RateQuota {
        self.0[rule.index()]
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

type Keyed<C> = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    C,
    NoOpMiddleware<<C as GovernorClock>::Instant>,
>;

/// governor's keyed GCRA, in this process.
pub struct MemoryLimiter<C: GovernorClock = DefaultClock> {
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
        Decision::from_refusal(self.check_in_order(&[(rule, key)]).await)
    }

    /// [`check`](Self::check) for several buckets in order, in one round
    /// trip to a shared store: the first refusal's index and wait, if any.
    pub async fn check_in_order(&self, checks: &[(Rule, &str)]) -> Option<(usize, Duration)> {
        if !self.enabled {
            return None;
        }
        match self.store.check_in_order(checks).await {
            Ok(refusal) => refusal,
            Err(err) => {
                tracing::warn!(error = %err, "rate limiter failed; allowing");
                None
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
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn quotas(q: &str) -> Quotas {
        let q: RateQuota = q.parse().unwrap_or(RateQuota {
            count: 1,
            per: Duration::from_secs(60),
        });
        Quotas::uniform(q)
    }

    #[test]
    fn a_burst_is_the_count_and_units_come_back_one_per_period() {
        let clock = FakeRelativeClock::default();
        let limiter = MemoryLimiter::with_clock(quotas("3/min"), clock.clone());
        for _ in 0..3 {
            assert_eq!(limiter.check_now(Rule::LoginIp, "1.2.3.4"), Decision::Allow);
        }
        let Decision::Deny { retry_after } = limiter.check_now(Rule::LoginIp, "1.2.3.4") else {
            unreachable!("the fourth unit is refused");
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
        config.rate_login_ip = "1/h".parse().unwrap();
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
}
