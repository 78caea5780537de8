//! The seeded-scale generator: fills a Warden database (SQLite or
//! Postgres), through the real migrations, with what about a year of use
//! leaves behind — 1M users, 3M sessions, 10M refresh tokens, 10M audit
//! events and the rows of the newer features — fast and reproducibly.
//!
//! Same `seed`, same [`Plan`] and same `now` ⇒ the same rows, on either
//! backend (audit ids too: they are assigned in insertion order on an empty
//! table). Every random choice comes from ChaCha8 streams seeded from
//! `seed` (one stream per table), never from the OS or the clock.
//!
//! # What the data promises (the benchmarks rely on it)
//! - Every account has the password [`PASSWORD`] (one bcrypt hash, cost 4,
//!   salt derived from the seed).
//! - `seed-heavy-N@seed.example.com` (N from 1 to [`Plan::heavy_users`])
//!   own [`Plan::heavy_audit_events`] audit events each, a few live
//!   sessions each, and one API key each whose secret the [`Summary`]
//!   prints. They are verified, enabled, without a second factor.
//! - `seed-admin-N@seed.example.com` are the administrators (same).
//! - Exactly [`Plan::expired_sessions`] sessions are unrevoked but dead
//!   (past their 30-day lifetime, or idle past the 7-day life of their last
//!   refresh token): what Warden's cleanup deletes, with their refresh
//!   tokens. Nothing else in the database is old enough for cleanup at
//!   Warden's default retentions (revoked sessions are younger than 30
//!   days, audit rows than 90, outbox rows than 7, email tokens than 1,
//!   lockout counters than 15 minutes; trusted devices and API keys live).
//! - Refresh tokens form chains as rotation writes them: a token's
//!   successor has `parent_id` = its id and `issued_at` = its `used_at`;
//!   only the newest of a session is unused.
//!
//! The data assumes Warden's default lifetimes (`WARDEN_SESSION_MAX_AGE`
//! 30d, `WARDEN_REFRESH_TOKEN_TTL` 7d, retentions as above).
//!
//! # Layout
//! - `lib.rs`: [`Plan`], [`Summary`], [`seed`] and the shared helpers;
//! - `sink.rs`: batched writes (multi-row INSERT on SQLite, COPY on Postgres);
//! - `users.rs`: accounts (names after `bench/seed_users.sql`);
//! - `sessions.rs`: sessions and their refresh-token chains;
//! - `audit.rs`: the audit log;
//! - `extras.rs`: devices, email tokens, outbox, factors, passkeys, API keys,
//!   lockout counters.

use std::time::Instant;

use chrono::{DateTime, Utc};
use migration::MigratorTrait;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement};
use serde::Serialize;
use uuid::Uuid;

mod audit;
mod extras;
mod names;
mod sessions;
pub mod sink;
mod users;

/// The password of every seeded account.
pub const PASSWORD: &str = "seeded-scale password";

/// The bcrypt cost of [`PASSWORD`]'s hash (Warden's test and bench cost).
pub const BCRYPT_COST: u32 = 4;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// `WARDEN_SESSION_MAX_AGE`'s default.
const SESSION_MAX_AGE: i64 = 30 * DAY;
/// `WARDEN_REFRESH_TOKEN_TTL`'s default.
const REFRESH_TTL: i64 = 7 * DAY;

/// How many rows of each kind to write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Accounts, including the heavy users and the administrators.
    pub users: u64,
    /// Accounts `seed-admin-N@seed.example.com`, role `ADMIN`.
    pub admins: u64,
    /// Accounts `seed-heavy-N@seed.example.com`.
    pub heavy_users: u64,
    /// Audit events of each heavy user.
    pub heavy_audit_events: u64,
    /// Sessions of each heavy user.
    pub heavy_sessions: u64,
    /// Disabled accounts (none of them heavy or admin).
    pub disabled_users: u64,
    /// Accounts with a confirmed TOTP factor and ten recovery codes.
    pub mfa_users: u64,
    /// Sessions alive now.
    pub live_sessions: u64,
    /// Unrevoked sessions that cleanup deletes.
    pub expired_sessions: u64,
    /// Sessions revoked in the last 30 days.
    pub revoked_sessions: u64,
    /// Refresh tokens over all sessions (at least two per session).
    pub refresh_tokens: u64,
    /// Audit events, the heavy users' included.
    pub audit_events: u64,
    pub trusted_devices: u64,
    pub email_tokens: u64,
    pub mail_outbox: u64,
    pub passkeys: u64,
    /// API keys, the heavy users' one each included.
    pub api_keys: u64,
    pub login_attempts: u64,
}

/// Recovery codes per account with a second factor (Warden issues ten).
pub const RECOVERY_CODES_EACH: u64 = 10;

impl Plan {
    /// The sizes: 1M users, 3M sessions (1M of them expired), 10M
    /// refresh tokens, 10M audit events.
    pub fn full() -> Self {
        Plan {
            users: 1_000_000,
            admins: 3,
            heavy_users: 5,
            heavy_audit_events: 150_000,
            heavy_sessions: 100,
            disabled_users: 5_000,
            mfa_users: 80_000,
            live_sessions: 1_700_000,
            expired_sessions: 1_000_000,
            revoked_sessions: 300_000,
            refresh_tokens: 10_000_000,
            audit_events: 10_000_000,
            trusted_devices: 1_000_000,
            email_tokens: 200_000,
            mail_outbox: 300_000,
            passkeys: 50_000,
            api_keys: 100_000,
            login_attempts: 10_000,
        }
    }

    /// [`full`](Self::full) scaled to `users` accounts, same ratios (the
    /// administrators and heavy users stay; their per-user counts scale,
    /// at least 1).
    pub fn scaled(users: u64) -> Self {
        let full = Self::full();
        let scale = |n: u64| -> u64 {
            u64::try_from((u128::from(n) * u128::from(users)).div_ceil(1_000_000)).unwrap_or(n)
        };
        Plan {
            users,
            admins: full.admins.min(users / 4),
            heavy_users: full.heavy_users.min(users / 4),
            heavy_audit_events: scale(full.heavy_audit_events).max(1),
            heavy_sessions: scale(full.heavy_sessions).max(1),
            disabled_users: scale(full.disabled_users),
            mfa_users: scale(full.mfa_users),
            live_sessions: scale(full.live_sessions),
            expired_sessions: scale(full.expired_sessions),
            revoked_sessions: scale(full.revoked_sessions),
            refresh_tokens: scale(full.refresh_tokens),
            audit_events: scale(full.audit_events),
            trusted_devices: scale(full.trusted_devices),
            email_tokens: scale(full.email_tokens),
            mail_outbox: scale(full.mail_outbox),
            passkeys: scale(full.passkeys),
            api_keys: scale(full.api_keys),
            login_attempts: scale(full.login_attempts),
        }
    }

    /// All sessions.
    pub fn sessions(&self) -> u64 {
        self.live_sessions + self.expired_sessions + self.revoked_sessions
    }

    /// Recovery codes (ten per account with a factor).
    pub fn recovery_codes(&self) -> u64 {
        self.mfa_users * RECOVERY_CODES_EACH
    }

    /// A short name for cache keys: `u<users>` for a scaled plan.
    pub fn key(&self) -> String {
        if *self == Self::full() {
            "full".to_owned()
        } else if *self == Self::scaled(self.users) {
            format!("u{}", self.users)
        } else {
            format!("custom{:016x}", fnv(&format!("{self:?}")))
        }
    }

    fn check(&self) -> Result<(), SeedError> {
        let special = self.admins + self.heavy_users;
        let bad = |why: &str| Err(SeedError::Plan(why.to_owned()));
        if self.users < special + self.disabled_users + self.mfa_users + 1 {
            return bad("users must exceed admins + heavy + disabled + mfa users");
        }
        if self.refresh_tokens < 2 * self.sessions() {
            return bad("refresh_tokens must be at least two per session");
        }
        if self.audit_events < self.heavy_users * self.heavy_audit_events {
            return bad("audit_events must cover the heavy users' events");
        }
        if self.sessions() < self.heavy_users * self.heavy_sessions {
            return bad("sessions must cover the heavy users' sessions");
        }
        if self.api_keys < self.heavy_users {
            return bad("api_keys must cover one per heavy user");
        }
        Ok(())
    }
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("plan: {0}")]
    Plan(String),
    #[error("the database already has users: seed only an empty one")]
    NotEmpty,
    #[error("bcrypt: {0}")]
    Hash(#[from] bcrypt::BcryptError),
}

/// A heavy user, for the deep-page and API-key benchmarks.
#[derive(Clone, Debug, Serialize)]
pub struct HeavyUser {
    pub email: String,
    pub audit_events: u64,
    pub sessions: u64,
    /// A live API key of this user (scopes `USER`), in full.
    pub api_key: String,
}

/// One table's load.
#[derive(Clone, Debug, Serialize)]
pub struct TableLoad {
    pub table: &'static str,
    pub rows: u64,
    pub seconds: f64,
}

/// What [`seed`] wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub backend: &'static str,
    pub seed: u64,
    pub now: DateTime<Utc>,
    pub plan: Plan,
    pub plan_key: String,
    /// Every account's password.
    pub password: &'static str,
    pub heavy_users: Vec<HeavyUser>,
    pub admins: Vec<String>,
    /// A user with a confirmed TOTP factor (logging in asks for a code the
    /// seed cannot give: the secret is sealed under no key Warden holds).
    pub mfa_user: Option<String>,
    pub tables: Vec<TableLoad>,
    pub seconds: f64,
}

/// Fills `db` per `plan`; see the crate docs. Runs the migrations first;
/// refuses a database that already has accounts. `now` is truncated to the
/// millisecond.
pub async fn seed(
    db: &DatabaseConnection,
    plan: &Plan,
    seed: u64,
    now: DateTime<Utc>,
) -> Result<Summary, SeedError> {
    plan.check()?;
    let started = Instant::now();
    migration::Migrator::up(db, None).await?;
    let backend = db.get_database_backend();
    let count = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM users",
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0);
    if count > 0 {
        return Err(SeedError::NotEmpty);
    }
    if backend == DatabaseBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode = WAL").await?;
    }
    let now_ms = now.timestamp_millis();
    let ctx = Ctx { plan, seed, now_ms };
    let mut tables = Vec::new();
    let mut timed = |table: &'static str, rows: u64, since: Instant| {
        tables.push(TableLoad {
            table,
            rows,
            seconds: since.elapsed().as_secs_f64(),
        });
    };

    let t = Instant::now();
    let people = users::write(db, &ctx).await?;
    timed("users", people.len() as u64, t);
    let t = Instant::now();
    let n = sessions::write_sessions(db, &ctx, &people).await?;
    timed("sessions", n, t);
    let t = Instant::now();
    let n = sessions::write_tokens(db, &ctx, &people).await?;
    timed("refresh_tokens", n, t);
    let t = Instant::now();
    let n = audit::write(db, &ctx, &people).await?;
    timed("audit_events", n, t);
    let extra = extras::write(db, &ctx, &people, &mut timed).await?;

    let t = Instant::now();
    if backend == DatabaseBackend::Postgres {
        // VACUUM too, as `bench/seed_users.sql` does: where such tables are
        // real they have long been vacuumed (visibility map, hint bits),
        // and autovacuum must not start on them while a benchmark runs.
        db.execute_unprepared("VACUUM (ANALYZE)").await?;
    } else {
        db.execute_unprepared("ANALYZE").await?;
        // Everything into the main file, so a copy of it is the database.
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
    }
    timed("analyze", 0, t);

    let heavy_users = (0..plan.heavy_users)
        .map(|i| HeavyUser {
            email: users::heavy_email(i),
            audit_events: plan.heavy_audit_events,
            sessions: plan.heavy_sessions,
            api_key: extra
                .heavy_keys
                .get(i as usize)
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    Ok(Summary {
        backend: if backend == DatabaseBackend::Postgres {
            "postgres"
        } else {
            "sqlite"
        },
        seed,
        now: ms_time(now_ms),
        plan: plan.clone(),
        plan_key: plan.key(),
        password: PASSWORD,
        heavy_users,
        admins: (0..plan.admins).map(users::admin_email).collect(),
        mfa_user: people
            .iter()
            .find(|p| p.flags & users::MFA != 0)
            .map(|p| p.email.clone()),
        tables,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the generators share.
pub(crate) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub seed: u64,
    pub now_ms: i64,
}

impl Ctx<'_> {
    /// The independent random stream of one table.
    pub fn rng(&self, stream: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        rng
    }
}

/// A millisecond instant as a time.
pub(crate) fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A UUIDv7 of the instant `ms` with seeded random bits, as Warden's
/// `Uuid::now_v7()` would have made it then.
pub(crate) fn uuid7(rng: &mut ChaCha8Rng, ms: i64) -> Uuid {
    let mut bits = [0u8; 10];
    rng.fill_bytes(&mut bits);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(ms).unwrap_or(0), &bits).into_uuid()
}

/// 32 seeded bytes as lowercase hex: the shape of a stored SHA-256.
pub(crate) fn hex32(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    hex(&bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A uniform instant in `[lo, hi)` (`lo` when empty).
pub(crate) fn between(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..hi)
    }
}

/// Draws without replacement: true for exactly `*left` of the next `*of`
/// calls, in seeded positions.
pub(crate) fn pick(rng: &mut ChaCha8Rng, left: &mut u64, of: &mut u64) -> bool {
    let hit = *of > 0 && *left > 0 && rng.random_range(0..*of) < *left;
    if hit {
        *left -= 1;
    }
    *of = of.saturating_sub(1);
    hit
}

/// A documentation-range IPv4 or IPv6 address.
pub(crate) fn ip(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..10) {
        0..=3 => format!("203.0.113.{}", rng.random_range(1..255)),
        4..=6 => format!("198.51.100.{}", rng.random_range(1..255)),
        7..=8 => format!("192.0.2.{}", rng.random_range(1..255)),
        _ => format!("2001:db8::{:x}", rng.random_range(1..0xffff)),
    }
}

const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "okhttp/4.12.0",
];

/// A browser or app user agent.
pub(crate) fn agent(rng: &mut ChaCha8Rng) -> String {
    AGENTS[rng.random_range(0..AGENTS.len())].to_owned()
}

/// FNV-1a, for short stable keys.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
