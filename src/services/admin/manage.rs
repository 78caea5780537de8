//! Managing an account: `setUserRole`, `disableUser`, `enableUser`,
//! `revokeUserSessions`, `unlockAccount`. One transaction each, with its
//! audit row inside.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::{locked_target, Admin};
use crate::{
    auth::email::Email,
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts::{keep_an_admin, lock_active_admins},
        audit, lockout, mfa,
        sessions::{self, RevokeReason},
    },
    state::AppState,
};

/// The longest `disableUser` reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `setUserRole`: audited `ROLE_CHANGED`; the account unchanged when it
/// already has the role. The last active admin keeps the role.
pub async fn set_role(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
    role: Role,
) -> Result<user::Model, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let admins = lock_active_admins(&txn).await?;
    let mut target = locked_target(&txn, id).await?;
    let from = Role::from_stored(&target.role);
    if from == role {
        return Ok(target);
    }
    if role != Role::Admin {
        keep_an_admin(&admins, id, "id")?;
    }
    user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(role.as_str()))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let event = admin.event(AuditEventKind::RoleChanged, id).detail(json!({
        "from": from.as_str(), "to": role.as_str(), "by": admin.by()
    }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    target.role = role.as_str().to_owned();
    Ok(target)
}

/// `disableUser`: marks the account disabled and, in the same transaction,
/// ends every session (its access tokens answer `REVOKED` on their next
/// request) and its pending `mfaToken`s. Audited `USER_DISABLED` (the
/// reason is not copied into the audit row: it is free text). An account
/// already disabled keeps its first time and gets the new reason.
pub async fn disable(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
    reason: Option<String>,
) -> Result<user::Model, AppError> {
    let reason = parse_reason(reason)?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let admins = lock_active_admins(&txn).await?;
    let mut target = locked_target(&txn, id).await?;
    keep_an_admin(&admins, id, "id")?;
    let disabled_at = target.disabled_at.unwrap_or(now);
    user::Entity::update_many()
        .col_expr(user::Column::DisabledAt, Expr::value(disabled_at))
        .col_expr(user::Column::DisabledReason, Expr::value(reason.clone()))
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let ended = end_sessions(&txn, id, RevokeReason::Disabled, now).await?;
    mfa::tokens::retire(&txn, id, now).await?;
    let event = admin.event(AuditEventKind::UserDisabled, id).detail(json!({
        "by": admin.by(), "sessions_revoked": ended, "with_reason": reason.is_some()
    }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    count_revoked(state, RevokeReason::Disabled, ended);
    target.disabled_at = Some(disabled_at);
    target.disabled_reason = reason;
    Ok(target)
}

/// `enableUser`: the account may sign in again. Audited `USER_ENABLED`
/// when it was disabled; unchanged otherwise.
pub async fn enable(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<user::Model, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let mut target = locked_target(&txn, id).await?;
    if target.disabled_at.is_none() {
        return Ok(target);
    }
    user::Entity::update_many()
        .col_expr(
            user::Column::DisabledAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            user::Column::DisabledReason,
            Expr::value(Option::<String>::None),
        )
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    let event = admin
        .event(AuditEventKind::UserEnabled, id)
        .detail(json!({ "by": admin.by() }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    target.disabled_at = None;
    target.disabled_reason = None;
    Ok(target)
}

/// `revokeUserSessions`: ends every live session of the account (audited
/// `ALL_SESSIONS_REVOKED`); returns how many.
pub async fn revoke_sessions(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<u64, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    locked_target(&txn, id).await?;
    let ended = end_sessions(&txn, id, RevokeReason::AdminRevoked, now).await?;
    let event = admin
        .event(AuditEventKind::AllSessionsRevoked, id)
        .detail(json!({ "by": admin.by(), "count": ended }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    count_revoked(state, RevokeReason::AdminRevoked, ended);
    Ok(ended)
}

/// `unlockAccount`: clears every lockout counter of the address (the
/// email's own and each client's), whether or not an account has it.
/// Audited `ACCOUNT_UNLOCKED`; returns whether there was anything to clear.
pub async fn unlock(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    raw_email: &str,
) -> Result<bool, AppError> {
    let email = Email::parse_existing(raw_email)?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let cleared = lockout::unlock(&txn, &state.pseudonyms.of(&email)).await?;
    let owner = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?;
    let mut event = audit::Event::new(AuditEventKind::AccountUnlocked)
        .session_if(admin.session_id)
        .detail(json!({ "by": admin.by(), "counters_cleared": cleared }));
    if let Some(owner) = owner {
        event = event.user(owner.id);
    }
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(cleared > 0)
}

/// Trims a `disableUser` reason; blank is none.
fn parse_reason(reason: Option<String>) -> Result<Option<String>, AppError> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_input(
            "reason",
            format!("reason is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad_input(
            "reason",
            "reason has control characters",
        ));
    }
    Ok((!reason.is_empty()).then(|| reason.to_owned()))
}

async fn end_sessions(
    txn: &sea_orm::DatabaseTransaction,
    id: Uuid,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    sessions::revoke_user_sessions(txn, id, None, reason, now).await
}

fn count_revoked(state: &AppState, reason: RevokeReason, count: u64) {
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[reason.as_str()])
        .inc_by(count);
}
