//! API keys: creating, listing and revoking an account's keys, and
//! authenticating a request that presents one.
//!
//! - Here: the owner's operations. Creating and revoking need a session
//!   ([`AuthUser::require_session`]): a key can never make, revoke or
//!   change a key.
//! - [`authenticate`]: a presented key to its owner, rate limited per key
//!   before any lookup, `last_used_at` and `API_KEY_USED` sampled once an
//!   hour.
//! - [`introspect`]: RFC 7662 answers for `/oauth/introspect`.
//!
//! The key's format and hashing are mechanism, in [`crate::auth::api_key`].

pub mod authenticate;
pub mod introspect;

use chrono::{DateTime, Utc};
use entity::api_key;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::api_key as mechanism,
    domain::{ApiKeyScope, AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
    },
    state::AppState,
};

pub use authenticate::{authenticate, caller};

/// The most live (unrevoked) keys one account may hold.
pub const MAX_PER_ACCOUNT: u64 = 50;

/// Characters in a key's name, at most.
pub const MAX_NAME_CHARS: usize = 64;

/// What `createApiKey` asks for, parsed at the edge.
#[derive(Debug)]
pub struct NewKey {
    /// The owner's label.
    pub name: String,
    /// When it stops working (None: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// What it may do.
    pub scopes: Vec<ApiKeyScope>,
}

/// `createApiKey`: a new key for the caller, returned once with its row.
/// Only a session may create one; the `ADMIN` scope only for an admin.
/// Audited `API_KEY_CREATED` (prefix, name and scopes; never the key).
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    input: NewKey,
) -> Result<(api_key::Model, SecretString), AppError> {
    // An API key may never change a password, a factor, an email or a key.
    let session_id = caller.require_session()?;
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::bad_input(
            "name",
            format!("a name is 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if input.scopes.is_empty() {
        return Err(AppError::bad_input("scopes", "give at least one scope"));
    }
    if input.scopes.contains(&ApiKeyScope::Admin) && caller.role() != Role::Admin {
        return Err(AppError::Forbidden);
    }
    let now = state.clock.now();
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::bad_input("expiresAt", "must be in the future"));
    }
    let txn = state.db.begin().await?;
    let live = api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(caller.user.id))
        .filter(api_key::Column::RevokedAt.is_null())
        .count(&txn)
        .await?;
    if live >= MAX_PER_ACCOUNT {
        return Err(AppError::bad_input(
            "name",
            format!("an account may hold {MAX_PER_ACCOUNT} keys: revoke one first"),
        ));
    }
    let key = mechanism::generate();
    let row = api_key::Model {
        id: Uuid::now_v7(),
        user_id: caller.user.id,
        name,
        prefix: key.prefix.clone(),
        secret_hash: key.hash.clone(),
        scopes: ApiKeyScope::to_stored(&input.scopes),
        created_at: now,
        last_used_at: None,
        expires_at: input.expires_at,
        revoked_at: None,
    };
    api_key::Entity::insert(api_key::ActiveModel {
        id: Set(row.id),
        user_id: Set(row.user_id),
        name: Set(row.name.clone()),
        prefix: Set(row.prefix.clone()),
        secret_hash: Set(row.secret_hash.clone()),
        scopes: Set(row.scopes.clone()),
        created_at: Set(row.created_at),
        last_used_at: Set(None),
        expires_at: Set(row.expires_at),
        revoked_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    let event = Event::new(AuditEventKind::ApiKeyCreated)
        .user(caller.user.id)
        .session(session_id)
        .detail(json!({
            "api_key_id": row.id,
            "prefix": row.prefix,
            "name": row.name,
            "scopes": row.scopes,
            "expires_at": row.expires_at,
        }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok((row, key.secret))
}

/// `apiKeys`: the caller's unrevoked keys (expired ones included, so the
/// owner sees why a script stopped), oldest first.
pub async fn list(state: &AppState, caller: &AuthUser) -> Result<Vec<api_key::Model>, AppError> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(caller.user.id))
        .filter(api_key::Column::RevokedAt.is_null())
        .order_by_asc(api_key::Column::CreatedAt)
        .order_by_asc(api_key::Column::Id)
        .all(state.db.read())
        .await?)
}

/// `revokeApiKey`: ends one of the caller's keys at once. False for an id
/// that is not a live key of the caller's. Only a session may revoke.
/// Audited `API_KEY_REVOKED`.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    id: &str,
) -> Result<bool, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    let session_id = caller.require_session()?;
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(false);
    };
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let revoked = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::UserId.eq(caller.user.id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected == 1 {
        let event = Event::new(AuditEventKind::ApiKeyRevoked)
            .user(caller.user.id)
            .session(session_id)
            .detail(json!({ "api_key_id": id }));
        audit::record(&txn, now, meta, event).await?;
    }
    txn.commit().await?;
    Ok(revoked.rows_affected == 1)
}
