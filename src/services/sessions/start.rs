//! Starting a session: its row and its first refresh token, inside the
//! caller's transaction (`register`, `login`).

use chrono::{DateTime, Utc};
use entity::{refresh_token, session};
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    auth::opaque_token, clock::delta, domain::SignedInBy, error::AppError, meta::RequestMeta,
    services::rotation, state::AppState,
};

/// A new session's first refresh token.
pub struct Started {
    /// The session.
    pub session_id: Uuid,
    /// Its first refresh token (only ever returned to the client).
    pub refresh_token: SecretString,
    /// When that token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Creates a session for `user_id` and its first refresh token, inside `txn`.
pub async fn start(
    txn: &DatabaseTransaction,
    state: &AppState,
    meta: &RequestMeta,
    user_id: Uuid,
    how: &SignedInBy,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    let session_id = Uuid::now_v7();
    let session_expires = now + delta(state.config.session_max_age);
    session::Entity::insert(session::ActiveModel {
        id: Set(session_id),
        user_id: Set(user_id),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(session_expires),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        ip: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent.clone()),
        method: Set(how.method.as_str().to_owned()),
        amr: Set(how.amr.clone()),
    })
    .exec_without_returning(txn)
    .await?;
    let token = opaque_token::generate();
    let (row, expires) = token_row(state, session_id, session_expires, &token, now);
    refresh_token::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(Started {
        session_id,
        refresh_token: token,
        refresh_expires_at: expires,
    })
}

/// The row that stores the hash of a session's first `token`, and its
/// expiry (never past the session's).
fn token_row(
    state: &AppState,
    session_id: Uuid,
    session_expires: DateTime<Utc>,
    token: &SecretString,
    now: DateTime<Utc>,
) -> (refresh_token::ActiveModel, DateTime<Utc>) {
    let ttl = delta(state.config.refresh_token_ttl);
    let expires = rotation::token_expiry(now, ttl, session_expires);
    let hash = opaque_token::hash(token.expose_secret());
    let row = rotation::token_row(Uuid::now_v7(), session_id, hash, None, now, expires);
    (row, expires)
}
