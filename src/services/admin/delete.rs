//! `deleteUser`: an administrator deletes an account.

use serde_json::json;
use uuid::Uuid;

use super::{locked_target, Admin};
use crate::{
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts::{delete_account_data, keep_an_admin, lock_active_admins},
        audit,
    },
    state::AppState,
};

/// `deleteUser`: deletes the account and everything it owns (see
/// [`delete_account_data`]), then records `USER_DELETED` under its id, in
/// one transaction. The last active admin cannot be deleted.
pub async fn delete_user(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<bool, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let admins = lock_active_admins(&txn).await?;
    locked_target(&txn, id).await?;
    keep_an_admin(&admins, id, "id")?;
    delete_account_data(&txn, state, id).await?;
    let event = admin
        .event(AuditEventKind::UserDeleted, id)
        .detail(json!({ "by": admin.by() }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(true)
}
