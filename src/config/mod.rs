//! One typed [`Config`], read from `WARDEN_*` environment variables and the
//! matching `--flags`, with defaults that need no configuration at all.
//!
//! Parsing is strict on purpose: an auth server that silently ignores a typo
//! in `WARDEN_ACESS_TOKEN_TTL` runs with settings its operator did not choose.
//! [`check_unknown_env`] refuses any `WARDEN_*` variable this file does not know.
//!
//! # Layout
//! - this file: the [`Config`] struct (every setting, its variable, flag and
//!   default), the list of known variables, and building a config;
//! - [`values`]: the typed values settings take (quotas, modes, algorithm);
//! - [`rates`]: the table of rate rules, which makes the [`Rule`] enum and
//!   the `WARDEN_RATE_*` settings ([`RateQuotas`]);
//! - `parse`: the value parsers that make a bad value stop start-up with a
//!   line naming it.
//! - `browser`: the browser-facing settings' values and the checks across
//!   them (`SameSite=None` needs `Secure`; cross-site CORS origins in
//!   cookie mode are warned about);
//! - [`site`]: sites and registrable domains, as `SameSite` uses them.

use std::{net::SocketAddr, time::Duration};

use clap::{ArgAction, Args};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

mod browser;
mod mail;
mod parse;
pub mod rates;
pub mod site;
#[cfg(test)]
mod tests;
pub mod values;
pub mod webauthn;

pub use browser::{SameSite, DEFAULT_CORS_ALLOW_HEADERS};
use parse::*;
pub use rates::{KeyPart, RateQuotas, Rule};
pub use values::{JwtAlgorithm, LogFormat, RateQuota, RefreshCookieMode};

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
        value_parser = parse_jwt_algorithm,
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
    #[arg(long, env = "WARDEN_RATE_LIMITS", default_value = "on", value_parser = parse_switch, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "on", global = true)]
    pub rate_limits: bool,

    /// The quota of each rate rule (`WARDEN_RATE_LOGIN_IP` …), from the
    /// table in [`rates`].
    #[command(flatten)]
    pub rates: RateQuotas,

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

    /// Parsed documents kept for reuse, persisted queries included (one
    /// bound for both); 0 keeps none, and then every persisted-query hash
    /// is unknown.
    #[arg(
        long,
        env = "WARDEN_DOCUMENT_CACHE_SIZE",
        default_value_t = 128,
        global = true
    )]
    pub document_cache_size: usize,

    /// Serve introspection and GraphiQL (`false` also turns field suggestions off).
    #[arg(long, env = "WARDEN_INTROSPECTION", default_value = "true", value_parser = parse_switch, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", global = true)]
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
        value_parser = parse_enum::<LogFormat>,
        global = true
    )]
    pub log_format: LogFormat,

    /// How long start-up keeps retrying an unreachable database (Postgres), with
    /// backoff, before giving up; each failed attempt is logged.
    #[arg(long, env = "WARDEN_DATABASE_CONNECT_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration, global = true)]
    pub database_connect_timeout: Duration,

    /// Serve `/metrics` on this address (like `0.0.0.0:9090`) instead of the
    /// main listener, where it then answers 404. Unset: `/metrics` is on the main listener.
    #[arg(long, env = "WARDEN_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Largest number of database connections (Postgres; SQLite uses one writer and four readers).
    #[arg(long, env = "WARDEN_DATABASE_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: u32,

    /// How long an operation waits for a database connection (or SQLite's lock) before answering `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "WARDEN_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration, global = true)]
    pub database_acquire_timeout: Duration,

    /// `off`, `on` (also hand the refresh token to browsers as an HttpOnly cookie, and
    /// read it back) or `only` (the cookie alone: `refreshToken` in bodies is empty).
    #[arg(long, env = "WARDEN_REFRESH_COOKIE", default_value = "off", value_parser = parse_refresh_cookie, num_args = 0..=1, default_missing_value = "on", global = true)]
    pub refresh_cookie: RefreshCookieMode,

    /// Mark the refresh cookie Secure (HTTPS only); `false` only for local development over HTTP.
    #[arg(long, env = "WARDEN_COOKIE_SECURE", default_value = "true", value_parser = parse_switch, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", global = true)]
    pub cookie_secure: bool,

    /// Comma-separated origins (like https://app.example.com) allowed to call Warden from a browser, with credentials.
    #[arg(long, env = "WARDEN_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub cors_origins: Vec<String>,

    /// `SameSite` of Warden's cookies: `Strict`, `Lax`, or `None` (an app on another site; needs WARDEN_COOKIE_SECURE=true).
    #[arg(
        long,
        env = "WARDEN_COOKIE_SAME_SITE",
        default_value = "Strict",
        ignore_case = true,
        global = true
    )]
    pub cookie_same_site: SameSite,

    /// `Domain` of Warden's cookies (like example.com): widens them to every subdomain. Unset: the API's host only.
    #[arg(long, env = "WARDEN_COOKIE_DOMAIN", value_parser = browser::parse_cookie_domain, global = true)]
    pub cookie_domain: Option<String>,

    /// Warden's external URL (like https://auth.example.com). Unset: http:// and WARDEN_LISTEN.
    #[arg(long, env = "WARDEN_PUBLIC_URL", value_parser = browser::parse_public_url, global = true)]
    pub public_url: Option<String>,

    /// Comma-separated request headers a CORS origin may send (replaces the default list; must keep content-type).
    #[arg(long, env = "WARDEN_CORS_ALLOW_HEADERS", value_delimiter = ',', default_value = browser::DEFAULT_CORS_ALLOW_HEADERS, value_parser = browser::parse_header_name, global = true)]
    pub cors_allow_headers: Vec<String>,

    /// How long browsers may cache a CORS preflight answer (Chromium caps it at 2h, Firefox at 24h).
    #[arg(long, env = "WARDEN_CORS_MAX_AGE", default_value = "10m", value_parser = parse_duration, global = true)]
    pub cors_max_age: Duration,

    /// SMTP relay for outbound mail: `smtp://[user[:password]@]host[:port]` (STARTTLS required unless the host is loopback) or `smtps://…` (implicit TLS). Unset: mail is written as .eml files into WARDEN_MAIL_DIR.
    #[arg(long, env = "WARDEN_SMTP_URL", value_parser = mail::parse_smtp_url, hide_env_values = true, global = true)]
    pub smtp_url: Option<SecretString>,

    /// SMTP password, when it is not in WARDEN_SMTP_URL (the URL's user name is the login).
    #[arg(long, env = "WARDEN_SMTP_PASSWORD", value_parser = mail::parse_secret, hide_env_values = true, global = true)]
    pub smtp_password: Option<SecretString>,

    /// PEM file of a root certificate trusted, besides the public roots, for the SMTP relay's TLS (a relay with a private CA).
    #[arg(long, env = "WARDEN_SMTP_CA_FILE", global = true)]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// The `From` of every message Warden sends (`name <address>` or an address; a bare address is shown with WARDEN_PRODUCT_NAME).
    #[arg(long, env = "WARDEN_MAIL_FROM", default_value = "no-reply@localhost", value_parser = mail::parse_mail_from, global = true)]
    pub mail_from: String,

    /// Directory the messages are written to (one .eml file each) when no WARDEN_SMTP_URL is set; created if missing.
    #[arg(
        long,
        env = "WARDEN_MAIL_DIR",
        default_value = "./warden-mail",
        global = true
    )]
    pub mail_dir: std::path::PathBuf,

    /// The product's name, as the mail shows it.
    #[arg(long, env = "WARDEN_PRODUCT_NAME", default_value = "Warden", value_parser = parse_non_empty, global = true)]
    pub product_name: String,

    /// The frontend's base URL (like https://app.example.com or https://example.com/account): mailed links go to
    /// `{app}/verify-email?token=…`, `{app}/reset-password?token=…` and `{app}/confirm-email?token=…`.
    /// Unset: links go to Warden's own pages under WARDEN_PUBLIC_URL.
    #[arg(long, env = "WARDEN_APP_URL", value_parser = mail::parse_app_url, global = true)]
    pub app_url: Option<String>,

    /// Directory of mail templates overriding the built-in ones (`<kind>.subject`, `<kind>.txt`, `<kind>.html`).
    #[arg(long, env = "WARDEN_MAIL_TEMPLATES", global = true)]
    pub mail_templates: Option<std::path::PathBuf>,

    /// `true`: `login` (after a right password) and `register` answer EMAIL_NOT_VERIFIED until the address is verified.
    #[arg(long, env = "WARDEN_REQUIRE_EMAIL_VERIFICATION", default_value = "false", value_parser = parse_switch, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", global = true)]
    pub require_email_verification: bool,

    /// Lifetime of an email-verification (and email-change) link and code.
    #[arg(long, env = "WARDEN_VERIFY_TOKEN_TTL", default_value = "24h", value_parser = parse_positive_duration, global = true)]
    pub verify_token_ttl: Duration,

    /// Lifetime of a password-reset link and code.
    #[arg(long, env = "WARDEN_RESET_TOKEN_TTL", default_value = "30m", value_parser = parse_positive_duration, global = true)]
    pub reset_token_ttl: Duration,

    /// Lifetime of the `mfaToken` of `MFA_REQUIRED`: the time between a
    /// right password and `completeLogin`.
    #[arg(long, env = "WARDEN_MFA_TOKEN_TTL", default_value = "5m", value_parser = parse_positive_duration, global = true)]
    pub mfa_token_ttl: Duration,

    /// WebAuthn relying party id: the domain passkeys are bound to (like example.com; an app on app.example.com may use it). Unset: the host of WARDEN_PUBLIC_URL, `localhost` for a loopback address.
    #[arg(long, env = "WARDEN_WEBAUTHN_RP_ID", value_parser = webauthn::parse_rp_id, global = true)]
    pub webauthn_rp_id: Option<String>,

    /// Comma-separated origins whose pages may create and use passkeys (like https://app.example.com). Unset: WARDEN_PUBLIC_URL's origin, WARDEN_APP_URL's and WARDEN_CORS_ORIGINS.
    #[arg(long, env = "WARDEN_WEBAUTHN_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub webauthn_origins: Vec<String>,

    /// Most connections open at once; a connection over the cap is answered 503 and closed.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections: u32,

    /// Most connections open at once from one client IP (IPv6: one prefix); a
    /// trusted proxy's connections are not capped per IP.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS_PER_IP", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_connections_per_ip: u32,

    /// `on` checks new passwords against the Have I Been Pwned range API
    /// (k-anonymity: only 5 hex digits of the SHA-1 leave; fails open).
    #[arg(long, env = "WARDEN_PWNED_PASSWORDS", default_value = "off", value_parser = parse_switch, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "on", global = true)]
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
/// field without listing it fails a unit test; the rate rules' variables
/// come from their table ([`rates::VARIABLES`]).
pub const KNOWN_ENV: &[&str] = &KNOWN_ENV_ARRAY;

/// [`OWN_ENV`] then [`rates::VARIABLES`].
const KNOWN_ENV_ARRAY: [&str; OWN_ENV.len() + rates::VARIABLES.len()] =
    concat_names(OWN_ENV, &rates::VARIABLES);

/// The variables of the settings in this file.
const OWN_ENV: &[&str] = &[
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
    "WARDEN_TRUSTED_PROXIES",
    "WARDEN_MAX_BODY_BYTES",
    "WARDEN_MAX_BATCH",
    "WARDEN_DOCUMENT_CACHE_SIZE",
    "WARDEN_IDLE_TIMEOUT",
    "WARDEN_INTROSPECTION",
    "WARDEN_CLEANUP_INTERVAL",
    "WARDEN_REVOKED_RETENTION",
    "WARDEN_AUDIT_RETENTION",
    "WARDEN_LOG_FORMAT",
    "WARDEN_DATABASE_CONNECT_TIMEOUT",
    "WARDEN_METRICS_LISTEN",
    "WARDEN_DATABASE_MAX_CONNECTIONS",
    "WARDEN_DATABASE_ACQUIRE_TIMEOUT",
    "WARDEN_REDIS_PREFIX",
    "WARDEN_REFRESH_COOKIE",
    "WARDEN_COOKIE_SECURE",
    "WARDEN_CORS_ORIGINS",
    "WARDEN_COOKIE_SAME_SITE",
    "WARDEN_COOKIE_DOMAIN",
    "WARDEN_PUBLIC_URL",
    "WARDEN_CORS_ALLOW_HEADERS",
    "WARDEN_CORS_MAX_AGE",
    "WARDEN_SMTP_URL",
    "WARDEN_SMTP_PASSWORD",
    "WARDEN_SMTP_CA_FILE",
    "WARDEN_MAIL_FROM",
    "WARDEN_MAIL_DIR",
    "WARDEN_PRODUCT_NAME",
    "WARDEN_APP_URL",
    "WARDEN_MAIL_TEMPLATES",
    "WARDEN_REQUIRE_EMAIL_VERIFICATION",
    "WARDEN_VERIFY_TOKEN_TTL",
    "WARDEN_RESET_TOKEN_TTL",
    "WARDEN_MFA_TOKEN_TTL",
    "WARDEN_WEBAUTHN_RP_ID",
    "WARDEN_WEBAUTHN_ORIGINS",
    "WARDEN_LOCKOUT_GLOBAL_THRESHOLD",
    "WARDEN_DEVICE_TOKEN_TTL",
    "WARDEN_IPV6_PREFIX",
    "WARDEN_MAX_CONNECTIONS",
    "WARDEN_MAX_CONNECTIONS_PER_IP",
    "WARDEN_PWNED_PASSWORDS",
    "WARDEN_PWNED_PASSWORDS_URL",
];

/// `a` then `b`, at compile time (`N` must be their total length, or the
/// build fails).
const fn concat_names<const N: usize>(a: &[&'static str], b: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < b.len() {
        out[i + j] = b[j];
        j += 1;
    }
    out
}

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
