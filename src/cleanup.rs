//! Cleanup: removes what no longer protects anyone, in small batches.
//!
//! - sessions that can no longer be used (absolute lifetime over, or no
//!   unexpired refresh token left), with their refresh tokens;
//! - sessions revoked more than `WARDEN_REVOKED_RETENTION` ago;
//! - audit rows older than `WARDEN_AUDIT_RETENTION`;
//! - lockout counters whose window and lock are both over;
//! - trusted devices whose token expired or was revoked;
//! - outbox rows sent or given up more than [`MAIL_RETENTION`] ago (their
//!   bodies were already erased; only metadata is left);
//! - email tokens used, superseded or expired more than
//!   [`EMAIL_TOKEN_RETENTION`] ago (kept that long so a landing page can
//!   still say "already used" rather than "not valid");
//! - the minute markers of audited reads (`session_views`) past their minute;
//! - API keys revoked or expired more than [`API_KEY_RETENTION`] ago (kept
//!   that long so `apiKeys` still shows an owner why a script stopped; the
//!   audit rows stay).
//!
//! It never touches a live session: the token chain that reuse detection
//! needs is deleted only with its session, once that session is dead.
//! Each batch (at most [`BATCH`] rows) is its own short transaction, so a
//! pass never holds locks that a login or a refresh would wait on for long.
//! On Postgres a pass holds an advisory lock, so with several instances only
//! one cleans at a time. [`run_once`] is the single pass that tests and
//! `warden cleanup` call; [`run_every`] is the loop the server runs, whose
//! passes are paced ([`Pace::Shared`]): after each batch they rest as long
//! as the batch took, so that requests keep their latency while a year of
//! expired sessions goes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    api_key, audit_event, email_token, login_attempt, mail_outbox, mfa_token, refresh_token,
    session, session_view, trusted_device, webauthn_challenge,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TryGetableMany,
};
use uuid::Uuid;

use crate::{clock::delta, config::Config, db::Db, metrics::Metrics, state::AppState};

/// Rows per statement.
pub const BATCH: u64 = 1000;

/// How long sent and given-up outbox rows are kept (metadata only).
pub const MAIL_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// How long used, superseded and expired email tokens are kept (hashes only).
pub const EMAIL_TOKEN_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// How long revoked and expired API keys are kept (hashes only).
pub const API_KEY_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Advisory lock key held during a pass on Postgres ("cleanup").
const CLEANUP_LOCK: i64 = 0x636c_6561_6e75;

/// The longest rest between two batches of a paced pass.
const MAX_REST: Duration = Duration::from_secs(2);

/// How a pass shares the machine and the store with requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Each batch right after the last: `warden cleanup`, run by hand, and
    /// the tests.
    Flat,
    /// The server's own passes: sessions are deleted
    /// [`SHARED_DELETE_CHUNK`] at a time, and after each chunk (and each
    /// batch of the other tables) the pass rests as long as the work took
    /// (at most [`MAX_REST`]), so it uses at most half of the time and
    /// leaves the write lock free the other half.
    ///
    /// On SQLite the server runs it on the store's background connection
    /// ([`Db::background`]), whose thread is at the lowest CPU priority.
    ///
    /// Measured on a seeded SQLite file (200,000 accounts, about 247,000
    /// expired sessions with 815,000 tokens), `me` at 9,000 req/s and
    /// refresh at 200/s on the pass's core, 5 s windows. Before the pass,
    /// `me`'s p99 was 1.7-2.5 ms and refresh's 7-10 ms. Back to back, 1,000
    /// sessions a transaction, `me` was at 17-26 ms for the 2 minutes of the
    /// pass. Paced, on the requests' own write connection: `me` 11.7-15.6 ms
    /// (and below the offered rate in 7 windows), refresh 60-120 ms (p50
    /// 6-20 ms), for 5 minutes. Paced on the background connection: `me`
    /// 3.5-5.8 ms at the full rate, refresh 44-109 ms (p50 2-5 ms), for 7
    /// minutes. (Each deleted token rewrites a random page of the token-hash
    /// index, so the work per session cannot shrink much; a refresh waits
    /// for the write lock while the low-priority thread holds it.)
    Shared,
}

/// Sessions deleted per transaction by a paced pass.
const SHARED_DELETE_CHUNK: usize = 100;

impl Pace {
    /// How many sessions one transaction deletes.
    pub fn delete_chunk(self) -> usize {
        match self {
            Pace::Flat => BATCH as usize,
            Pace::Shared => SHARED_DELETE_CHUNK,
        }
    }

    /// The rest after a batch that took `work`.
    pub fn rest_after(self, work: Duration) -> Duration {
        match self {
            Pace::Flat => Duration::ZERO,
            Pace::Shared => work.min(MAX_REST),
        }
    }

    /// Rests after a batch that started at `started`.
    async fn rest(self, started: tokio::time::Instant) {
        let rest = self.rest_after(started.elapsed());
        if !rest.is_zero() {
            tokio::time::sleep(rest).await;
        }
    }
}

/// What one pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Sessions past their lifetime or without a usable refresh token.
    pub expired_sessions: u64,
    /// Sessions revoked longer ago than the retention.
    pub revoked_sessions: u64,
    /// Refresh tokens of those sessions.
    pub refresh_tokens: u64,
    /// Audit rows past their retention.
    pub audit_events: u64,
    /// Lockout counters that no longer count.
    pub login_attempts: u64,
    /// Trusted devices whose token expired or was revoked.
    pub trusted_devices: u64,
    /// Outbox rows sent or given up before the retention.
    pub mail_outbox: u64,
    /// Email tokens used, superseded or expired before the retention.
    pub email_tokens: u64,
    /// Expired `mfaToken`s and passkey ceremonies (five-minute rows), and
    /// the minute markers of audited reads (`session_views`).
    pub ceremonies: u64,
    /// API keys revoked or expired before the retention.
    pub api_keys: u64,
    /// True when another instance held the lock and this pass did nothing.
    pub skipped: bool,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.skipped {
            return f.write_str("skipped: another instance is cleaning");
        }
        write!(
            f,
            "expired sessions {}, revoked sessions {}, refresh tokens {}, audit events {}, lockout counters {}, trusted devices {}, mail outbox {}, email tokens {}, ceremonies {}, api keys {}",
            self.expired_sessions, self.revoked_sessions, self.refresh_tokens, self.audit_events, self.login_attempts, self.trusted_devices, self.mail_outbox, self.email_tokens, self.ceremonies, self.api_keys
        )
    }
}

/// One cleanup pass as of `now`, each batch right after the last.
pub async fn run_once(db: &Db, config: &Config, now: DateTime<Utc>) -> Result<Removed, DbErr> {
    run_paced(db, config, now, Pace::Flat).await
}

/// One cleanup pass as of `now`, its batches paced by `pace`.
pub async fn run_paced(
    db: &Db,
    config: &Config,
    now: DateTime<Utc>,
    pace: Pace,
) -> Result<Removed, DbErr> {
    // On Postgres, hold a transaction-scoped advisory lock for the whole pass
    // on its own connection; the batches run on others. That transaction
    // (READ COMMITTED, one SELECT) keeps no snapshot and has no transaction
    // id while it waits, so it holds back no VACUUM however long the pass
    // (`tests/api/cleanup.rs` watches it in `pg_stat_activity`).
    let guard = if db.is_sqlite() {
        None
    } else {
        let txn = db.begin().await?;
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                txn.get_database_backend(),
                format!("SELECT pg_try_advisory_xact_lock({CLEANUP_LOCK}) AS locked"),
            ))
            .await?;
        let locked = row
            .map(|r| r.try_get::<bool>("", "locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            return Ok(Removed {
                skipped: true,
                ..Removed::default()
            });
        }
        Some(txn)
    };
    let mut removed = Removed::default();

    let retention_cutoff = now - delta(config.revoked_retention);
    // Sessions are walked once, in id order, [`BATCH`] at a time: each
    // statement reads at most that many sessions and looks up each live
    // one's tokens by index, so its cost does not grow with the tables.
    // (Asking for "the first BATCH dead sessions" instead scanned the whole
    // table per batch on Postgres, with every refresh token hashed, and on
    // SQLite read the same live sessions again for every batch.)
    let mut after: Option<Uuid> = None;
    loop {
        let started = tokio::time::Instant::now();
        let walked = session_batch(db, after, now).await?;
        let Some(&(last, ..)) = walked.last() else {
            break;
        };
        after = Some(last);
        let (mut revoked, mut dead) = (Vec::new(), Vec::new());
        for &(id, revoked_at, expires_at, usable) in &walked {
            match revoked_at {
                Some(at) if at < retention_cutoff => revoked.push(id),
                Some(_) => {}
                // Live (unrevoked) sessions that can no longer be used: past
                // their absolute end, or with no unused, unexpired token.
                None if expires_at <= now || !usable => dead.push(id),
                None => {}
            }
        }
        // Deleted a chunk at a time (a whole batch when not paced), each
        // chunk its own transaction followed by its rest.
        let chunk = pace.delete_chunk();
        let revoked = revoked.chunks(chunk).map(|ids| (ids, true));
        let dead = dead.chunks(chunk).map(|ids| (ids, false));
        let mut started = started;
        for (ids, was_revoked) in revoked.chain(dead) {
            let (sessions, tokens) = delete_sessions(db, ids).await?;
            if was_revoked {
                removed.revoked_sessions += sessions;
            } else {
                removed.expired_sessions += sessions;
            }
            removed.refresh_tokens += tokens;
            pace.rest(started).await;
            started = tokio::time::Instant::now();
        }
        pace.rest(started).await;
        if (walked.len() as u64) < BATCH {
            break;
        }
    }

    let audit_cutoff = now - delta(config.audit_retention);
    // Oldest first by time, not by id: SQLite walked the ids (the table
    // itself) and read every row when none was due yet; by time, both
    // backends read `idx_audit_events_at` over the due rows only.
    removed.audit_events += purge::<audit_event::Entity, i64>(
        db,
        pace,
        audit_event::Column::Id,
        Condition::all().add(audit_event::Column::At.lt(audit_cutoff)),
        Some(audit_event::Column::At),
    )
    .await?;

    // Re-checked in each DELETE (as every due question is): a login may have
    // touched the row since.
    let window_cutoff = now - delta(config.lockout_window);
    removed.login_attempts += purge::<login_attempt::Entity, String>(
        db,
        pace,
        login_attempt::Column::Email,
        Condition::all()
            .add(login_attempt::Column::WindowStartedAt.lt(window_cutoff))
            .add(
                Condition::any()
                    .add(login_attempt::Column::LockedUntil.is_null())
                    .add(login_attempt::Column::LockedUntil.lt(now)),
            ),
        None,
    )
    .await?;

    // A revoked device is never trusted again, and the device list shows
    // only live ones: nothing needs it once revoked. "Revoked by now" rather
    // than IS NOT NULL: the same rows (a revocation is stamped with the time
    // it happened), and a range SQLite can answer from the partial index.
    removed.trusted_devices += purge::<trusted_device::Entity, Uuid>(
        db,
        pace,
        trusted_device::Column::Id,
        Condition::any()
            .add(trusted_device::Column::ExpiresAt.lte(now))
            .add(trusted_device::Column::RevokedAt.lte(now)),
        None,
    )
    .await?;

    let mail_cutoff = now - MAIL_RETENTION;
    removed.mail_outbox += purge::<mail_outbox::Entity, Uuid>(
        db,
        pace,
        mail_outbox::Column::Id,
        Condition::any()
            .add(mail_outbox::Column::SentAt.lt(mail_cutoff))
            .add(mail_outbox::Column::FailedAt.lt(mail_cutoff)),
        None,
    )
    .await?;

    let token_cutoff = now - EMAIL_TOKEN_RETENTION;
    removed.email_tokens += purge::<email_token::Entity, Uuid>(
        db,
        pace,
        email_token::Column::Id,
        Condition::any()
            .add(email_token::Column::UsedAt.lt(token_cutoff))
            .add(email_token::Column::ExpiresAt.lt(token_cutoff)),
        None,
    )
    .await?;

    // `mfaToken`s and passkey ceremonies live minutes: an hour past their
    // expiry nothing can use them.
    let ceremony_cutoff = now - chrono::TimeDelta::hours(1);
    removed.ceremonies += purge::<mfa_token::Entity, Uuid>(
        db,
        pace,
        mfa_token::Column::Id,
        Condition::all().add(mfa_token::Column::ExpiresAt.lt(ceremony_cutoff)),
        None,
    )
    .await?;
    removed.ceremonies += purge::<webauthn_challenge::Entity, Uuid>(
        db,
        pace,
        webauthn_challenge::Column::Id,
        Condition::all().add(webauthn_challenge::Column::ExpiresAt.lt(ceremony_cutoff)),
        None,
    )
    .await?;
    // The minute markers of audited reads (`services::audit::record_view`):
    // past their minute they mean nothing. One statement: there is at most
    // one row per session that read the log or the accounts since the last
    // pass.
    removed.ceremonies += session_view::Entity::delete_many()
        .filter(session_view::Column::At.lt(now - crate::services::audit::VIEW_WINDOW))
        .exec(db.write())
        .await?
        .rows_affected;
    let key_cutoff = now - API_KEY_RETENTION;
    removed.api_keys += purge::<api_key::Entity, Uuid>(
        db,
        pace,
        api_key::Column::Id,
        Condition::any()
            .add(api_key::Column::RevokedAt.lt(key_cutoff))
            .add(api_key::Column::ExpiresAt.lt(key_cutoff)),
        None,
    )
    .await?;

    if let Some(guard) = guard {
        guard.commit().await?;
    }
    Ok(removed)
}

/// Deletes the rows of `E` that `due` selects, [`BATCH`] at a time by
/// `key` (oldest first by `order`, if given). Each DELETE names the ids its
/// SELECT found and re-checks `due` (a row may have changed since), and each
/// batch is followed by its rest. Returns how many rows went.
async fn purge<E, K>(
    db: &Db,
    pace: Pace,
    key: E::Column,
    due: Condition,
    order: Option<E::Column>,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    K: TryGetableMany + Into<sea_orm::Value>,
{
    let mut removed = 0;
    loop {
        let started = tokio::time::Instant::now();
        let mut select = E::find()
            .select_only()
            .column(key)
            .filter(due.clone())
            .limit(BATCH);
        if let Some(order) = order {
            select = select.order_by_asc(order);
        }
        let ids: Vec<K> = select.into_tuple().all(db.read()).await?;
        let found = ids.len() as u64;
        if found > 0 {
            removed += E::delete_many()
                .filter(key.is_in(ids))
                .filter(due.clone())
                .exec(db.write())
                .await?
                .rows_affected;
        }
        pace.rest(started).await;
        if found < BATCH {
            return Ok(removed);
        }
    }
}

/// One step of the walk over sessions: up to [`BATCH`] sessions after
/// `after` in id order, each with when it was revoked, when it ends, and
/// whether it still has an unused, unexpired refresh token.
///
/// Two statements, each bounded by the batch: the sessions by primary key,
/// then which of the live ones have a usable token, by the tokens' session
/// index. (One statement with the token check as an `EXISTS` per session
/// was planned on Postgres as a hash of every usable refresh token, about
/// 190 ms a batch at 1M tokens: the planner costs the subquery for the
/// rows the index scan could yield, not the batch the `LIMIT` keeps.)
async fn session_batch(
    db: &Db,
    after: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Option<DateTime<Utc>>, DateTime<Utc>, bool)>, DbErr> {
    let mut select = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .column(session::Column::RevokedAt)
        .column(session::Column::ExpiresAt)
        .order_by_asc(session::Column::Id)
        .limit(BATCH);
    if let Some(after) = after {
        select = select.filter(session::Column::Id.gt(after));
    }
    let sessions: Vec<(Uuid, Option<DateTime<Utc>>, DateTime<Utc>)> =
        select.into_tuple().all(db.read()).await?;
    let undecided: Vec<Uuid> = sessions
        .iter()
        .filter(|(_, revoked_at, expires_at)| revoked_at.is_none() && *expires_at > now)
        .map(|(id, ..)| *id)
        .collect();
    let usable: std::collections::HashSet<Uuid> = if undecided.is_empty() {
        std::collections::HashSet::new()
    } else {
        refresh_token::Entity::find()
            .select_only()
            .column(refresh_token::Column::SessionId)
            .filter(refresh_token::Column::SessionId.is_in(undecided))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::ExpiresAt.gt(now))
            .into_tuple::<Uuid>()
            .all(db.read())
            .await?
            .into_iter()
            .collect()
    };
    Ok(sessions
        .into_iter()
        .map(|(id, revoked_at, expires_at)| (id, revoked_at, expires_at, usable.contains(&id)))
        .collect())
}

/// Deletes `ids` and their refresh tokens in one short transaction.
async fn delete_sessions(db: &Db, ids: &[Uuid]) -> Result<(u64, u64), DbErr> {
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let txn = db.begin().await?;
    // The sessions first, then their tokens: the order a rotation locks
    // them in (services::rotation), so the two never deadlock on Postgres.
    // (SQLite has one writer and no row locks; there this is a plain read.)
    session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .lock_exclusive()
        .into_tuple::<Uuid>()
        .all(&txn)
        .await?;
    let tokens = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::SessionId.is_in(ids.iter().copied()))
        .exec(&txn)
        .await?
        .rows_affected;
    let sessions = session::Entity::delete_many()
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok((sessions, tokens))
}

/// Records a pass in the log and the metrics.
pub fn report(metrics: &Metrics, removed: &Removed) {
    for (kind, count) in [
        ("expired_sessions", removed.expired_sessions),
        ("revoked_sessions", removed.revoked_sessions),
        ("refresh_tokens", removed.refresh_tokens),
        ("audit_events", removed.audit_events),
        ("login_attempts", removed.login_attempts),
        ("trusted_devices", removed.trusted_devices),
        ("mail_outbox", removed.mail_outbox),
        ("email_tokens", removed.email_tokens),
        ("ceremonies", removed.ceremonies),
        ("api_keys", removed.api_keys),
    ] {
        metrics
            .cleanup_removed
            .with_label_values(&[kind])
            .inc_by(count);
    }
    tracing::info!(
        expired_sessions = removed.expired_sessions,
        revoked_sessions = removed.revoked_sessions,
        refresh_tokens = removed.refresh_tokens,
        audit_events = removed.audit_events,
        login_attempts = removed.login_attempts,
        trusted_devices = removed.trusted_devices,
        mail_outbox = removed.mail_outbox,
        email_tokens = removed.email_tokens,
        ceremonies = removed.ceremonies,
        api_keys = removed.api_keys,
        skipped = removed.skipped,
        "cleanup pass"
    );
}

/// Runs a pass every `WARDEN_CLEANUP_INTERVAL`, the first one interval after
/// start (start-up stays fast, and tests stay in control). Runs until the
/// task is aborted; an abort between batches leaves nothing half-done.
pub async fn run_every(state: AppState) {
    let every: Duration = state.config.cleanup_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Opened once, at the first pass.
    let mut background: Option<Db> = None;
    loop {
        ticker.tick().await;
        if background.is_none() {
            match state.db.background().await {
                Ok(db) => background = Some(db),
                Err(err) => {
                    tracing::warn!(error = %err, "cleanup: cannot open its connection; retrying next interval");
                    continue;
                }
            }
        }
        let db = background.as_ref().unwrap_or(&state.db);
        match run_paced(db, &state.config, state.clock.now(), Pace::Shared).await {
            Ok(removed) => report(&state.metrics, &removed),
            Err(err) => tracing::warn!(error = %err, "cleanup pass failed; retrying next interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_pass_rests_as_long_as_each_batch_took_up_to_the_cap_and_a_flat_one_never() {
        let work = Duration::from_millis(340);
        assert_eq!(Pace::Shared.rest_after(work), work);
        assert_eq!(Pace::Shared.rest_after(Duration::from_secs(30)), MAX_REST);
        assert_eq!(Pace::Shared.rest_after(Duration::ZERO), Duration::ZERO);
        assert_eq!(Pace::Flat.rest_after(work), Duration::ZERO);
        assert_eq!(
            Pace::Flat.rest_after(Duration::from_secs(30)),
            Duration::ZERO
        );
    }
}
