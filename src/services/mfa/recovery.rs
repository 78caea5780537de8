//! Recovery codes: issued ten at a time (replacing the account's older
//! ones), stored as keyed hashes bound to their row, each redeemed once.

use chrono::{DateTime, Utc};
use entity::recovery_code;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{auth::recovery_code as codes, error::AppError, state::AppState};

/// Deletes the account's codes and issues [`codes::COUNT`] new
/// ones on `conn`; the codes as shown, for the one answer that carries them.
pub async fn replace<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<SecretString>, AppError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    let mut shown = Vec::with_capacity(codes::COUNT);
    let mut rows = Vec::with_capacity(codes::COUNT);
    for _ in 0..codes::COUNT {
        let code = codes::generate();
        let canonical = codes::normalize(code.expose_secret())
            .ok_or_else(|| AppError::internal("a generated recovery code does not normalize"))?;
        let id = Uuid::now_v7();
        rows.push(recovery_code::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            code_hash: Set(state.recovery_codes.digest(id, &canonical)),
            created_at: Set(now),
            used_at: Set(None),
        });
        shown.push(code);
    }
    recovery_code::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(shown)
}

/// Deletes every code of the account (the factor was turned off).
pub async fn delete_all<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> Result<(), AppError> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// How many unused codes the account has.
pub async fn left<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> Result<u64, AppError> {
    Ok(recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(conn)
        .await?)
}

/// Redeems `raw` for the account: true when it is one of its unused codes
/// and this call marked it used. Every unused code is compared (at most
/// ten); the mark is a conditional UPDATE, so of two concurrent uses of one
/// code exactly one wins.
pub async fn redeem<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user_id: Uuid,
    raw: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let Some(code) = codes::normalize(raw) else {
        return Ok(false);
    };
    let unused = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .all(conn)
        .await?;
    let mut matched = None;
    for row in &unused {
        if state.recovery_codes.matches(row.id, &code, &row.code_hash) {
            matched = Some(row.id);
        }
    }
    let Some(id) = matched else {
        return Ok(false);
    };
    let marked = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(now))
        .filter(recovery_code::Column::Id.eq(id))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(marked.rows_affected == 1)
}
