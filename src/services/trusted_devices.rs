//! Trusted devices: what lets an account's owner log in while a distributed
//! attack has closed the email to everyone else (see [`super::lockout`]).
//!
//! A device becomes trusted for one account by logging in to it: the login
//! hands back a device token (≥ 256 random bits; only its SHA-256 is
//! stored). A later login to the *same* account that presents it counts on
//! the device's own lockout counter and passes the email's lock. The token
//! is renewed at each such login: the row keeps its id (so the device list
//! does not grow with every login) but gets a new token and a new expiry,
//! and the old token stops working. A login that presents no valid token
//! for the account creates a new row; an account keeps at most
//! [`MAX_PER_ACCOUNT`] of them, the least recently used going first.
//! `logoutAllDevices`, `changePassword` and `revokeTrustedDevice` revoke
//! them; cleanup deletes expired and revoked rows.

use chrono::{DateTime, Utc};
use entity::trusted_device;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    auth::opaque_token, clock::delta, db::FetchUnique, error::AppError, meta::RequestMeta,
    services::auth_user::AuthUser, state::AppState,
};

/// Live trusted devices an account keeps; a new one beyond pushes out the
/// least recently used, so a script that logs in without ever sending its
/// token back cannot grow the table without bound.
pub const MAX_PER_ACCOUNT: u64 = 20;

/// The live trusted device a presented token proves, whatever its account.
/// Malformed tokens are refused without a database round trip.
pub async fn find_live(
    state: &AppState,
    token: Option<&str>,
) -> Result<Option<trusted_device::Model>, AppError> {
    let Some(token) = token.filter(|t| opaque_token::looks_valid(t)) else {
        return Ok(None);
    };
    let now = state.clock.now();
    Ok(trusted_device::Entity::find()
        .filter(trusted_device::Column::TokenHash.eq(opaque_token::hash(token)))
        .filter(trusted_device::Column::RevokedAt.is_null())
        .filter(trusted_device::Column::ExpiresAt.gt(now))
        .unique(state.db.read())
        .await?)
}

/// Issues the device token of a login to `user_id`, inside the login's
/// transaction: renews `presented` when it is that account's device, else
/// trusts a new device.
pub async fn issue<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    meta: &RequestMeta,
    user_id: Uuid,
    presented: Option<&trusted_device::Model>,
    now: DateTime<Utc>,
) -> Result<SecretString, AppError> {
    let token = opaque_token::generate();
    let hash = opaque_token::hash(token.expose_secret());
    let expires_at = now + delta(state.config.device_token_ttl);
    if let Some(device) = presented.filter(|d| d.user_id == user_id) {
        // Guarded by the old hash: of two logins renewing one token at once,
        // the second finds it replaced and trusts a new device instead.
        let renewed = trusted_device::Entity::update_many()
            .col_expr(trusted_device::Column::TokenHash, Expr::value(hash.clone()))
            .col_expr(trusted_device::Column::LastUsedAt, Expr::value(now))
            .col_expr(trusted_device::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(trusted_device::Column::Ip, Expr::value(meta.ip_string()))
            .col_expr(
                trusted_device::Column::UserAgent,
                Expr::value(meta.user_agent.clone()),
            )
            .filter(trusted_device::Column::Id.eq(device.id))
            .filter(trusted_device::Column::TokenHash.eq(device.token_hash.as_str()))
            .filter(trusted_device::Column::RevokedAt.is_null())
            .exec(conn)
            .await?;
        if renewed.rows_affected == 1 {
            return Ok(token);
        }
    }
    trusted_device::Entity::insert(trusted_device::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        token_hash: Set(hash),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        ip: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent.clone()),
    })
    .exec_without_returning(conn)
    .await?;
    let beyond: Vec<Uuid> = trusted_device::Entity::find()
        .select_only()
        .column(trusted_device::Column::Id)
        .filter(trusted_device::Column::UserId.eq(user_id))
        .order_by_desc(trusted_device::Column::LastUsedAt)
        .order_by_desc(trusted_device::Column::Id)
        .offset(MAX_PER_ACCOUNT)
        .limit(100)
        .into_tuple()
        .all(conn)
        .await?;
    if !beyond.is_empty() {
        trusted_device::Entity::delete_many()
            .filter(trusted_device::Column::Id.is_in(beyond))
            .exec(conn)
            .await?;
    }
    Ok(token)
}

/// The caller's live trusted devices, most recently used first.
pub async fn list(
    state: &AppState,
    caller: &AuthUser,
) -> Result<Vec<trusted_device::Model>, AppError> {
    Ok(trusted_device::Entity::find()
        .filter(trusted_device::Column::UserId.eq(caller.user.id))
        .filter(trusted_device::Column::RevokedAt.is_null())
        .filter(trusted_device::Column::ExpiresAt.gt(state.clock.now()))
        .order_by_desc(trusted_device::Column::LastUsedAt)
        .all(state.db.read())
        .await?)
}

/// `revokeTrustedDevice`: false for an unknown id, another account's device
/// or one already revoked, indistinguishably (the owner is in the SQL).
#[tracing::instrument(skip_all)]
pub async fn revoke(state: &AppState, caller: &AuthUser, id: Uuid) -> Result<bool, AppError> {
    let done = trusted_device::Entity::update_many()
        .col_expr(
            trusted_device::Column::RevokedAt,
            Expr::value(state.clock.now()),
        )
        .filter(trusted_device::Column::Id.eq(id))
        .filter(trusted_device::Column::UserId.eq(caller.user.id))
        .filter(trusted_device::Column::RevokedAt.is_null())
        .exec(state.db.write())
        .await?;
    Ok(done.rows_affected > 0)
}

/// Revokes every trusted device of `user_id` inside the caller's
/// transaction (a password change, "log out everywhere"); returns how many.
pub async fn revoke_all<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let done = trusted_device::Entity::update_many()
        .col_expr(trusted_device::Column::RevokedAt, Expr::value(now))
        .filter(trusted_device::Column::UserId.eq(user_id))
        .filter(trusted_device::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}
