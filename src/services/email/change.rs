//! Email change: `requestEmailChange` (the new address gets a token and a
//! code, the old one a notice) and `confirmEmailChange`.

use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter, SqlErr};
use serde_json::json;
use uuid::Uuid;

use super::{
    tokens::{self, LinkMail},
    Purpose, TokenInput,
};
use crate::{
    auth::{email::Email, limiter::Rule},
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts,
        audit::{self, Event},
        auth_user::AuthUser,
        limits::{self, KeyFacts},
        mail::{self, MailKind, MailValues},
        sessions::{self, RevokeReason},
    },
    state::AppState,
};

/// `requestEmailChange`: after the current password (checked like
/// `changePassword`'s), mails the new address a token and code and the
/// old address a notice. `EMAIL_TAKEN` when the new address has an account.
pub async fn request_email_change(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    raw_new: &str,
    current_password: &str,
) -> Result<(), AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    limits::enforce_rule(state, meta, Rule::MailIp, KeyFacts::of(meta)).await?;
    let new = Email::parse(raw_new).map_err(|err| match err {
        AppError::BadUserInput { message, .. } => AppError::bad_input("newEmail", message),
        other => other,
    })?;
    if new.as_str() == caller.user.email {
        return Err(AppError::bad_input(
            "newEmail",
            "this is already the account's email",
        ));
    }
    limits::enforce_rule(state, meta, Rule::LoginIp, KeyFacts::of(meta)).await?;
    let success = accounts::check_current_password(
        state,
        meta,
        caller,
        current_password,
        "requestEmailChange",
    )
    .await?;
    if accounts::find_by_email(state, &new).await?.is_some() {
        // The password was right: the lockout must count it so.
        let txn = state.db.begin().await?;
        success.settle(&txn).await?;
        txn.commit().await?;
        return Err(AppError::EmailTaken);
    }
    // Spent only when a mail will go: a stranger naming someone's address
    // (answered EMAIL_TAKEN above) must not drain that address's budget.
    limits::enforce_rule(
        state,
        meta,
        Rule::MailEmail,
        KeyFacts::of(meta).with_email(&state.pseudonyms, &new),
    )
    .await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    let link = LinkMail {
        user: &caller.user,
        purpose: Purpose::Change,
        kind: MailKind::EmailChange,
        to: &new,
        new_email: Some(new.as_str()),
        ttl: state.config.verify_token_ttl,
    };
    tokens::issue_mailed(&txn, state, link, now).await?;
    let notice = MailValues {
        username: caller.user.username.clone(),
        new_email: Some(new.as_str().to_owned()),
        ..MailValues::default()
    };
    let to_old = mail::compose(
        state,
        MailKind::EmailChangeNotice,
        &caller.user.email,
        &notice,
    )?;
    mail::enqueue(&txn, state, to_old).await?;
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::EmailChangeRequested)
            .user(caller.user.id)
            .session(caller.require_session()?),
    )
    .await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(())
}

/// `confirmEmailChange`: moves the account to the address the token was
/// mailed to, marks it verified, ends every other live email token of the
/// account (they were mailed to the old address) and every session but
/// `caller_session` (the caller's, when it has one). `EMAIL_TAKEN` when the
/// address was registered meanwhile; nothing changes then.
pub async fn confirm_email_change(
    state: &AppState,
    meta: &RequestMeta,
    input: TokenInput,
    caller_session: Option<Uuid>,
) -> Result<(), AppError> {
    let row = tokens::find(state, meta, Purpose::Change, &input).await?;
    let new_email = row.new_email.clone().ok_or(AppError::InvalidToken)?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    tokens::claim(&txn, row.id, now).await?;
    let moved = user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(new_email))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .filter(user::Column::Id.eq(row.user_id))
        .exec(&txn)
        .await;
    match moved {
        Ok(done) if done.rows_affected == 1 => {}
        Ok(_) => return Err(AppError::InvalidToken),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Err(AppError::EmailTaken)
        }
        Err(err) => return Err(err.into()),
    }
    // Links and codes mailed to the old address die with it.
    tokens::retire(&txn, row.user_id, None, now).await?;
    let ended = sessions::revoke_user_sessions(
        &txn,
        row.user_id,
        caller_session,
        RevokeReason::EmailChange,
        now,
    )
    .await?;
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::EmailChanged)
            .user(row.user_id)
            .detail(json!({ "other_sessions_ended": ended })),
    )
    .await?;
    txn.commit().await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[RevokeReason::EmailChange.as_str()])
        .inc_by(ended);
    Ok(())
}
