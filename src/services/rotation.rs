//! The writes of a refresh rotation, all or nothing: touch the session,
//! claim the presented token, store its successor, record the audit event.
//!
//! Each step goes on only if the one before it changed a row: a revoked
//! session ends the rotation before the token is claimed, and a token
//! already claimed by someone else ([`Claim::Lost`]) gets no successor here
//! (the caller then decides between a grace retry and a replay).
//!
//! On SQLite the four steps are four statements in one write transaction:
//! the database is in-process and a statement costs no network round trip.
//! On Postgres every statement is a round trip, and a rotation written that
//! way took six (BEGIN, four writes, COMMIT): half of Warden's time in W3
//! (bench/) was spent waiting on them. There the same four writes go in one
//! statement, a chain of data-modifying CTEs each gated on the one before:
//!
//! ```sql
//! WITH touched AS (UPDATE sessions SET last_used_at = $now
//!                  WHERE id = $session AND revoked_at IS NULL RETURNING id),
//!      claimed AS (UPDATE refresh_tokens SET used_at = $now
//!                  WHERE id = $token AND used_at IS NULL
//!                    AND EXISTS (SELECT * FROM touched) RETURNING id),
//!      issued  AS (INSERT INTO refresh_tokens (…) SELECT … FROM claimed RETURNING id),
//!      audited AS (INSERT INTO audit_events (…) SELECT … FROM issued RETURNING id)
//! SELECT EXISTS (SELECT * FROM touched) AS alive, EXISTS (SELECT * FROM claimed) AS claimed
//! ```
//!
//! The session row is locked before the token row, on both backends and in
//! [`crate::cleanup`] too: two transactions that take the same rows in
//! opposite orders can deadlock on Postgres.
//!
//! One statement is atomic by itself. Under READ COMMITTED an UPDATE that
//! finds its row changed by a transaction that committed meanwhile
//! re-checks its WHERE on the newest version, so of two concurrent claims
//! exactly one sees `used_at IS NULL`: the same guarantee as the separate
//! statements. Both forms are built from the same sea-orm builders and
//! rows, so they cannot drift apart.

use chrono::{DateTime, Utc};
use entity::{audit_event, refresh_token, session};
use sea_orm::{
    sea_query::{
        Alias, Asterisk, CommonTableExpression, Expr, InsertStatement, Query, SelectStatement,
        UpdateStatement, WithClause,
    },
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbErr, EntityName, EntityTrait,
    Iterable, QueryFilter, QueryTrait, UpdateMany,
};
use uuid::Uuid;

use crate::db::Db;

/// How a rotation attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The token is spent and its successor stored, with the audit row.
    Rotated,
    /// The session was revoked: nothing was written.
    SessionEnded,
    /// Another request spent the token first: only the session's
    /// `last_used_at` was written (the session was presented, by a retry or
    /// by a replay the caller goes on to judge).
    Lost,
}

/// What one rotation writes.
pub struct Rotation {
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// The presented token's row.
    pub token_id: Uuid,
    /// The successor's row.
    pub successor: refresh_token::ActiveModel,
    /// The `TOKEN_REFRESHED` audit row.
    pub audit: audit_event::ActiveModel,
    /// The time of the rotation.
    pub now: DateTime<Utc>,
}

/// Runs `rotation` all or nothing, in one statement on Postgres.
pub async fn run(db: &Db, rotation: Rotation) -> Result<Claim, DbErr> {
    if db.is_sqlite() {
        in_transaction(db, rotation).await
    } else {
        in_one_statement(db, rotation).await
    }
}

/// `last_used_at = now` on the session, if it is alive.
fn touch(session_id: Uuid, now: DateTime<Utc>) -> UpdateMany<session::Entity> {
    session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null())
}

/// `used_at = now` on the token, if nobody spent it yet.
fn claim(token_id: Uuid, now: DateTime<Utc>) -> UpdateMany<refresh_token::Entity> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(token_id))
        .filter(refresh_token::Column::UsedAt.is_null())
}

async fn in_transaction(db: &Db, rotation: Rotation) -> Result<Claim, DbErr> {
    let txn = db.begin().await?;
    let changed = |result: sea_orm::UpdateResult| result.rows_affected == 1;
    // Returning early drops `txn`, which rolls it back.
    if !changed(touch(rotation.session_id, rotation.now).exec(&txn).await?) {
        return Ok(Claim::SessionEnded);
    }
    if !changed(claim(rotation.token_id, rotation.now).exec(&txn).await?) {
        // Kept, as the one statement on Postgres keeps it.
        txn.commit().await?;
        return Ok(Claim::Lost);
    }
    refresh_token::Entity::insert(rotation.successor)
        .exec_without_returning(&txn)
        .await?;
    audit_event::Entity::insert(rotation.audit)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Claim::Rotated)
}

async fn in_one_statement(db: &Db, rotation: Rotation) -> Result<Claim, DbErr> {
    let (touched, claimed, issued, audited) = ("touched", "claimed", "issued", "audited");
    let mut touch = touch(rotation.session_id, rotation.now).into_query();
    touch.returning_col(session::Column::Id);
    let mut claim = claim(rotation.token_id, rotation.now).into_query();
    gate(&mut claim, touched).returning_col(refresh_token::Column::Id);
    let mut issue = insert_from(rotation.successor, claimed)?;
    issue.returning_col(refresh_token::Column::Id);
    let mut audit = insert_from(rotation.audit, issued)?;
    audit.returning_col(audit_event::Column::Id);

    let mut with = WithClause::new();
    for (name, step) in [
        (touched, touch.into()),
        (claimed, claim.into()),
        (issued, issue.into()),
        (audited, audit.into()),
    ] {
        with.cte(
            CommonTableExpression::new()
                .query::<sea_orm::sea_query::SubQueryStatement>(step)
                .table_name(Alias::new(name))
                .to_owned(),
        );
    }
    let outcome = Query::select()
        .expr_as(Expr::exists(rows_of(touched)), Alias::new("alive"))
        .expr_as(Expr::exists(rows_of(claimed)), Alias::new("claimed"))
        .to_owned();
    let conn = db.write();
    let statement = conn.get_database_backend().build(&with.query(outcome));
    let row = conn
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the rotation statement returned no row".into()))?;
    let alive: bool = row.try_get("", "alive")?;
    let claimed: bool = row.try_get("", "claimed")?;
    Ok(match (alive, claimed) {
        (false, _) => Claim::SessionEnded,
        (true, false) => Claim::Lost,
        (true, true) => Claim::Rotated,
    })
}

/// `SELECT * FROM <cte>`.
fn rows_of(cte: &str) -> SelectStatement {
    Query::select()
        .column(Asterisk)
        .from(Alias::new(cte))
        .to_owned()
}

/// Adds `AND EXISTS (SELECT * FROM <cte>)` to `update`.
fn gate<'a>(update: &'a mut UpdateStatement, cte: &str) -> &'a mut UpdateStatement {
    update.and_where(Expr::exists(rows_of(cte)))
}

/// `INSERT INTO <table> (<set columns>) SELECT <values> FROM <cte>`: `row`
/// is written once if the CTE returned a row, and not at all otherwise.
/// Columns and values are taken the way sea-orm's own insert takes them.
fn insert_from<A>(row: A, cte: &str) -> Result<InsertStatement, DbErr>
where
    A: ActiveModelTrait,
{
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = row.get(column) {
            columns.push(column);
            values.push(column.save_as(Expr::val(value)));
        }
    }
    let select = Query::select()
        .exprs(values)
        .from(Alias::new(cte))
        .to_owned();
    let mut insert = Query::insert();
    insert
        .into_table(A::Entity::default().table_ref())
        .columns(columns)
        .select_from(select)
        .map_err(|err| DbErr::Custom(format!("rotation insert: {err}")))?;
    Ok(insert)
}
