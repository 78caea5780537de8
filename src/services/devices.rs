//! The caller's sessions as a device list: listing them and ending one.
//!
//! Every lookup is scoped to the caller's own user id in the SQL itself, so
//! another user's session id behaves exactly like an id that does not exist.

use chrono::{DateTime, Utc};
use entity::session;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use uuid::Uuid;

use crate::{
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        sessions::{self, AuthUser, RevokeReason},
    },
    state::AppState,
};

/// The caller's live sessions, most recently used first.
pub async fn list(state: &AppState, caller: &AuthUser) -> Result<Vec<session::Model>, AppError> {
    let now: DateTime<Utc> = state.clock.now();
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(caller.user.id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_desc(session::Column::LastUsedAt)
        .all(state.db.read())
        .await?)
}

/// `revokeSession`: ends one of the caller's own live sessions. False for
/// an unknown id, another user's session or one already ended: the answers
/// cannot be told apart.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    session_id: Uuid,
) -> Result<bool, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let owner = Some(caller.user.id);
    let revoked = sessions::revoke(&txn, session_id, owner, RevokeReason::Revoked, now).await?;
    if revoked {
        let event = Event::new(AuditEventKind::SessionRevoked)
            .user(caller.user.id)
            .session(session_id)
            .detail(json!({ "reason": RevokeReason::Revoked.as_str(), "by_session": caller.session_id().map(|s| s.to_string()) }));
        audit::record(&txn, now, meta, event).await?;
    }
    txn.commit().await?;
    if revoked {
        state
            .metrics
            .sessions_revoked
            .with_label_values(&[RevokeReason::Revoked.as_str()])
            .inc();
    }
    Ok(revoked)
}
