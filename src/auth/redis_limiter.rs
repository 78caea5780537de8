//! The shared rate-limit store: GCRA in Redis, so every instance spends the
//! same buckets.
//!
//! One Lua script does the whole decision atomically on the server, reading
//! Redis's own clock (`TIME`) so that instances with skewed clocks still
//! agree. It mirrors governor's GCRA step for step (see [`GcraParams`]), so a
//! bucket behaves the same whether it lives here or in [`MemoryLimiter`].
//!
//! This store only ever answers or fails, fast: every call is bounded by
//! [`REDIS_TIMEOUT`]. What to do on failure (answer from memory) is decided
//! by [`Limits`](super::limiter::Limits), not here.
//!
//! [`MemoryLimiter`]: super::limiter::MemoryLimiter

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

use super::limiter::{governor_quota, Decision, LimiterError, Quotas, RateLimitStore, Rule};
use crate::config::RateQuota;

/// The longest any Redis call may take before the check is answered
/// elsewhere: a login must not wait on a sick Redis.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// How long one connection attempt may take (in the background, never on a
/// request's path).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often to try again when Redis could not be reached at start-up.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// GCRA in governor's terms, with every time relative to Redis's clock and
/// in nanoseconds. Doubles (Lua's only numbers) are exact up to 2^53, which
/// epoch nanoseconds exceed, so the TAT is stored as `seconds:nanos` and the
/// arithmetic is done on `tat - now`, which stays small.
///
/// - a missing key is a full bucket (TAT = now);
/// - refused when `now < TAT - tau`, with a wait of `TAT - tau - now`
///   (governor's `wait_time_from`), and nothing is written;
/// - allowed otherwise, TAT becomes `max(TAT, now) + t`, and the key expires
///   when that TAT passes: the bucket is full again then, which is exactly
///   what a missing key means.
///
/// Key `i` is spent with `ARGV[2i-1]` (t) and `ARGV[2i]` (tau), in order; the
/// first refusal ends the script, so later keys are not spent. The reply is
/// `{index, wait}` of that refusal (1-based), or `{0, 0}` when all were
/// spent. Login checks two buckets in one round trip this way.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local now_s = tonumber(now[1])
local now_ns = tonumber(now[2]) * 1000
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local d = 0
  local stored = redis.call('GET', key)
  if stored then
    local s, ns = string.match(stored, '^(%d+):(%d+)$')
    if s then
      d = (tonumber(s) - now_s) * 1000000000 + (tonumber(ns) - now_ns)
    end
  end
  local wait = d - tau
  if wait > 0 then
    return {i, wait}
  end
  local next_d = math.max(d, 0) + t
  local abs_ns = now_ns + next_d
  local tat_s = now_s + math.floor(abs_ns / 1000000000)
  local tat_ns = abs_ns % 1000000000
  local ttl_ms = math.max(1, math.ceil(next_d / 1000000))
  redis.call('SET', key, string.format('%d:%d', tat_s, tat_ns),
    'PX', string.format('%d', ttl_ms))
end
return {0, 0}
";

/// governor's GCRA constants for one quota, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraParams {
    /// The emission interval: one unit comes back every `t`.
    pub t_ns: u64,
    /// The tolerance: `t * (burst - 1)`, how far ahead the TAT may run.
    pub tau_ns: u64,
}

impl GcraParams {
    /// The constants governor derives from [`governor_quota`], computed the
    /// same way (`t` at least 1 ns), so both stores make the same decisions.
    pub fn of(quota: RateQuota) -> Self {
        let quota = governor_quota(quota);
        let t = quota.replenish_interval().max(Duration::from_nanos(1));
        let t_ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        let tau_ns = t_ns.saturating_mul(u64::from(quota.burst_size().get() - 1));
        Self { t_ns, tau_ns }
    }
}

/// The script's reply, `{index, wait_ns}` (1-based, 0 when every bucket
/// was spent), as the 0-based index of the refusal and its wait.
fn refusal(index: i64, wait_ns: i64) -> Option<(usize, Duration)> {
    let index = usize::try_from(index).ok()?.checked_sub(1)?;
    Some((
        index,
        Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(0)),
    ))
}

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
/// sleeps: [`Limits`](super::limiter::Limits) probes about once a second
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

    async fn spend(
        &self,
        checks: &[(Rule, &str)],
    ) -> Result<Option<(usize, Duration)>, LimiterError> {
        let mut conn = self.connection()?;
        let mut invocation = self.inner.script.prepare_invoke();
        for (rule, key) in checks {
            let params = GcraParams::of(self.inner.quotas.get(*rule));
            invocation
                .key(self.key(*rule, key))
                .arg(params.t_ns)
                .arg(params.tau_ns);
        }
        // `invoke_async` sends EVALSHA and, on NOSCRIPT (a restarted or
        // flushed Redis), loads the script and sends it again.
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok((index, wait_ns))) => Ok(refusal(index, wait_ns)),
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
    ) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(async move { Ok(Decision::from_refusal(self.spend(&[(rule, key)]).await?)) })
    }

    fn check_in_order<'a>(
        &'a self,
        checks: &'a [(Rule, &'a str)],
    ) -> BoxFuture<'a, Result<Option<(usize, Duration)>, LimiterError>> {
        Box::pin(self.spend(checks))
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> GcraParams {
        GcraParams::of(q.parse().unwrap())
    }

    #[test]
    fn params_are_governors_interval_and_tolerance() {
        assert_eq!(
            params("5/s"),
            GcraParams {
                t_ns: 200_000_000,
                tau_ns: 800_000_000
            }
        );
        assert_eq!(
            params("3/min"),
            GcraParams {
                t_ns: 20_000_000_000,
                tau_ns: 40_000_000_000
            }
        );
        // governor floors `per / count` to whole nanoseconds.
        assert_eq!(params("7/min").t_ns, 8_571_428_571);
        assert_eq!(params("1/h").tau_ns, 0, "a burst of one has no tolerance");
        assert_eq!(params("4000000000/s").t_ns, 1, "t is at least 1 ns");
    }

    #[test]
    fn the_largest_tolerance_fits_a_lua_double_exactly() {
        let worst = params(&format!("{}/h", u32::MAX));
        assert!(worst.tau_ns + worst.t_ns < 1 << 53);
        let hour = params("1/h");
        assert!(hour.t_ns < 1 << 53);
    }

    #[test]
    fn replies_become_refusals() {
        assert_eq!(refusal(0, 0), None);
        assert_eq!(
            refusal(2, 1_500_000_000),
            Some((1, Duration::from_millis(1500)))
        );
        assert_eq!(refusal(1, -5), Some((0, Duration::ZERO)));
    }

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
            unreachable!("the URL is not a Redis URL");
        };
        assert!(!err.to_string().contains("hunter2"), "{err}");
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
