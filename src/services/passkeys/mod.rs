//! Passkeys (WebAuthn): an account's registered credentials, and the two
//! ceremonies that use them.
//!
//! - [`ceremony`] keeps a ceremony's state server-side, single use, five
//!   minutes.
//! - [`register`] adds a passkey to a signed-in account.
//! - [`sign_in`] signs in with one, alone or as `completeLogin`'s second
//!   step.
//! - Here: listing, renaming and deleting the caller's passkeys.
//!
//! A passkey is a way in without a password, and a second step after one;
//! it does not turn `mfaEnabled` on by itself (that is the authenticator
//! app, with its recovery codes), so losing a passkey never locks a
//! password out.

pub mod ceremony;
pub mod register;
pub mod sign_in;

use entity::passkey;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::Passkey;

use crate::{
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
        mfa,
    },
    state::AppState,
};

/// The most passkeys one account may hold.
pub const MAX_PER_ACCOUNT: usize = 20;

/// The stored webauthn-rs credential of `row`.
pub fn credential(row: &passkey::Model) -> Result<Passkey, AppError> {
    serde_json::from_str(&row.credential)
        .map_err(|e| AppError::internal(format!("passkey {}: stored credential: {e}", row.id)))
}

/// The account's passkeys, oldest first.
pub async fn owned<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
) -> Result<Vec<passkey::Model>, AppError> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .order_by_asc(passkey::Column::Id)
        .all(conn)
        .await?)
}

/// Whether the account has a passkey (for `MFA_REQUIRED`'s `methods`).
pub async fn has_any<C: ConnectionTrait>(conn: &C, user_id: Uuid) -> Result<bool, AppError> {
    Ok(passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .is_some())
}

fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::bad_input("id", "not a passkey id"))
}

/// The caller's passkey `id`, or `BAD_USER_INPUT` (another account's
/// passkey answers the same as a missing one).
async fn find_own(
    state: &AppState,
    caller: &AuthUser,
    id: &str,
) -> Result<passkey::Model, AppError> {
    let id = parse_id(id)?;
    passkey::Entity::find_by_id(id)
        .one(state.db.write())
        .await?
        .filter(|row| row.user_id == caller.user.id)
        .ok_or_else(|| AppError::bad_input("id", "no such passkey on this account"))
}

/// `renamePasskey`.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn rename(
    state: &AppState,
    caller: &AuthUser,
    id: &str,
    name: &str,
) -> Result<passkey::Model, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let name = register::parse_name(name)?;
    let row = find_own(state, caller, id).await?;
    passkey::Entity::update_many()
        .col_expr(
            passkey::Column::Name,
            sea_orm::sea_query::Expr::value(name.clone()),
        )
        .filter(passkey::Column::Id.eq(row.id))
        .filter(passkey::Column::UserId.eq(caller.user.id))
        .exec(state.db.write())
        .await?;
    Ok(passkey::Model { name, ..row })
}

/// `deletePasskey`: while a second factor is on, only with a current code
/// from the authenticator app (`code`), checked like `changePassword`'s.
/// Audited `PASSKEY_REMOVED`.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    id: &str,
    code: Option<&str>,
) -> Result<bool, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let row = find_own(state, caller, id).await?;
    mfa::demand_second_factor(state, meta, caller, code, "deletePasskey").await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let deleted = passkey::Entity::delete_many()
        .filter(passkey::Column::Id.eq(row.id))
        .filter(passkey::Column::UserId.eq(caller.user.id))
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 1 {
        let event = Event::new(AuditEventKind::PasskeyRemoved)
            .user(caller.user.id)
            .session(caller.require_session()?)
            .detail(json!({ "passkey_id": row.id }));
        audit::record(&txn, now, meta, event).await?;
    }
    txn.commit().await?;
    Ok(deleted.rows_affected == 1)
}
