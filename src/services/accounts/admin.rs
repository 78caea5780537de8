//! The CLI's account commands: `warden admin create`, `promote`, `demote`,
//! and the last-active-admin guard they share with `setUserRole`,
//! `disableUser` and `deleteUser`.

use entity::user;
use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

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

/// Locks the rows of every active admin, in id order, and returns their ids.
/// See `services::admin`'s docs: the
/// last active admin.
pub async fn lock_active_admins<C: ConnectionTrait>(conn: &C) -> Result<Vec<Uuid>, AppError> {
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Role.eq(Role::Admin.as_str()))
        .filter(user::Column::DisabledAt.is_null())
        .order_by_asc(user::Column::Id)
        .lock_exclusive()
        .into_tuple::<Uuid>()
        .all(conn)
        .await?)
}

/// Refuses a change that would take `target` out of the active admins when
/// it is the last one; `admins` from [`lock_active_admins`] in the same
/// transaction.
pub fn keep_an_admin(admins: &[Uuid], target: Uuid, field: &'static str) -> Result<(), AppError> {
    if admins.contains(&target) && admins.len() <= 1 {
        return Err(AppError::bad_input(
            field,
            "the last active administrator cannot be demoted, disabled or deleted",
        ));
    }
    Ok(())
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
    if role != Role::Admin {
        let admins = lock_active_admins(&txn).await?;
        keep_an_admin(&admins, user.id, "email")?;
    }
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
