//! The Redis rate-limit store: same decisions as governor, shared, and a
//! fallback to memory while Redis is away.
//!
//! Against a real Redis: `WARDEN_TEST_REDIS_URL` when set, else a
//! `redis-server` child per test. Tests that stop and restart Redis always
//! run their own child, since they cannot stop a shared server.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use redis::AsyncCommands;
use reqwest::StatusCode;
use secrecy::SecretString;
use tempfile::TempDir;
use warden::{
    auth::limiter::{
        first_refusal, Decision, MemoryLimiter, Quotas, RateLimitStore, RedisLimiter, Rule,
    },
    config::Config,
};

use crate::helpers::{captured_logs, code, email, spawn_app_with, TestApp, PASSWORD};

/// A `redis-server` child on its own port, killed on drop.
struct RedisChild {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisChild {
    /// Starts `redis-server` on a free loopback port, without persistence.
    async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install redis-server or set WARDEN_TEST_REDIS_URL)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while ping(&self.url()).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Redis a test talks to, and the child behind it if it started one.
struct TestRedis {
    url: String,
    _child: Option<RedisChild>,
}

impl TestRedis {
    async fn get() -> Self {
        match std::env::var("WARDEN_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Self { url, _child: None },
            _ => {
                let child = RedisChild::start().await;
                Self {
                    url: child.url(),
                    _child: Some(child),
                }
            }
        }
    }
}

/// A loopback port nothing listens on (right now).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn connection(url: &str) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

async fn ping(url: &str) -> redis::RedisResult<()> {
    let mut conn = connection(url).await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

fn quotas(tweak: impl FnOnce(&mut Config)) -> Quotas {
    let mut config = Config::defaults().unwrap();
    tweak(&mut config);
    Quotas::from_config(&config)
}

async fn redis_limiter(url: &str, prefix: &str, quotas: Quotas) -> RedisLimiter {
    let limiter = RedisLimiter::connect(&SecretString::from(url.to_owned()), prefix, quotas)
        .await
        .unwrap();
    assert!(limiter.is_connected(), "connected to the test redis");
    limiter
}

/// One check on both stores; asserts they agree and returns the decision.
async fn both(memory: &MemoryLimiter, redis: &RedisLimiter, rule: Rule, key: &str) -> char {
    let from_memory = memory.check_now(rule, key).decision();
    let from_redis = redis.check(rule, key).await.unwrap().decision();
    match (from_memory, from_redis) {
        (Decision::Allow, Decision::Allow) => 'A',
        (Decision::Deny { retry_after: m }, Decision::Deny { retry_after: r }) => {
            let gap = m.abs_diff(r);
            assert!(
                gap <= Duration::from_millis(50),
                "{rule:?}: retry after {m:?} in memory, {r:?} in redis"
            );
            'D'
        }
        (m, r) => panic!("{rule:?}: memory says {m:?}, redis says {r:?}"),
    }
}

async fn run(
    memory: &MemoryLimiter,
    redis: &RedisLimiter,
    rule: Rule,
    key: &str,
    n: usize,
) -> String {
    let mut out = String::new();
    for _ in 0..n {
        out.push(both(memory, redis, rule, key).await);
    }
    out
}

#[tokio::test]
async fn redis_and_governor_make_the_same_decision_at_every_step() {
    let redis_server = TestRedis::get().await;
    // 5/s: a burst of 5, one back every 200 ms. 2/s: a burst of 2, one back every 500 ms.
    let quotas = quotas(|c| {
        c.rates.rate_login_ip = "5/s".parse().unwrap();
        c.rates.rate_login_email = "2/s".parse().unwrap();
    });
    let memory = MemoryLimiter::new(quotas);
    let redis = redis_limiter(&redis_server.url, &prefix(), quotas).await;
    let (ip, mail) = ("10.0.0.1", "10.0.0.1|someone@example.com");
    let mut seen = Vec::new();

    // t = 0: both bursts are spent, then refused.
    seen.push(run(&memory, &redis, Rule::LoginIp, ip, 7).await);
    seen.push(run(&memory, &redis, Rule::LoginEmail, mail, 3).await);
    seen.push(run(&memory, &redis, Rule::LoginIp, "10.0.0.2", 1).await);
    // t ≈ 300 ms: one 200 ms unit is back; no 500 ms unit yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.push(run(&memory, &redis, Rule::LoginIp, ip, 2).await);
    seen.push(run(&memory, &redis, Rule::LoginEmail, mail, 1).await);
    // t ≈ 700 ms: two more 200 ms units, one 500 ms unit.
    tokio::time::sleep(Duration::from_millis(400)).await;
    seen.push(run(&memory, &redis, Rule::LoginIp, ip, 3).await);
    seen.push(run(&memory, &redis, Rule::LoginEmail, mail, 2).await);
    // t ≈ 1300 ms: three more 200 ms units.
    tokio::time::sleep(Duration::from_millis(600)).await;
    seen.push(run(&memory, &redis, Rule::LoginIp, ip, 4).await);

    assert_eq!(
        seen,
        ["AAAAADD", "AAD", "A", "AD", "D", "AAD", "AD", "AAAD"],
        "both stores follow governor's quota"
    );
}

/// What login relies on: buckets checked in order, in one call, where a
/// refusal leaves the buckets after it unspent. Same answers from the
/// in-memory store (the trait's sequential default) and from the Redis
/// script.
#[tokio::test]
async fn checks_in_order_stop_at_the_first_refusal_on_both_stores() {
    let redis_server = TestRedis::get().await;
    // Per minute: nothing comes back during the test.
    let quotas = quotas(|c| {
        c.rates.rate_login_ip = "2/min".parse().unwrap();
        c.rates.rate_login_email = "3/min".parse().unwrap();
    });
    let memory = MemoryLimiter::new(quotas);
    let redis = redis_limiter(&redis_server.url, &prefix(), quotas).await;
    let stores: [&dyn RateLimitStore; 2] = [&memory, &redis];
    for store in stores {
        let name = store.backend();
        let (ip, other_ip, mail) = ("10.0.0.1", "10.0.0.2", "10.0.0.1|someone@example.com");
        let pair = [(Rule::LoginIp, ip), (Rule::LoginEmail, mail)];
        let mut seen = Vec::new();
        for _ in 0..3 {
            let states = store.check_in_order(&pair).await.unwrap();
            seen.push(first_refusal(&states).map(|(i, _)| i));
        }
        assert_eq!(
            seen,
            [None, None, Some(0)],
            "{name}: the IP bucket refuses third"
        );
        // The third call stopped at the IP: one unit of the email's is left.
        assert_eq!(
            store
                .check(Rule::LoginEmail, mail)
                .await
                .unwrap()
                .decision(),
            Decision::Allow,
            "{name}"
        );
        // Now the email's bucket is empty: a fresh IP passes, the email refuses.
        let pair = [(Rule::LoginIp, other_ip), (Rule::LoginEmail, mail)];
        let refused = first_refusal(&store.check_in_order(&pair).await.unwrap());
        assert!(
            matches!(refused, Some((1, wait)) if wait > Duration::from_secs(1)),
            "{name}: {refused:?}"
        );
        // The fresh IP's unit was spent before the refusal: one is left.
        assert_eq!(
            store
                .check(Rule::LoginIp, other_ip)
                .await
                .unwrap()
                .decision(),
            Decision::Allow,
            "{name}"
        );
        assert!(
            matches!(
                store
                    .check(Rule::LoginIp, other_ip)
                    .await
                    .unwrap()
                    .decision(),
                Decision::Deny { .. }
            ),
            "{name}"
        );
    }
}

/// The `RateLimit` header's numbers: for the same sequence, both stores
/// report the same remaining units at every step, and the same time until
/// the bucket is full again and until the next unit (within the time the
/// calls themselves take).
#[tokio::test]
async fn memory_and_redis_report_the_same_quota_remaining_and_reset() {
    let redis_server = TestRedis::get().await;
    let quotas = quotas(|c| {
        c.rates.rate_login_ip = "4/min".parse().unwrap();
        c.rates.rate_login_email = "2/min".parse().unwrap();
    });
    let memory = MemoryLimiter::new(quotas);
    let redis = redis_limiter(&redis_server.url, &prefix(), quotas).await;
    let pair = [
        (Rule::LoginIp, "10.0.0.1"),
        (Rule::LoginEmail, "10.0.0.1|someone"),
    ];
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let from_memory = memory.check_in_order(&pair).await.unwrap();
        let from_redis = redis.check_in_order(&pair).await.unwrap();
        assert_eq!(from_memory.len(), from_redis.len());
        for (m, r) in from_memory.iter().zip(&from_redis) {
            assert_eq!(
                (m.rule, m.quota, m.allowed, m.remaining),
                (r.rule, r.quota, r.allowed, r.remaining)
            );
            assert!(
                m.reset.abs_diff(r.reset) <= Duration::from_millis(50),
                "{m:?} vs {r:?}"
            );
            assert!(
                m.retry_after.abs_diff(r.retry_after) <= Duration::from_millis(50),
                "{m:?} vs {r:?}"
            );
        }
        remaining.push(
            from_redis
                .iter()
                .map(|s| (s.allowed, s.remaining))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        remaining,
        [
            vec![(true, 3), (true, 1)],
            vec![(true, 2), (true, 0)],
            vec![(true, 1), (false, 0)],
            vec![(true, 0), (false, 0)],
        ],
        "the email bucket refuses third; the IP's goes on counting down"
    );
    let last = redis.check(Rule::LoginIp, "10.0.0.1").await.unwrap();
    assert!(!last.allowed);
    // 4/min: 15 s per unit, four spent, so full again in about 60 s; the
    // next unit in about 15 s.
    assert!(
        last.reset > Duration::from_secs(59) && last.reset <= Duration::from_secs(60),
        "{last:?}"
    );
    assert!(
        last.retry_after > Duration::from_secs(14) && last.retry_after <= Duration::from_secs(15),
        "{last:?}"
    );
}

/// The headers over HTTP with the buckets in Redis (the rate-limit suite
/// covers memory, or Redis when `WARDEN_TEST_REDIS_URL` is set).
#[tokio::test]
async fn rate_limit_headers_come_from_redis_buckets_too() {
    let redis_server = TestRedis::get().await;
    let url = redis_server.url.clone();
    let app = spawn_app_with(|c| {
        c.redis_url = Some(url.into());
        c.redis_prefix = prefix();
        c.rates.rate_register_ip = "2/min".parse().unwrap();
        c.rates.rate_anonymous = "10/min".parse().unwrap();
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = app
            .post(
                None,
                &format!("mutation {{ register(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ accessToken }} }}", email()),
                serde_json::json!({}),
            )
            .await;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("ratelimit-policy").as_deref(),
            Some("\"anonymous_ip\";q=10;w=60, \"register_ip\";q=2;w=60")
        );
        seen.push((
            header("ratelimit").unwrap_or_default(),
            header("retry-after").is_some(),
        ));
    }
    // The caller's quota (spent before parsing) and the operation's rule,
    // both counted in Redis.
    for (i, (limit, _)) in seen.iter().enumerate() {
        let anonymous = format!("\"anonymous_ip\";r={};t=", 9 - i);
        assert!(limit.starts_with(&anonymous), "{seen:?}");
    }
    assert!(seen[0].0.contains(", \"register_ip\";r=1;t="), "{seen:?}");
    assert!(seen[1].0.contains(", \"register_ip\";r=0;t="), "{seen:?}");
    assert!(seen[2].0.contains(", \"register_ip\";r=0;t="), "{seen:?}");
    assert_eq!(
        seen.iter().map(|(_, retry)| *retry).collect::<Vec<_>>(),
        [false, false, true]
    );
}

#[tokio::test]
async fn every_bucket_written_to_redis_expires_when_it_is_full_again() {
    let redis_server = TestRedis::get().await;
    let prefix = prefix();
    let quotas = quotas(|c| {
        c.rates.rate_login_ip = "5/s".parse().unwrap();
        c.rates.rate_register_ip = "3/min".parse().unwrap();
    });
    let redis = redis_limiter(&redis_server.url, &prefix, quotas).await;
    for _ in 0..3 {
        redis.check(Rule::LoginIp, "10.0.0.1").await.unwrap();
    }
    for _ in 0..4 {
        redis.check(Rule::RegisterIp, "10.0.0.1").await.unwrap();
    }
    redis.check(Rule::RefreshIp, "10.0.0.2").await.unwrap();

    let mut conn = connection(&redis_server.url).await.unwrap();
    let mut keys: Vec<String> = conn.keys(format!("{prefix}:*")).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}:rl:login_ip:10.0.0.1"),
            format!("{prefix}:rl:refresh_ip:10.0.0.2"),
            format!("{prefix}:rl:register_ip:10.0.0.1"),
        ]
    );
    for key in &keys {
        let ttl: i64 = conn.pttl(key).await.unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
    // Three units of 200 ms: full again in 600 ms.
    let ttl: i64 = conn.pttl(&keys[0]).await.unwrap();
    assert!((400..=600).contains(&ttl), "login_ip TTL {ttl} ms");
    // Three units of 20 s (the refused fourth writes nothing): full in 60 s.
    let ttl: i64 = conn.pttl(&keys[2]).await.unwrap();
    assert!((58_000..=60_000).contains(&ttl), "register_ip TTL {ttl} ms");
}

async fn shared_app(url: &str, prefix: &str) -> TestApp {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    spawn_app_with(move |c| {
        c.redis_url = Some(url.into());
        c.redis_prefix = prefix;
        c.rates.rate_login_ip = "3/min".parse().unwrap();
    })
    .await
}

async fn failed_login(app: &TestApp) -> Option<String> {
    code(&app.login(&email(), "wrong password guess").await).map(str::to_owned)
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn fallbacks(app: &TestApp) -> u64 {
    let (_, text) = get(app, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("warden_limiter_fallbacks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fallback counter in {text}"))
}

const INVALID: Option<&str> = Some("INVALID_CREDENTIALS");
const LIMITED: Option<&str> = Some("RATE_LIMITED");

#[tokio::test]
async fn two_servers_share_the_login_quota_through_redis() {
    let redis_server = TestRedis::get().await;
    let prefix = prefix();
    let a = shared_app(&redis_server.url, &prefix).await;
    let b = shared_app(&redis_server.url, &prefix).await;
    assert_eq!(a.state.limits.backend(), "redis");
    for _ in 0..3 {
        assert_eq!(failed_login(&a).await.as_deref(), INVALID);
    }
    assert_eq!(
        failed_login(&b).await.as_deref(),
        LIMITED,
        "the other server sees the spent bucket"
    );
    assert_eq!(get(&b, "/readyz").await.0, StatusCode::OK);
    assert_eq!(fallbacks(&a).await + fallbacks(&b).await, 0);
    let mut conn = connection(&redis_server.url).await.unwrap();
    let exists: bool = conn
        .exists(format!("{prefix}:rl:login_ip:127.0.0.1"))
        .await
        .unwrap();
    assert!(exists, "the bucket lives in redis under the prefix");
}

#[tokio::test]
async fn with_redis_unreachable_logins_still_work_and_are_limited_in_memory() {
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let url = format!("redis://:{password}@127.0.0.1:{}/", free_port());
    let app = shared_app(&url, &prefix()).await;
    assert_eq!(app.state.limits.backend(), "redis");
    for _ in 0..3 {
        assert_eq!(failed_login(&app).await.as_deref(), INVALID);
    }
    assert_eq!(failed_login(&app).await.as_deref(), LIMITED);
    assert!(fallbacks(&app).await >= 4);
    // Degraded, not unready: the instance serves with in-memory limits.
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "degraded: redis unavailable");
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("warden_dependency_up{dependency=\"redis\"} 0")
            && metrics.contains("warden_dependency_up{dependency=\"database\"} 1"),
        "{metrics}"
    );
    assert!(
        !captured_logs().contains(&password),
        "the redis URL's password reached the log"
    );
}

#[tokio::test]
async fn when_redis_dies_and_returns_sharing_resumes_without_a_restart() {
    let mut redis_server = RedisChild::start().await;
    let prefix = prefix();
    let a = shared_app(&redis_server.url(), &prefix).await;
    let b = shared_app(&redis_server.url(), &prefix).await;
    for _ in 0..3 {
        assert_eq!(failed_login(&a).await.as_deref(), INVALID);
    }
    assert_eq!(failed_login(&b).await.as_deref(), LIMITED);

    redis_server.kill();
    // A's memory has a bucket of its own: logins work, and stop at the quota.
    for _ in 0..3 {
        assert_eq!(failed_login(&a).await.as_deref(), INVALID);
    }
    assert_eq!(failed_login(&a).await.as_deref(), LIMITED);
    assert!(fallbacks(&a).await >= 4);
    let (status, body) = get(&a, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "degraded is still ready");
    assert_eq!(body, "degraded: redis unavailable");

    // Back, empty.
    redis_server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for app in [&a, &b] {
        while get(app, "/readyz").await != (StatusCode::OK, "ready".to_owned()) {
            assert!(Instant::now() < deadline, "readiness never recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Past the window in which a failed store is left alone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fallbacks_before = fallbacks(&a).await;
    // A's memory bucket is spent, so these are answered by redis.
    for _ in 0..3 {
        assert_eq!(failed_login(&a).await.as_deref(), INVALID);
    }
    assert_eq!(
        failed_login(&b).await.as_deref(),
        LIMITED,
        "the buckets are shared again"
    );
    assert_eq!(fallbacks(&a).await, fallbacks_before);
    let (_, metrics) = get(&a, "/metrics").await;
    assert!(
        metrics.contains("warden_dependency_up{dependency=\"redis\"} 1"),
        "{metrics}"
    );
    let logs = captured_logs();
    assert!(
        logs.contains("limiting in memory until it is back"),
        "the outage is logged"
    );
    assert!(
        logs.contains("buckets are shared again"),
        "so is the recovery"
    );
}

/// A login from `ip` (behind the trusted loopback proxy); its error code,
/// or `None` when it signed in.
async fn login_from(app: &TestApp, who: &str, password: &str, ip: &str) -> Option<String> {
    let body = app
        .login_with_headers(who, password, &[("x-forwarded-for", ip.to_owned())])
        .await;
    if code(&body).is_none() {
        assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
    }
    code(&body).map(str::to_owned)
}

/// The login looks the account up while the limiter decides. Whether the
/// limiter answers at once (memory) or after a round trip (Redis), a
/// refused attempt must stay refused even with the right password, must
/// not count towards the lockout, and must not be audited as a failure.
#[tokio::test]
async fn a_refused_login_counts_nowhere_whichever_store_refuses_it() {
    let redis_server = TestRedis::get().await;
    for shared in [false, true] {
        let url = redis_server.url.clone();
        let app = spawn_app_with(move |c| {
            c.redis_url = shared.then(|| url.into());
            c.redis_prefix = prefix();
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.rates.rate_login_email = "2/min".parse().unwrap();
            c.lockout_threshold = 3;
        })
        .await;
        let backend = if shared { "redis" } else { "memory" };
        assert_eq!(app.state.limits.backend(), backend);
        let who = email();
        app.register(&who).await;
        let attacker = "203.0.113.10";
        for _ in 0..2 {
            let failed = login_from(&app, &who, "wrong password guess", attacker).await;
            assert_eq!(failed.as_deref(), INVALID, "{backend}");
        }
        for password in ["wrong password guess", PASSWORD, "another guess", PASSWORD] {
            let refused = login_from(&app, &who, password, attacker).await;
            assert_eq!(refused.as_deref(), LIMITED, "{backend}");
        }
        // Two failures against a threshold of three: had the four refused
        // attempts counted, the account would be locked now.
        let owner = login_from(&app, &who, PASSWORD, "198.51.100.20").await;
        assert_eq!(owner, None, "{backend}: the owner signs in from elsewhere");

        let token = app.admin_token().await;
        let log = app
            .gql(Some(&token), "{ auditLog(filter: { kinds: [LOGIN_FAILED, ACCOUNT_LOCKED] }, first: 200) { edges { node { kind ip } } } }", serde_json::json!({}))
            .await;
        let edges = log["data"]["auditLog"]["edges"].as_array().unwrap();
        let from_attacker: Vec<_> = edges
            .iter()
            .filter(|e| e["node"]["ip"] == attacker)
            .map(|e| e["node"]["kind"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(from_attacker, ["LOGIN_FAILED"; 2], "{backend}: {log}");
        assert_eq!(
            fallbacks(&app).await,
            0,
            "{backend}: answered by its own store"
        );
    }
}
