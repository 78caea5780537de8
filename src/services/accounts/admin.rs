//! The CLI's account commands: `warden admin create`, `promote`, `demote`.

use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::{find_by_email, refuse_breached, register::insert_user, NewAccount};
use crate::{
    auth::email::Email,
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
    state::AppState,
};

/// `warden admin create`: a new account with the `ADMIN` role.
pub async fn create_admin(
    state: &AppState,
    meta: &RequestMeta,
    account: NewAccount,
) -> Result<user::Model, AppError> {
    refuse_breached(state, meta, &account.password, "password", None).await?;
    let hash = state.hasher.hash(&account.password).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let user = insert_user(&txn, &account, hash, Role::Admin, now).await?;
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::RoleChanged)
            .user(user.id)
            .detail(json!({ "from": null, "to": Role::Admin.as_str(), "by": "cli" })),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// `warden admin promote|demote`: sets the role of an existing account.
/// Returns false when the account already had that role.
pub async fn set_role(
    state: &AppState,
    meta: &RequestMeta,
    email: &Email,
    role: Role,
) -> Result<bool, AppError> {
    let user = find_by_email(state, email)
        .await?
        .ok_or_else(|| AppError::bad_input("email", "no account has this email"))?;
    let from = Role::from_stored(&user.role);
    if from == role {
        return Ok(false);
    }
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    user::Entity::update_many()
        .col_expr(user::Column::Role, Expr::value(role.as_str()))
        .filter(user::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::RoleChanged)
            .user(user.id)
            .detail(json!({ "from": from.as_str(), "to": role.as_str(), "by": "cli" })),
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}
