//! `resetUserFactors` and `sendPasswordReset`: an administrator helping an
//! owner who lost a factor or the password.

use entity::{passkey, totp_factor, user};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::{locked_target, Admin};
use crate::{
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit, email,
        mail::{self, MailKind, MailValues},
        mfa,
    },
    state::AppState,
};

/// `resetUserFactors`: removes the account's authenticator app, recovery
/// codes and passkeys, clears `mfaEnabled` and ends pending `mfaToken`s, in
/// one transaction with `FACTORS_RESET` and a notice to the account's
/// address (the owner learns of it even when it was not asked for).
/// Sessions are kept: the owner usually asked from a signed-out device.
pub async fn reset_factors(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<bool, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let target = locked_target(&txn, id).await?;
    let totp = totp_factor::Entity::delete_by_id(id).exec(&txn).await?;
    let recovery_left = mfa::recovery::left(&txn, id).await?;
    mfa::recovery::delete_all(&txn, id).await?;
    let passkeys = passkey::Entity::delete_many()
        .filter(passkey::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::MfaEnabledAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(user::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    mfa::tokens::retire(&txn, id, now).await?;
    let event = admin.event(AuditEventKind::FactorsReset, id).detail(json!({
        "by": admin.by(),
        "totp": totp.rows_affected > 0,
        "recovery_codes": recovery_left,
        "passkeys": passkeys.rows_affected,
    }));
    audit::record(&txn, now, meta, event).await?;
    let notice = mail::compose(
        state,
        MailKind::FactorsReset,
        &target.email,
        &MailValues {
            username: target.username.clone(),
            ..MailValues::default()
        },
    )?;
    mail::enqueue(&txn, state, notice).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(true)
}

/// `sendPasswordReset`: mails the account a password-reset link and code,
/// the same mail `requestPasswordReset` sends (it supersedes an earlier
/// one). Audited `PASSWORD_RESET_REQUESTED` with the admin as `by`.
pub async fn send_password_reset(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<bool, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let target = locked_target(&txn, id).await?;
    email::queue_reset(&txn, state, &target, now).await?;
    let event = admin
        .event(AuditEventKind::PasswordResetRequested, id)
        .detail(json!({ "by": admin.by() }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(true)
}
