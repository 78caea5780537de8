//! `sessions` and `refresh_tokens`.
//!
//! Sessions are generated oldest first in three stretches of time:
//! - 40 to 30 days ago: sessions past their 30-day lifetime, never revoked
//!   (cleanup's "absolute lifetime over");
//! - 30 to 8 days ago: live sessions, revoked ones, and idle ones whose last
//!   refresh token expired over an hour ago (cleanup's "no usable token");
//! - the last 8 days: live and revoked sessions.
//!
//! Revoked sessions are revoked less than 30 days ago (inside
//! `WARDEN_REVOKED_RETENTION`); a live one was refreshed in the last 7 days
//! less an hour, so its newest token outlives `now` by at least an hour.
//!
//! Each session has a chain of refresh tokens written as rotation writes
//! them (`services::rotation`): the first has no parent and is issued at
//! the session's start; each next one has `parent_id` = the one before,
//! `issued_at` = the one before's `used_at`; the newest is unused and
//! issued at the session's `last_used_at`; each expires 7 days after issue
//! or with its session, whichever is first. Chain lengths add up to the
//! plan's exact total.
//!
//! Sessions are written first, tokens second (SQLite has one writer, and a
//! token needs its session): the second pass regenerates the same sessions
//! from the same stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    agent, between, ip, ms_time,
    sink::{Cell, Table},
    users::{created_before, Person, DISABLED, MFA},
    uuid7, Ctx, SeedError, DAY, HOUR, MINUTE, REFRESH_TTL, SESSION_MAX_AGE,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Expired,
    Live,
    Revoked,
}

struct Stretch {
    start: i64,
    end: i64,
    left: [u64; 3],
    index: u64,
    count: u64,
}

struct Session {
    id: Uuid,
    user: usize,
    created: i64,
    last_used: i64,
    expires: i64,
    revoked: Option<(i64, &'static str)>,
    tokens: u64,
}

const REASONS: [(&str, u32); 9] = [
    ("logout", 70),
    ("logout_all", 8),
    ("logout_others", 6),
    ("revoke_session", 6),
    ("password_change", 5),
    ("password_reset", 2),
    ("admin_revoked", 1),
    ("refresh_token_reuse", 1),
    ("account_disabled", 1),
];

struct Sessions<'a> {
    ctx: &'a Ctx<'a>,
    people: &'a [Person],
    rng: ChaCha8Rng,
    stretches: Vec<Stretch>,
    current: usize,
    sessions_left: u64,
    tokens_left: u64,
    heavy_left: u64,
    heavy_given: u64,
}

impl<'a> Sessions<'a> {
    fn new(ctx: &'a Ctx<'a>, people: &'a [Person]) -> Self {
        let p = ctx.plan;
        let now = ctx.now_ms;
        let idle = p.expired_sessions * 2 / 5;
        let live_b = p.live_sessions * 22 / 30;
        let revoked_b = p.revoked_sessions * 22 / 30;
        let stretch = |start: i64, end: i64, left: [u64; 3]| Stretch {
            start,
            end,
            left,
            index: 0,
            count: left.iter().sum(),
        };
        Sessions {
            ctx,
            people,
            rng: ctx.rng(2),
            stretches: vec![
                stretch(
                    now - 40 * DAY,
                    now - 30 * DAY,
                    [p.expired_sessions - idle, 0, 0],
                ),
                stretch(
                    now - 30 * DAY + HOUR,
                    now - 8 * DAY,
                    [idle, live_b, revoked_b],
                ),
                stretch(
                    now - 8 * DAY,
                    now - MINUTE,
                    [0, p.live_sessions - live_b, p.revoked_sessions - revoked_b],
                ),
            ],
            current: 0,
            sessions_left: p.sessions(),
            tokens_left: p.refresh_tokens,
            heavy_left: p.heavy_users * p.heavy_sessions,
            heavy_given: 0,
        }
    }

    fn next(&mut self) -> Option<Session> {
        while self.stretches.get(self.current)?.index >= self.stretches[self.current].count {
            self.current += 1;
        }
        let now = self.ctx.now_ms;
        let rng = &mut self.rng;
        let s = &mut self.stretches[self.current];
        let slot = ((s.end - s.start) / i64::try_from(s.count).unwrap_or(1)).max(1);
        let created =
            s.start + i64::try_from(s.index).unwrap_or(0) * slot + rng.random_range(0..slot);
        s.index += 1;
        let remaining: u64 = s.left.iter().sum();
        let r = rng.random_range(0..remaining);
        let kind = if r < s.left[0] {
            Kind::Expired
        } else if r < s.left[0] + s.left[1] {
            Kind::Live
        } else {
            Kind::Revoked
        };
        s.left[kind as usize] -= 1;
        let from_b = self.current == 1;

        // Whose: a heavy user in exact numbers, else anyone who existed then.
        let plan = self.ctx.plan;
        let heavy = crate::pick(rng, &mut self.heavy_left, &mut self.sessions_left.clone());
        let user = if heavy {
            self.heavy_given += 1;
            usize::try_from((self.heavy_given - 1) % plan.heavy_users).unwrap_or(0)
        } else {
            let lo = plan.heavy_users;
            let hi = created_before(self.ctx, created).max(lo + 1);
            let mut user = rng.random_range(lo..hi);
            for _ in 0..8 {
                let disabled = self
                    .people
                    .get(usize::try_from(user).unwrap_or(0))
                    .is_some_and(|p| p.flags & DISABLED != 0);
                if !(disabled && kind == Kind::Live) {
                    break;
                }
                user = rng.random_range(lo..hi);
            }
            usize::try_from(user).unwrap_or(0)
        };

        // How many tokens: about the mean still to give, exact in total.
        let live_floor = now - REFRESH_TTL + HOUR;
        let min_len = if kind == Kind::Live && created < live_floor {
            2
        } else {
            1
        };
        let mean = self.tokens_left as f64 / self.sessions_left.max(1) as f64;
        let hi = self.tokens_left - 2 * (self.sessions_left - 1);
        let tokens = if self.sessions_left == 1 {
            self.tokens_left
        } else {
            let p = 1.0 / mean.max(1.0);
            let u: f64 = rng.random();
            let extra = if p >= 1.0 {
                0
            } else {
                ((1.0 - u).ln() / (1.0 - p).ln()).floor() as u64
            };
            (1 + extra).clamp(min_len, hi.max(min_len))
        };
        self.tokens_left -= tokens;
        self.sessions_left -= 1;

        let expires = created + SESSION_MAX_AGE;
        let last_used = if tokens == 1 {
            created
        } else {
            match kind {
                Kind::Expired if from_b => between(rng, created + MINUTE, now - REFRESH_TTL - HOUR),
                Kind::Expired => between(rng, created + MINUTE, expires - MINUTE),
                Kind::Live => between(rng, (created + MINUTE).max(live_floor), now - 1000),
                Kind::Revoked => between(rng, created + MINUTE, now - 2000),
            }
        };
        let revoked = (kind == Kind::Revoked).then(|| {
            let at = between(rng, last_used, now - 1000);
            let mut roll = rng.random_range(0..100);
            let mut reason = REASONS[0].0;
            for (name, weight) in REASONS {
                if roll < weight {
                    reason = name;
                    break;
                }
                roll -= weight;
            }
            (at, reason)
        });
        let id = uuid7(rng, created);
        Some(Session {
            id,
            user,
            created,
            last_used,
            expires,
            revoked,
            tokens,
        })
    }
}

const SESSION_COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
    "ip",
    "user_agent",
    "method",
    "amr",
];

/// Writes the sessions.
pub async fn write_sessions(
    db: &DatabaseConnection,
    ctx: &Ctx<'_>,
    people: &[Person],
) -> Result<u64, SeedError> {
    let mut table = Table::open(db, "sessions", SESSION_COLUMNS).await?;
    let mut gen = Sessions::new(ctx, people);
    // Addresses and agents from their own stream: the token pass replays
    // `gen` without them.
    let mut rng = ctx.rng(3);
    while let Some(s) = gen.next() {
        let Some(person) = people.get(s.user) else {
            continue;
        };
        let totp = person.flags & MFA != 0 && s.created >= person.mfa_ms;
        let (method, amr) = if totp {
            ("PASSWORD_TOTP", "pwd otp mfa")
        } else {
            ("PASSWORD", "pwd")
        };
        table
            .push(vec![
                s.id.into(),
                person.id.into(),
                ms_time(s.created).into(),
                ms_time(s.last_used).into(),
                ms_time(s.expires).into(),
                s.revoked.map(|(at, _)| ms_time(at)).into(),
                Cell::from(s.revoked.map(|(_, why)| why)),
                ip(&mut rng).into(),
                agent(&mut rng).into(),
                method.into(),
                amr.into(),
            ])
            .await?;
    }
    Ok(table.finish().await?)
}

const TOKEN_COLUMNS: &[&str] = &[
    "id",
    "session_id",
    "token_hash",
    "parent_id",
    "issued_at",
    "expires_at",
    "used_at",
];

/// Writes every session's chain of refresh tokens.
pub async fn write_tokens(
    db: &DatabaseConnection,
    ctx: &Ctx<'_>,
    people: &[Person],
) -> Result<u64, SeedError> {
    let mut table = Table::open(db, "refresh_tokens", TOKEN_COLUMNS).await?;
    let mut gen = Sessions::new(ctx, people);
    let mut rng = ctx.rng(4);
    while let Some(s) = gen.next() {
        let k = i64::try_from(s.tokens).unwrap_or(1);
        let at = |j: i64| {
            if k == 1 {
                s.created
            } else {
                s.created + (s.last_used - s.created) * j / (k - 1)
            }
        };
        let mut parent: Option<Uuid> = None;
        for j in 0..k {
            let issued = at(j);
            let id = uuid7(&mut rng, issued);
            let used = (j + 1 < k).then(|| ms_time(at(j + 1)));
            table
                .push(vec![
                    id.into(),
                    s.id.into(),
                    crate::hex32(&mut rng).into(),
                    parent.into(),
                    ms_time(issued).into(),
                    ms_time((issued + REFRESH_TTL).min(s.expires)).into(),
                    used.into(),
                ])
                .await?;
            parent = Some(id);
        }
    }
    Ok(table.finish().await?)
}
