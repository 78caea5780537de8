//! Ending sessions: one by id, `logout` by refresh or access token, the
//! mass logouts, and every session of a user (a password change).

use chrono::{DateTime, Utc};
use entity::{refresh_token, session};
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::RevokeReason;
use crate::{
    auth::{jwt::Claims, opaque_token},
    db::FetchUnique,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
        trusted_devices,
    },
    state::AppState,
};

/// Marks one session revoked; true when it was alive until now.
/// With `owner`, only a session of that user is touched: another user's
/// session id then behaves exactly like an unknown one.
pub async fn revoke<C: ConnectionTrait>(
    conn: &C,
    session_id: Uuid,
    owner: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(owner) = owner {
        update = update.filter(session::Column::UserId.eq(owner));
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// Ends the session `session_id` (if alive) and audits it. Idempotent.
async fn end_session(
    state: &AppState,
    meta: &RequestMeta,
    session_id: Uuid,
    user_id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let revoked = revoke(&txn, session_id, None, RevokeReason::Logout, now).await?;
    if revoked {
        audit::record(
            &txn,
            now,
            meta,
            Event::new(AuditEventKind::SessionRevoked)
                .user(user_id)
                .session(session_id)
                .detail(json!({ "reason": "logout" })),
        )
        .await?;
    }
    txn.commit().await?;
    if revoked {
        state
            .metrics
            .sessions_revoked
            .with_label_values(&[RevokeReason::Logout.as_str()])
            .inc();
    }
    Ok(())
}

/// `logout(refreshToken)`: ends that token's session. Always `true` for a
/// well-formed request, known token or not, so it is no oracle.
#[tracing::instrument(skip_all)]
pub async fn logout_by_refresh_token(
    state: &AppState,
    meta: &RequestMeta,
    presented: &str,
) -> Result<bool, AppError> {
    if !opaque_token::looks_valid(presented) {
        return Ok(true);
    }
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(opaque_token::hash(presented)))
        .find_also_related(session::Entity)
        .unique(state.db.read())
        .await?;
    if let Some((_, Some(session))) = found {
        end_session(state, meta, session.id, session.user_id).await?;
    }
    Ok(true)
}

/// `logout` with no argument: ends the session of the access token.
#[tracing::instrument(skip_all)]
pub async fn logout_by_access_token(
    state: &AppState,
    meta: &RequestMeta,
    claims: &Claims,
) -> Result<bool, AppError> {
    end_session(state, meta, claims.sid, claims.sub).await?;
    Ok(true)
}

/// Which of the caller's sessions a mass revocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every session, the current one included (`logoutAllDevices`).
    All,
    /// Every session but the current one (`logoutOtherDevices`).
    Others,
}

/// `logoutAllDevices` and `logoutOtherDevices`: revokes the caller's live
/// sessions in `scope` and returns how many.
#[tracing::instrument(skip_all)]
pub async fn logout_many(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    scope: Scope,
) -> Result<u64, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let reason = match scope {
        Scope::All => RevokeReason::LogoutAll,
        Scope::Others => RevokeReason::LogoutOthers,
    };
    // A key's caller has no session of its own: "others" is then all.
    let keep = (scope == Scope::Others)
        .then_some(caller.session_id())
        .flatten();
    let count = revoke_user_sessions(&txn, caller.user.id, keep, reason, now).await?;
    if scope == Scope::All {
        // "Log out everywhere" also ends every device's trust: a device
        // token that leaked with a session must not outlive it.
        trusted_devices::revoke_all(&txn, caller.user.id, now).await?;
    }
    let scope_name = if keep.is_some() { "others" } else { "all" };
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::AllSessionsRevoked)
            .user(caller.user.id)
            .session_if(caller.session_id())
            .detail(json!({ "count": count, "scope": scope_name })),
    )
    .await?;
    txn.commit().await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[reason.as_str()])
        .inc_by(count);
    Ok(count)
}

/// Revokes every live session of `user_id` except `keep`, inside the
/// caller's transaction; returns how many.
pub async fn revoke_user_sessions<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now));
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    Ok(update.exec(conn).await?.rows_affected)
}
