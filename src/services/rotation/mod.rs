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
//! the four writes are one statement (`ONE_STATEMENT`, in `postgres.rs`): a chain of
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
//!
//! # Layout
//! The types and [`run`] are here; `sqlite.rs` holds the read and the
//! write transaction, `postgres.rs` the one statement.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{audit_event, refresh_token, user};
use sea_orm::{ActiveValue, DbErr};
use uuid::Uuid;

use crate::db::Db;

mod postgres;
mod sqlite;

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
    /// The token's row id.
    pub token_id: Uuid,
    /// When the token was spent, if it was.
    pub token_used_at: Option<DateTime<Utc>>,
    /// When the token stops working if it is never spent.
    pub token_expires_at: DateTime<Utc>,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// When that session ends, whatever its tokens say.
    pub session_expires_at: DateTime<Utc>,
    /// Whether that session was revoked when read.
    pub session_revoked: bool,
    /// That session's `amr`, for the access token a rotation mints.
    pub session_amr: String,
    /// The session's owner.
    pub user: user::Model,
}

impl Presented {
    /// Why this token cannot be rotated at `now`, if it cannot: the reason
    /// the `REFRESH_FAILED` audit event gives. The one statement on Postgres
    /// applies the same rules in SQL.
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
        /// The token as read.
        presented: Presented,
        /// Why, as the `REFRESH_FAILED` audit event gives it.
        reason: &'static str,
    },
    /// Found and tried.
    Tried {
        /// The token as read.
        presented: Presented,
        /// What the attempt did.
        claim: Claim,
    },
}

/// Finds the presented token and rotates it, all or nothing.
pub async fn run(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    if db.is_sqlite() {
        sqlite::read_then_write(db, rotation).await
    } else {
        postgres::in_one_statement(db, rotation).await
    }
}

#[cfg(test)]
mod tests {
    use entity::user;
    use sea_orm::{IdenStatic, Iterable};

    /// The hand-written reads of a user (`postgres.rs` here, the in-place
    /// session check in `db::liveness`) select
    /// `entity::user_columns!()` and decode it by name or by position: a
    /// column added to the entity but not to that list fails here, not in
    /// production.
    #[test]
    fn the_hand_written_user_columns_are_every_column_of_the_entity_in_order() {
        let entity: Vec<String> = user::Column::iter()
            .map(|column| format!("u.{}", column.as_str()))
            .collect();
        assert_eq!(entity::user_columns!(), entity.join(", "));
    }
}
