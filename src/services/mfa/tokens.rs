//! Ending `mfaToken`s when the password they stand for changes (a leaf:
//! the password services call it without importing the login's second step).

use chrono::{DateTime, Utc};
use entity::mfa_token;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::error::AppError;

/// Ends every unused `mfaToken` of the account, in the transaction that
/// changes or resets its password: a token stands for one password check,
/// and that password is gone.
pub async fn retire<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    mfa_token::Entity::update_many()
        .col_expr(mfa_token::Column::UsedAt, Expr::value(now))
        .filter(mfa_token::Column::UserId.eq(user_id))
        .filter(mfa_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
