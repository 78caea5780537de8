//! The shared rate-limit store: GCRA in Redis, so every instance spends the
//! same buckets.
//!
//! One Lua script does the whole decision atomically on the server, reading
//! Redis's own clock (`TIME`) so that instances with skewed clocks still
//! agree. It mirrors governor's GCRA step for step (see [`gcra`](super::gcra)), so a
//! bucket behaves the same whether it lives here or in [`MemoryLimiter`].
//!
//! This store only ever answers or fails, fast: every call is bounded by
//! [`REDIS_TIMEOUT`]. What to do on failure (answer from memory) is decided
//! by [`Failover`](super::failover::Failover), not here.
//!
//! [`MemoryLimiter`]: super::memory::MemoryLimiter

use std::{
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use futures::future::BoxFuture;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, RedisError, Script,
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    gcra::{states, GcraParams, GCRA_SCRIPT},
    store::{BucketState, LimiterError, Quotas, RateLimitStore},
};
use crate::config::Rule;

/// The longest any Redis call may take before the check is answered
/// elsewhere: a login must not wait on a sick Redis.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// How long one connection attempt may take (in the background, never on a
/// request's path).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often to try again when Redis could not be reached at start-up.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// A description of a Redis error that is safe to log: Redis error texts
/// can echo arguments (keys hold emails), so only the kind is kept.
fn describe(err: &RedisError) -> String {
    if err.is_timeout() {
        "redis timed out".into()
    } else if err.is_connection_refusal() {
        "redis refused the connection".into()
    } else if err.is_connection_dropped() {
        "redis dropped the connection".into()
    } else {
        format!("redis: {}", err.category())
    }
}

/// How the manager reconnects. One attempt per reconnect, no back-off
/// sleeps: [`Failover`](super::failover::Failover) probes about once a second
/// while Redis is down, and each probe drives the next attempt, so recovery
/// takes seconds, not the minute a long back-off could.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(CONNECT_TIMEOUT)
        // Only a backstop that frees abandoned requests on a stuck
        // connection; callers give up after `REDIS_TIMEOUT`.
        .set_response_timeout(Duration::from_secs(1))
}

struct Inner {
    /// `None` until the first connection succeeds; then the manager
    /// reconnects by itself.
    conn: Mutex<Option<ConnectionManager>>,
    prefix: String,
    quotas: Quotas,
    script: Script,
}

impl Inner {
    fn connection(&self) -> Option<ConnectionManager> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_connection(&self, conn: ConnectionManager) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }
}

/// GCRA buckets in Redis under `{prefix}:rl:{rule}:{key}`.
#[derive(Clone)]
pub struct RedisLimiter {
    inner: Arc<Inner>,
}

impl RedisLimiter {
    /// A limiter on the Redis at `url`. Fails only when the URL cannot be
    /// used at all; an unreachable Redis is not an error here: the limiter
    /// starts disconnected (every check fails fast) and keeps connecting in
    /// the background, so Warden starts while Redis is away.
    pub async fn connect(
        url: &SecretString,
        prefix: &str,
        quotas: Quotas,
    ) -> Result<Self, LimiterError> {
        // The error would quote the URL, which may hold a password.
        let client = Client::open(url.expose_secret())
            .map_err(|_| LimiterError("the redis url is invalid".into()))?;
        let limiter = Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(None),
                prefix: prefix.to_owned(),
                quotas,
                script: Script::new(GCRA_SCRIPT),
            }),
        };
        match Self::open(&client).await {
            Ok(conn) => limiter.inner.set_connection(conn),
            Err(err) => {
                tracing::debug!(error = %err, "redis not reachable yet; connecting in the background");
                tokio::spawn(connect_in_background(
                    Arc::downgrade(&limiter.inner),
                    client,
                ));
            }
        }
        Ok(limiter)
    }

    async fn open(client: &Client) -> Result<ConnectionManager, LimiterError> {
        let attempt = ConnectionManager::new_with_config(client.clone(), manager_config());
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(LimiterError(describe(&err))),
            Err(_) => Err(LimiterError("redis connection timed out".into())),
        }
    }

    /// Whether a connection was ever made (the manager then reconnects by
    /// itself, so this does not say Redis answers right now: see [`ping`]).
    ///
    /// [`ping`]: Self::ping
    pub fn is_connected(&self) -> bool {
        self.inner.connection().is_some()
    }

    /// The Redis key of `rule` for `key`.
    pub fn key(&self, rule: Rule, key: &str) -> String {
        format!("{}:rl:{}:{key}", self.inner.prefix, rule.name())
    }

    /// `PING`, within [`REDIS_TIMEOUT`]: for `/readyz`.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        let mut conn = self.connection()?;
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(LimiterError(describe(&err))),
            Err(_) => Err(LimiterError("redis timed out".into())),
        }
    }

    fn connection(&self) -> Result<ConnectionManager, LimiterError> {
        self.inner
            .connection()
            .ok_or_else(|| LimiterError("redis not connected".into()))
    }

    async fn spend(&self, checks: &[(Rule, &str)]) -> Result<Vec<BucketState>, LimiterError> {
        let mut conn = self.connection()?;
        let mut invocation = self.inner.script.prepare_invoke();
        let quotas: Vec<_> = checks
            .iter()
            .map(|(rule, _)| (*rule, self.inner.quotas.get(*rule)))
            .collect();
        for (rule, key) in checks {
            let params = GcraParams::of(self.inner.quotas.get(*rule));
            invocation
                .key(self.key(*rule, key))
                .arg(params.t_ns)
                .arg(params.tau_ns);
        }
        // `invoke_async` sends EVALSHA and, on NOSCRIPT (a restarted or
        // flushed Redis), loads the script and sends it again.
        let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(reply)) => Ok(states(&reply, &quotas)),
            Ok(Err(err)) => {
                tracing::debug!(error = %describe(&err), "redis check failed");
                Err(LimiterError(describe(&err)))
            }
            Err(_) => Err(LimiterError("redis timed out".into())),
        }
    }
}

/// Retries the first connection every [`CONNECT_RETRY`] until it succeeds
/// or the limiter is dropped.
async fn connect_in_background(inner: Weak<Inner>, client: Client) {
    loop {
        tokio::time::sleep(CONNECT_RETRY).await;
        if inner.strong_count() == 0 {
            return;
        }
        match RedisLimiter::open(&client).await {
            Ok(conn) => {
                if let Some(inner) = inner.upgrade() {
                    inner.set_connection(conn);
                    tracing::debug!("connected to redis");
                }
                return;
            }
            Err(err) => tracing::debug!(error = %err, "redis still not reachable"),
        }
    }
}

impl RateLimitStore for RedisLimiter {
    fn check<'a>(
        &'a self,
        rule: Rule,
        key: &'a str,
    ) -> BoxFuture<'a, Result<BucketState, LimiterError>> {
        Box::pin(async move {
            self.spend(&[(rule, key)])
                .await?
                .pop()
                .ok_or_else(|| LimiterError("redis answered for no bucket".into()))
        })
    }

    fn check_in_order<'a>(
        &'a self,
        checks: &'a [(Rule, &'a str)],
    ) -> BoxFuture<'a, Result<Vec<BucketState>, LimiterError>> {
        Box::pin(self.spend(checks))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_descriptions_never_carry_the_servers_text() {
        let err = RedisError::from((
            redis::ErrorKind::ResponseError,
            "An error was signalled by the server",
            "ERR something about warden:rl:login_email:1.2.3.4|a@example.com".to_owned(),
        ));
        let text = describe(&err);
        assert!(!text.contains("example.com"), "{text}");
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&refused), "redis refused the connection");
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(describe(&timed_out), "redis timed out");
    }

    #[tokio::test]
    async fn an_invalid_url_is_refused_without_quoting_it() {
        let url = SecretString::from("nonsense://user:hunter2@host".to_owned());
        let quotas = Quotas::from_config(&crate::config::Config::defaults().unwrap());
        let Err(err) = RedisLimiter::connect(&url, "p", quotas).await else {
            panic!("the URL is not a Redis URL");
        };
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    /// Buckets already in Redis must keep working across an upgrade: a
    /// rule's key is `{prefix}:rl:{name}:{bucket key}`, byte for byte.
    #[tokio::test]
    async fn every_rule_keeps_its_redis_key() {
        let url = SecretString::from("redis://127.0.0.1:1/".to_owned());
        let quotas = Quotas::from_config(&crate::config::Config::defaults().unwrap());
        let limiter = RedisLimiter::connect(&url, "warden", quotas).await.unwrap();
        let keys: Vec<String> = Rule::ALL.iter().map(|r| limiter.key(*r, "K")).collect();
        assert_eq!(
            keys,
            [
                "warden:rl:login_ip:K",
                "warden:rl:login_email:K",
                "warden:rl:register_ip:K",
                "warden:rl:refresh_ip:K",
                "warden:rl:audit_log_user:K",
                "warden:rl:mail_ip:K",
                "warden:rl:mail_email:K",
                "warden:rl:email_token_ip:K",
                "warden:rl:email_code:K",
                "warden:rl:passkey_ip:K",
                "warden:rl:mfa_user:K",
                "warden:rl:api_key:K",
                "warden:rl:export_user:K",
                "warden:rl:anonymous_ip:K",
                "warden:rl:user:K",
                "warden:rl:admin:K",
                "warden:rl:introspect_key:K",
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_checks_fast_instead_of_failing_start() {
        // Port 1 on loopback: nothing listens there.
        let url = SecretString::from("redis://127.0.0.1:1/".to_owned());
        let quotas = Quotas::from_config(&crate::config::Config::defaults().unwrap());
        let limiter = RedisLimiter::connect(&url, "p", quotas).await.unwrap();
        assert!(!limiter.is_connected());
        assert_eq!(
            limiter.key(Rule::LoginIp, "1.2.3.4"),
            "p:rl:login_ip:1.2.3.4"
        );
        assert!(limiter.check(Rule::LoginIp, "1.2.3.4").await.is_err());
        assert!(limiter.ping().await.is_err());
    }
}
