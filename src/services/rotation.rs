//! A refresh rotation from the presented token's hash to the stored
//! successor: find the token, its session and owner, then — all or nothing —
//! touch the session, claim the token, store its successor and record the
//! audit event.
//!
//! Each write goes on only if the one before it changed a row: a revoked
//! session ends the rotation before the token is claimed, and a token
//! already claimed by someone else ([`Claim::Lost`]) gets no successor here
//! (the caller then decides between a grace retry and a replay). A token
//! that [`Presented::refusal`] turns down (revoked session, expiry) writes
//! nothing at all.
//!
//! On SQLite the read is one query and the four writes are four statements
//! in one write transaction: the database is in-process and a statement
//! costs no network round trip.
//!
//! On Postgres every statement is a round trip, and sqlx adds one more each
//! time a connection goes back to its pool (a `Sync` it waits on, to check
//! the connection). A read followed by one statement for the four writes
//! was two pooled connections and four round trips per refresh; profiling
//! W3 (bench/) showed Warden's executor spending a fifth of its time
//! sending to Postgres and waking its backends. So on Postgres the read and
//! the four writes are one statement ([`ONE_STATEMENT`]): a chain of
//! data-modifying CTEs, each gated on the one before and on the same
//! refusal rules as [`Presented::refusal`], returning what was read and
//! whether it was written. Measured on the bench VM at 16 connections:
//! Warden's CPU per refresh fell from about 230 to 130 µs and throughput
//! rose from 2.5–2.7k to 3.3–4.0k refreshes/s.
//!
//! The session row is locked before the token row, on both backends and in
//! [`crate::cleanup`] too: two transactions that take the same rows in
//! opposite orders can deadlock on Postgres.
//!
//! One statement is atomic by itself. Its CTEs share one snapshot, but
//! under READ COMMITTED an UPDATE that finds its row changed by a
//! transaction that committed meanwhile re-checks its WHERE on the newest
//! version, so of two concurrent claims exactly one sees `used_at IS NULL`,
//! and a logout that commits between the read and the touch stops the
//! rotation ([`Claim::SessionEnded`]): the same guarantees as the separate
//! statements.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{audit_event, refresh_token, session, user};
use sea_orm::{
    sea_query::Expr, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, Statement, Value,
};
use uuid::Uuid;

use crate::db::{Db, FetchUnique};

/// How a rotation attempt ended, once the presented token was found and
/// not refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The token is spent and its successor stored, with the audit row.
    Rotated,
    /// The session was revoked after the token was read: nothing was
    /// written.
    SessionEnded,
    /// Another request spent the token first: only the session's
    /// `last_used_at` was written (the session was presented, by a retry or
    /// by a replay the caller goes on to judge).
    Lost,
}

/// The presented token and what it belongs to, as read.
#[derive(Clone, Debug)]
pub struct Presented {
    pub token_id: Uuid,
    pub token_used_at: Option<DateTime<Utc>>,
    pub token_expires_at: DateTime<Utc>,
    pub session_id: Uuid,
    pub session_expires_at: DateTime<Utc>,
    pub session_revoked: bool,
    /// The session's owner.
    pub user: user::Model,
}

impl Presented {
    /// Why this token cannot be rotated at `now`, if it cannot: the reason
    /// the `REFRESH_FAILED` audit event gives. [`ONE_STATEMENT`] applies the
    /// same rules in SQL.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<&'static str> {
        if self.session_revoked {
            return Some("session_revoked");
        }
        // A spent token goes on to reuse detection even once expired: a
        // stolen token replayed late is still theft while its session lives.
        let token_expired = self.token_used_at.is_none() && self.token_expires_at <= now;
        (self.session_expires_at <= now || token_expired).then_some("expired")
    }

    /// The successor's expiry: `ttl` from `now`, never past the session's.
    pub fn successor_expires_at(&self, now: DateTime<Utc>, ttl: TimeDelta) -> DateTime<Utc> {
        token_expiry(now, ttl, self.session_expires_at)
    }
}

/// A refresh token's expiry: `ttl` from `now`, never past its session's end.
pub fn token_expiry(
    now: DateTime<Utc>,
    ttl: TimeDelta,
    session_expires_at: DateTime<Utc>,
) -> DateTime<Utc> {
    (now + ttl).min(session_expires_at)
}

/// The unspent row of a refresh token whose hash is `token_hash`: a
/// session's first (`parent` `None`) or a successor.
pub fn token_row(
    id: Uuid,
    session_id: Uuid,
    token_hash: String,
    parent: Option<Uuid>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel {
        id: ActiveValue::Set(id),
        session_id: ActiveValue::Set(session_id),
        token_hash: ActiveValue::Set(token_hash),
        parent_id: ActiveValue::Set(parent),
        issued_at: ActiveValue::Set(now),
        expires_at: ActiveValue::Set(expires_at),
        used_at: ActiveValue::Set(None),
    }
}

/// What one rotation writes, before the presented token is known.
pub struct Rotation {
    /// The hash of the presented token.
    pub presented_hash: String,
    /// The successor's row id.
    pub successor_id: Uuid,
    /// The hash of the successor token.
    pub successor_hash: String,
    /// How long a refresh token lives (capped by the session's end).
    pub successor_ttl: TimeDelta,
    /// The `TOKEN_REFRESHED` audit row; its user and session are filled in
    /// from the presented token.
    pub audit: audit_event::ActiveModel,
    /// The time of the rotation.
    pub now: DateTime<Utc>,
}

/// How [`run`] ended.
#[derive(Debug)]
pub enum Outcome {
    /// No stored token has this hash.
    Unknown,
    /// Found but turned down by [`Presented::refusal`]: nothing was written.
    Refused {
        presented: Presented,
        reason: &'static str,
    },
    /// Found and tried.
    Tried { presented: Presented, claim: Claim },
}

/// Finds the presented token and rotates it, all or nothing.
pub async fn run(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    if db.is_sqlite() {
        read_then_write(db, rotation).await
    } else {
        in_one_statement(db, rotation).await
    }
}

async fn read_then_write(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    // Token, session and owner in one read.
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(rotation.presented_hash.as_str()))
        .find_also_related(session::Entity)
        .and_also_related(user::Entity)
        .unique(db.read())
        .await?;
    let Some((token, Some(session), Some(user))) = found else {
        return Ok(Outcome::Unknown);
    };
    let presented = Presented {
        token_id: token.id,
        token_used_at: token.used_at,
        token_expires_at: token.expires_at,
        session_id: session.id,
        session_expires_at: session.expires_at,
        session_revoked: session.revoked_at.is_some(),
        user,
    };
    if let Some(reason) = presented.refusal(rotation.now) {
        return Ok(Outcome::Refused { presented, reason });
    }
    let claim = in_transaction(db, &presented, rotation).await?;
    Ok(Outcome::Tried { presented, claim })
}

async fn in_transaction(
    db: &Db,
    presented: &Presented,
    rotation: Rotation,
) -> Result<Claim, DbErr> {
    let now = rotation.now;
    let txn = db.begin().await?;
    let changed = |result: sea_orm::UpdateResult| result.rows_affected == 1;
    let touch = session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .filter(session::Column::Id.eq(presented.session_id))
        .filter(session::Column::RevokedAt.is_null());
    // Returning early drops `txn`, which rolls it back.
    if !changed(touch.exec(&txn).await?) {
        return Ok(Claim::SessionEnded);
    }
    let claim = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(presented.token_id))
        .filter(refresh_token::Column::UsedAt.is_null());
    if !changed(claim.exec(&txn).await?) {
        // Kept, as the one statement on Postgres keeps it.
        txn.commit().await?;
        return Ok(Claim::Lost);
    }
    let successor = token_row(
        rotation.successor_id,
        presented.session_id,
        rotation.successor_hash,
        Some(presented.token_id),
        now,
        presented.successor_expires_at(now, rotation.successor_ttl),
    );
    refresh_token::Entity::insert(successor)
        .exec_without_returning(&txn)
        .await?;
    let mut audit = rotation.audit;
    audit.user_id = ActiveValue::Set(Some(presented.user.id));
    audit.session_id = ActiveValue::Set(Some(presented.session_id));
    audit_event::Entity::insert(audit)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Claim::Rotated)
}

/// The whole rotation on Postgres. `found` is the read; `touched`,
/// `claimed`, `issued` and `audited` are the writes, each gated on the one
/// before. `touched` is also gated on [`Presented::refusal`]'s rules, so a
/// refused token writes nothing. The statement returns the read (no row:
/// unknown token) and whether the session was touched and the token claimed.
///
/// Parameters: $1 presented hash, $2 now, $3 successor id, $4 successor
/// hash, $5 now + refresh TTL, then the audit row's $6 kind, $7 severity,
/// $8 ip, $9 user agent, $10 detail.
const ONE_STATEMENT: &str = "\
WITH found AS (
    SELECT t.id AS token_id, t.used_at AS token_used_at, t.expires_at AS token_expires_at,
           s.id AS session_id, s.expires_at AS session_expires_at,
           s.revoked_at IS NOT NULL AS session_revoked,
           u.id, u.email, u.username, u.password_hash, u.role, u.created_at, u.last_login_at
    FROM refresh_tokens t
    JOIN sessions s ON s.id = t.session_id
    JOIN users u ON u.id = s.user_id
    WHERE t.token_hash = $1
), touched AS (
    UPDATE sessions s SET last_used_at = $2
    FROM found f
    WHERE s.id = f.session_id AND s.revoked_at IS NULL AND s.expires_at > $2
      AND NOT f.session_revoked
      AND (f.token_used_at IS NOT NULL OR f.token_expires_at > $2)
    RETURNING s.id, s.expires_at
), claimed AS (
    UPDATE refresh_tokens t SET used_at = $2
    FROM found f
    WHERE t.id = f.token_id AND t.used_at IS NULL AND EXISTS (SELECT 1 FROM touched)
    RETURNING t.id
), issued AS (
    INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, expires_at, used_at)
    SELECT $3, touched.id, $4, claimed.id, $2, LEAST(touched.expires_at, $5), NULL
    FROM touched, claimed
    RETURNING id
), audited AS (
    INSERT INTO audit_events (at, kind, severity, user_id, session_id, ip, user_agent, detail)
    SELECT $2, $6, $7, f.id, f.session_id, $8, $9, $10
    FROM found f, issued
    RETURNING id
)
SELECT f.*, EXISTS (SELECT 1 FROM touched) AS touched, EXISTS (SELECT 1 FROM claimed) AS claimed
FROM found f";

async fn in_one_statement(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    let now = rotation.now;
    let audit = rotation.audit;
    let value = |field: Option<Value>, what: &str| {
        field.ok_or_else(|| DbErr::Custom(format!("rotation audit row: no {what}")))
    };
    let values: Vec<Value> = vec![
        rotation.presented_hash.into(),
        now.into(),
        rotation.successor_id.into(),
        rotation.successor_hash.into(),
        (now + rotation.successor_ttl).into(),
        value(audit.kind.into_value(), "kind")?,
        value(audit.severity.into_value(), "severity")?,
        value(audit.ip.into_value(), "ip")?,
        value(audit.user_agent.into_value(), "user agent")?,
        value(audit.detail.into_value(), "detail")?,
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, ONE_STATEMENT, values);
    let Some(row) = db.write().query_one_raw(statement).await? else {
        return Ok(Outcome::Unknown);
    };
    let presented = Presented {
        token_id: row.try_get("", "token_id")?,
        token_used_at: row.try_get("", "token_used_at")?,
        token_expires_at: row.try_get("", "token_expires_at")?,
        session_id: row.try_get("", "session_id")?,
        session_expires_at: row.try_get("", "session_expires_at")?,
        session_revoked: row.try_get("", "session_revoked")?,
        user: user::Model::from_query_result(&row, "")?,
    };
    if let Some(reason) = presented.refusal(now) {
        return Ok(Outcome::Refused { presented, reason });
    }
    let touched: bool = row.try_get("", "touched")?;
    let claimed: bool = row.try_get("", "claimed")?;
    let claim = match (touched, claimed) {
        (false, _) => Claim::SessionEnded,
        (true, false) => Claim::Lost,
        (true, true) => Claim::Rotated,
    };
    Ok(Outcome::Tried { presented, claim })
}
