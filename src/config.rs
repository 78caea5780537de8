//! One typed [`Config`], read from `WARDEN_*` environment variables and the
//! matching `--flags`, with defaults that need no configuration at all.
//!
//! Parsing is strict on purpose: an auth server that silently ignores a typo
//! in `WARDEN_ACESS_TOKEN_TTL` runs with settings its operator did not choose.
//! [`check_unknown_env`] refuses any `WARDEN_*` variable this file does not know.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Args;

use crate::auth::signing::JwtAlgorithm;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

/// Every setting of the server. Secrets are [`SecretString`]s, so `Debug`
/// never prints them.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to serve on.
    #[arg(
        long,
        env = "WARDEN_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// `sqlite://…` or `postgres://…`; migrations run at start.
    #[arg(long, env = "WARDEN_DATABASE_URL", default_value = "sqlite://warden.db?mode=rwc", value_parser = parse_database_url, hide_env_values = true, global = true)]
    pub database_url: SecretString,

    /// Redis URL; shares rate limits between instances.
    #[arg(long, env = "WARDEN_REDIS_URL", value_parser = parse_redis_url, hide_env_values = true, global = true)]
    pub redis_url: Option<SecretString>,

    /// Access-token algorithm: `HS256` (default) or `EdDSA` (Ed25519, public keys on /.well-known/jwks.json).
    #[arg(
        long,
        env = "WARDEN_JWT_ALGORITHM",
        default_value = "HS256",
        global = true
    )]
    pub jwt_algorithm: JwtAlgorithm,

    /// HS256 signing key, at least 32 bytes. Unset: generated once and kept in the database.
    #[arg(long, env = "WARDEN_JWT_SECRET", value_parser = parse_jwt_secret, hide_env_values = true, global = true)]
    pub jwt_secret: Option<SecretString>,

    /// The `iss` claim of access tokens.
    #[arg(long, env = "WARDEN_ISSUER", default_value = "warden", value_parser = parse_non_empty, global = true)]
    pub issuer: String,

    /// The `aud` claim of access tokens.
    #[arg(long, env = "WARDEN_AUDIENCE", default_value = "warden", value_parser = parse_non_empty, global = true)]
    pub audience: String,

    /// Lifetime of an access token.
    #[arg(long, env = "WARDEN_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_positive_duration, global = true)]
    pub access_token_ttl: Duration,

    /// Lifetime of a refresh token from its issue.
    #[arg(long, env = "WARDEN_REFRESH_TOKEN_TTL", default_value = "7d", value_parser = parse_positive_duration, global = true)]
    pub refresh_token_ttl: Duration,

    /// Absolute lifetime of a session, whatever refreshes happen.
    #[arg(long, env = "WARDEN_SESSION_MAX_AGE", default_value = "30d", value_parser = parse_positive_duration, global = true)]
    pub session_max_age: Duration,

    /// How long a rotated refresh token may come back and get the same successor. `0s` turns the grace off.
    #[arg(long, env = "WARDEN_REFRESH_REUSE_INTERVAL", default_value = "10s", value_parser = parse_duration, global = true)]
    pub refresh_reuse_interval: Duration,

    /// bcrypt cost, 4 to 31.
    #[arg(long, env = "WARDEN_BCRYPT_COST", default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31), global = true)]
    pub bcrypt_cost: u32,

    /// Failed logins for one email from one client (IP bucket, or trusted
    /// device), within the window, that lock that client out of that email.
    #[arg(
        long,
        env = "WARDEN_LOCKOUT_THRESHOLD",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub lockout_threshold: u32,

    /// Window in which failed logins count towards the lockout.
    #[arg(long, env = "WARDEN_LOCKOUT_WINDOW", default_value = "15m", value_parser = parse_positive_duration, global = true)]
    pub lockout_window: Duration,

    /// How long a locked-out client stays locked out of that email.
    #[arg(long, env = "WARDEN_LOCKOUT_DURATION", default_value = "15m", value_parser = parse_positive_duration, global = true)]
    pub lockout_duration: Duration,

    /// Failed logins for one email from all clients, within the window, after
    /// which only trusted devices (a device token from an earlier login) may try it.
    #[arg(
        long,
        env = "WARDEN_LOCKOUT_GLOBAL_THRESHOLD",
        default_value_t = 50,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub lockout_global_threshold: u32,

    /// Lifetime of a device token: how long a device that logged in stays trusted.
    #[arg(long, env = "WARDEN_DEVICE_TOKEN_TTL", default_value = "90d", value_parser = parse_positive_duration, global = true)]
    pub device_token_ttl: Duration,

    /// IPv6 clients share one bucket per prefix of this length (1 to 128) in every
    /// rate limit, lockout counter and per-IP cap: one subscriber usually holds a whole /64.
    #[arg(long, env = "WARDEN_IPV6_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128), global = true)]
    pub ipv6_prefix: u8,

    /// `on` or `off`: `off` turns every rate limit off (lockout stays).
    #[arg(long, env = "WARDEN_RATE_LIMITS", default_value = "on", value_parser = parse_switch, global = true)]
    pub rate_limits: bool,

    /// `login` quota per client IP.
    #[arg(
        long,
        env = "WARDEN_RATE_LOGIN_IP",
        default_value = "10/min",
        global = true
    )]
    pub rate_login_ip: RateQuota,

    /// `login` quota per client IP and email.
    #[arg(
        long,
        env = "WARDEN_RATE_LOGIN_EMAIL",
        default_value = "5/min",
        global = true
    )]
    pub rate_login_email: RateQuota,

    /// `register` quota per client IP.
    #[arg(
        long,
        env = "WARDEN_RATE_REGISTER_IP",
        default_value = "5/min",
        global = true
    )]
    pub rate_register_ip: RateQuota,

    /// `refresh` quota per client IP.
    #[arg(
        long,
        env = "WARDEN_RATE_REFRESH_IP",
        default_value = "30/min",
        global = true
    )]
    pub rate_refresh_ip: RateQuota,

    /// `auditLog` reads per user.
    #[arg(
        long,
        env = "WARDEN_RATE_AUDIT_LOG",
        default_value = "60/min",
        global = true
    )]
    pub rate_audit_log: RateQuota,

    /// Comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed.
    #[arg(long, env = "WARDEN_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net, global = true)]
    pub trusted_proxies: Vec<IpNet>,

    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        env = "WARDEN_MAX_BODY_BYTES",
        default_value_t = 65536,
        value_parser = parse_body_limit,
        global = true
    )]
    pub max_body_bytes: usize,

    /// How long a connection may take to send a request head or body; idle
    /// keep-alive time counts too. Keep it above the idle timeout of the load
    /// balancer in front, so the balancer closes pooled connections first.
    #[arg(long, env = "WARDEN_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_positive_duration, global = true)]
    pub idle_timeout: Duration,

    /// Operations allowed in one batched request; 1 refuses batches.
    #[arg(long, env = "WARDEN_MAX_BATCH", default_value_t = 1, value_parser = parse_batch, global = true)]
    pub max_batch: usize,

    /// Serve introspection and GraphiQL (`false` also turns field suggestions off).
    #[arg(long, env = "WARDEN_INTROSPECTION", default_value = "true", value_parser = parse_switch, global = true)]
    pub introspection: bool,

    /// How often the cleanup task runs.
    #[arg(long, env = "WARDEN_CLEANUP_INTERVAL", default_value = "1h", value_parser = parse_positive_duration, global = true)]
    pub cleanup_interval: Duration,

    /// How long revoked and expired sessions are kept before cleanup deletes them.
    #[arg(long, env = "WARDEN_REVOKED_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub revoked_retention: Duration,

    /// How long audit rows are kept.
    #[arg(long, env = "WARDEN_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration, global = true)]
    pub audit_retention: Duration,

    /// `pretty` or `json` (one JSON object per line).
    #[arg(
        long,
        env = "WARDEN_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// Largest number of database connections (Postgres; SQLite uses one writer and four readers).
    #[arg(long, env = "WARDEN_DATABASE_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: u32,

    /// How long an operation waits for a database connection (or SQLite's lock) before answering `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "WARDEN_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration, global = true)]
    pub database_acquire_timeout: Duration,

    /// `off`, `on` (also hand the refresh token to browsers as an HttpOnly cookie, and
    /// read it back) or `only` (the cookie alone: `refreshToken` in bodies is empty).
    #[arg(long, env = "WARDEN_REFRESH_COOKIE", default_value = "off", value_parser = parse_refresh_cookie, global = true)]
    pub refresh_cookie: RefreshCookieMode,

    /// Mark the refresh cookie Secure (HTTPS only); `false` only for local development over HTTP.
    #[arg(long, env = "WARDEN_COOKIE_SECURE", default_value = "true", value_parser = parse_switch, global = true)]
    pub cookie_secure: bool,

    /// Comma-separated origins (like https://app.example.com) allowed to call Warden from a browser, with credentials.
    #[arg(long, env = "WARDEN_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub cors_origins: Vec<String>,

    /// Most connections open at once; a connection over the cap is answered 503 and closed.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: u32,

    /// Most connections open at once from one client IP (IPv6: one prefix); a
    /// trusted proxy's connections are not capped per IP.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS_PER_IP", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections_per_ip: u32,

    /// `on` checks new passwords against the Have I Been Pwned range API
    /// (k-anonymity: only 5 hex digits of the SHA-1 leave; fails open).
    #[arg(long, env = "WARDEN_PWNED_PASSWORDS", default_value = "off", value_parser = parse_switch, global = true)]
    pub pwned_passwords: bool,

    /// Base URL of the Pwned Passwords range API (`{url}/range/{5 hex digits}`).
    #[arg(
        long,
        env = "WARDEN_PWNED_PASSWORDS_URL",
        default_value = "https://api.pwnedpasswords.com",
        value_parser = parse_non_empty,
        global = true
    )]
    pub pwned_passwords_url: String,

    /// Prefix of every Redis key, so deployments (and tests) can share one Redis.
    #[arg(long, env = "WARDEN_REDIS_PREFIX", default_value = "warden", value_parser = parse_non_empty, global = true)]
    pub redis_prefix: String,
}

/// Every variable [`Config`] reads. Kept next to the struct so that adding a
/// field without listing it fails the unit test below.
pub const KNOWN_ENV: &[&str] = &[
    "WARDEN_LISTEN",
    "WARDEN_DATABASE_URL",
    "WARDEN_REDIS_URL",
    "WARDEN_JWT_SECRET",
    "WARDEN_JWT_ALGORITHM",
    "WARDEN_ISSUER",
    "WARDEN_AUDIENCE",
    "WARDEN_ACCESS_TOKEN_TTL",
    "WARDEN_REFRESH_TOKEN_TTL",
    "WARDEN_SESSION_MAX_AGE",
    "WARDEN_REFRESH_REUSE_INTERVAL",
    "WARDEN_BCRYPT_COST",
    "WARDEN_LOCKOUT_THRESHOLD",
    "WARDEN_LOCKOUT_WINDOW",
    "WARDEN_LOCKOUT_DURATION",
    "WARDEN_RATE_LIMITS",
    "WARDEN_RATE_LOGIN_IP",
    "WARDEN_RATE_LOGIN_EMAIL",
    "WARDEN_RATE_REGISTER_IP",
    "WARDEN_RATE_REFRESH_IP",
    "WARDEN_TRUSTED_PROXIES",
    "WARDEN_MAX_BODY_BYTES",
    "WARDEN_MAX_BATCH",
    "WARDEN_IDLE_TIMEOUT",
    "WARDEN_INTROSPECTION",
    "WARDEN_CLEANUP_INTERVAL",
    "WARDEN_REVOKED_RETENTION",
    "WARDEN_AUDIT_RETENTION",
    "WARDEN_LOG_FORMAT",
    "WARDEN_DATABASE_MAX_CONNECTIONS",
    "WARDEN_DATABASE_ACQUIRE_TIMEOUT",
    "WARDEN_REDIS_PREFIX",
    "WARDEN_REFRESH_COOKIE",
    "WARDEN_COOKIE_SECURE",
    "WARDEN_CORS_ORIGINS",
    "WARDEN_LOCKOUT_GLOBAL_THRESHOLD",
    "WARDEN_DEVICE_TOKEN_TTL",
    "WARDEN_IPV6_PREFIX",
    "WARDEN_RATE_AUDIT_LOG",
    "WARDEN_MAX_CONNECTIONS",
    "WARDEN_MAX_CONNECTIONS_PER_IP",
    "WARDEN_PWNED_PASSWORDS",
    "WARDEN_PWNED_PASSWORDS_URL",
];

/// Refuses a `WARDEN_*` variable that no setting reads: the one-line error
/// names it, so a typo stops start-up instead of being ignored.
pub fn check_unknown_env<I>(vars: I) -> Result<(), String>
where
    I: IntoIterator<Item = String>,
{
    for name in vars {
        if name.starts_with("WARDEN_") && !KNOWN_ENV.contains(&name.as_str()) {
            return Err(format!(
                "unknown environment variable {name}: no Warden setting has that name"
            ));
        }
    }
    Ok(())
}

impl Config {
    /// The zero-configuration defaults, ignoring the environment: what
    /// `warden` runs with when nothing is set. Tests start from this.
    pub fn defaults() -> Result<Self, clap::Error> {
        use clap::{CommandFactory, FromArgMatches, Parser};
        #[derive(Parser)]
        struct Bare {
            #[command(flatten)]
            config: Config,
        }
        let matches = Bare::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(["warden"])?;
        Bare::from_arg_matches(&matches).map(|bare| bare.config)
    }

    /// A config from `WARDEN_*` name/value pairs, as if they were the whole
    /// environment: for checking deployment files (docker-compose) against
    /// the real parser.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        use clap::{CommandFactory, FromArgMatches, Parser};
        #[derive(Parser)]
        struct Bare {
            #[command(flatten)]
            config: Config,
        }
        let command = Bare::command().mut_args(|arg| arg.env(None));
        let mut args = vec!["warden".to_owned()];
        for (name, value) in vars {
            let flag = Bare::command()
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name))
                .and_then(|a| a.get_long().map(str::to_owned))
                .ok_or_else(|| format!("unknown environment variable {name}"))?;
            args.push(format!("--{flag}={value}"));
        }
        let matches = command
            .try_get_matches_from(args)
            .map_err(|e| e.to_string())?;
        Bare::from_arg_matches(&matches)
            .map(|bare| bare.config)
            .map_err(|e| e.to_string())
    }

    /// The database URL with any password removed, for start-up lines and logs.
    pub fn database_display(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }

    /// True when the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite:")
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user@host/db`.
fn redact_url(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) if query.to_ascii_lowercase().contains("password") => base,
        _ => url,
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A rate-limit quota: `count` requests per `per`, written `N/s`, `N/min` or `N/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    /// Requests allowed per period; at least 1.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl FromStr for RateQuota {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a quota: write N/s, N/min or N/h"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number"))?;
        if count == 0 {
            return Err("a quota must allow at least 1 request".into());
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("unknown quota unit `{other}`: use s, min or h")),
        };
        Ok(Self { count, per })
    }
}

impl fmt::Display for RateQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Whether the refresh token also travels in an HttpOnly cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshCookieMode {
    /// Only in response bodies and arguments.
    Off,
    /// In bodies and in the `warden_refresh` cookie.
    On,
    /// In the cookie alone: `AuthPayload.refreshToken` is returned empty, so no
    /// script ever sees the token (a deliberate use of the non-null field).
    Only,
}

impl RefreshCookieMode {
    /// True when the cookie is set and read.
    pub fn enabled(self) -> bool {
        self != Self::Off
    }

    /// True when response bodies must not carry the refresh token.
    pub fn cookie_only(self) -> bool {
        self == Self::Only
    }
}

fn parse_refresh_cookie(s: &str) -> Result<RefreshCookieMode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "0" | "no" => Ok(RefreshCookieMode::Off),
        "on" | "true" | "1" | "yes" => Ok(RefreshCookieMode::On),
        "only" => Ok(RefreshCookieMode::Only),
        _ => Err(format!("`{s}` is not off, on or only")),
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s, 15m or 7d ({e})"))
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

fn parse_non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_owned())
}

fn parse_body_limit(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of bytes"))?;
    if n < 1024 {
        return Err("must be at least 1024 bytes".into());
    }
    Ok(n)
}

fn parse_batch(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Accepts `sqlite://<file>` and `postgres://…`. An in-memory SQLite
/// database is refused: each pool would get its own empty database.
fn parse_database_url(s: &str) -> Result<SecretString, String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        if lower.contains(":memory:") || lower.contains("mode=memory") {
            return Err("an in-memory SQLite database is not supported: use a file, like sqlite://warden.db?mode=rwc".into());
        }
    } else if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return Err("must start with sqlite:// or postgres://".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// An exact origin: `scheme://host[:port]`, nothing else. A wildcard is
/// refused: with credentials it would hand sessions to any site.
fn parse_origin(s: &str) -> Result<String, String> {
    let origin = s.trim().trim_end_matches('/');
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err(format!(
            "`{origin}` is not an origin like https://app.example.com"
        ));
    };
    let host_ok = !host.is_empty() && !host.contains(['/', '*', '?', '#', ' ']);
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(format!(
            "`{origin}` is not an origin like https://app.example.com (no wildcards, no paths)"
        ));
    }
    Ok(origin.to_owned())
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{s}` is not on/off or true/false")),
    }
}

/// A Redis URL the client can use; the message never repeats it (it may
/// hold a password).
fn parse_redis_url(s: &str) -> Result<SecretString, String> {
    redis::Client::open(s)
        .map(|_| SecretString::from(s.to_owned()))
        .map_err(|_| "not a usable redis:// URL".into())
}

/// Example values that appear in docs and tutorials: a server started with
/// one of them signs tokens anyone can forge.
const EXAMPLE_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "your-secret",
    "your-256-bit-secret",
    "example",
];

fn parse_jwt_secret(s: &str) -> Result<SecretString, String> {
    if s.len() < 32 {
        return Err(format!("must be at least 32 bytes, got {}", s.len()));
    }
    let lower = s.to_ascii_lowercase();
    if EXAMPLE_SECRETS
        .iter()
        .any(|example| lower.contains(example))
        || s.bytes().all(|b| b == s.as_bytes()[0])
    {
        return Err(
            "looks like an example value: generate one with `openssl rand -base64 48`".into(),
        );
    }
    Ok(SecretString::from(s.to_owned()))
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn every_setting_has_its_variable_listed() {
        let cmd = Wrapper::command();
        let mut from_args: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        from_args.sort();
        let mut known: Vec<String> = KNOWN_ENV.iter().map(|s| s.to_string()).collect();
        known.sort();
        assert_eq!(from_args, known);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::defaults().expect("defaults parse");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite://warden.db?mode=rwc"
        );
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_reuse_interval, Duration::from_secs(10));
        assert_eq!(config.bcrypt_cost, 12);
        assert_eq!(config.rate_login_email.to_string(), "5/min");
        assert!(config.jwt_secret.is_none() && config.introspection && config.rate_limits);
    }

    #[test]
    fn quotas_parse_in_three_units() {
        assert_eq!(
            "10/min"
                .parse::<RateQuota>()
                .map(|q| (q.count, q.per.as_secs())),
            Ok((10, 60))
        );
        assert_eq!("3/s".parse::<RateQuota>().map(|q| q.per.as_secs()), Ok(1));
        assert_eq!(
            "100/h".parse::<RateQuota>().map(|q| q.per.as_secs()),
            Ok(3600)
        );
        assert!("0/min".parse::<RateQuota>().is_err());
        assert!("ten/min".parse::<RateQuota>().is_err());
        assert!("10/day".parse::<RateQuota>().is_err());
    }

    #[test]
    fn unknown_warden_variables_are_refused_by_name() {
        let err = check_unknown_env(["WARDEN_ACESS_TOKEN_TTL".to_string()]);
        assert!(matches!(err, Err(msg) if msg.contains("WARDEN_ACESS_TOKEN_TTL")));
        assert!(check_unknown_env(["WARDEN_LISTEN".into(), "HOME".into()]).is_ok());
        assert!(check_unknown_env(["WARDEN_TEST_DATABASE_URL".into()]).is_err());
    }

    #[test]
    fn short_and_example_secrets_are_refused() {
        assert!(parse_jwt_secret("short").is_err());
        assert!(parse_jwt_secret("your-256-bit-secret-your-256-bit-secret").is_err());
        assert!(parse_jwt_secret(&"a".repeat(40)).is_err());
        assert!(parse_jwt_secret("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs").is_ok());
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://warden:hunter2@db:5432/warden"),
            "postgres://warden@db:5432/warden"
        );
        assert_eq!(
            redact_url("sqlite://warden.db?mode=rwc"),
            "sqlite://warden.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://db/warden?user=w&password=hunter2"),
            "postgres://db/warden"
        );
    }

    #[test]
    fn database_urls_must_be_a_sqlite_file_or_postgres() {
        assert!(parse_database_url("sqlite://warden.db?mode=rwc").is_ok());
        assert!(parse_database_url("postgres://u:p@localhost/warden").is_ok());
        assert!(parse_database_url("sqlite::memory:").is_err());
        assert!(parse_database_url("mysql://localhost/warden").is_err());
    }

    #[test]
    fn zero_durations_and_empty_names_are_refused() {
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("15m").is_ok());
        assert!(parse_non_empty("  ").is_err());
        assert!(parse_body_limit("10").is_err());
        assert!(parse_batch("0").is_err());
    }
}
