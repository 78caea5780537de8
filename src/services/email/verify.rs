//! Verified addresses: the verification mail (on `register` and
//! `sendVerificationEmail`) and `verifyEmail`.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

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
        audit::{self, Event},
        auth_user::AuthUser,
        limits::{self, KeyFacts},
        mail::{self, MailKind},
    },
    state::AppState,
};

/// Issues a verification token and code for `user`'s address and queues
/// their mail, on `conn` (the caller's transaction; call [`mail::wake`]
/// after its commit). Older verification mails of the account stop working.
pub async fn queue_verification<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    meta: &RequestMeta,
    user: &user::Model,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let address = Email::parse_existing(&user.email)?;
    let mail = LinkMail {
        user,
        purpose: Purpose::Verify,
        kind: MailKind::VerifyEmail,
        to: &address,
        new_email: None,
        ttl: state.config.verify_token_ttl,
    };
    tokens::issue_mailed(conn, state, mail, now).await?;
    audit::record(
        conn,
        now,
        meta,
        Event::new(AuditEventKind::EmailVerificationSent).user(user.id),
    )
    .await?;
    Ok(())
}

/// `sendVerificationEmail`: a new verification mail for the caller's
/// address (superseding older ones), under the mail rate limits. An
/// address already verified gets no mail; the answer is `true` either way.
pub async fn send_verification_email(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
) -> Result<bool, AppError> {
    let address = Email::parse_existing(&caller.user.email)?;
    let facts = KeyFacts::of(meta).with_email(&state.pseudonyms, &address);
    let (ip_key, email_key) = (facts.key(Rule::MailIp)?, facts.key(Rule::MailEmail)?);
    limits::enforce_in_order(
        state,
        meta,
        &[(Rule::MailIp, &ip_key), (Rule::MailEmail, &email_key)],
    )
    .await?;
    if caller.user.email_verified_at.is_some() {
        return Ok(true);
    }
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    queue_verification(&txn, state, meta, &caller.user, now).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(true)
}

/// `verifyEmail`: marks the account's address verified, with the link's
/// token or the address and the code. The token must have been mailed to
/// the address the account has now.
pub async fn verify_email(
    state: &AppState,
    meta: &RequestMeta,
    input: TokenInput,
) -> Result<(), AppError> {
    let row = tokens::find(state, meta, Purpose::Verify, &input).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    tokens::claim(&txn, row.id, now).await?;
    let user = user::Entity::find_by_id(row.user_id)
        .one(&txn)
        .await?
        .ok_or(AppError::InvalidToken)?;
    let address = Email::parse_existing(&user.email)?;
    if state.pseudonyms.of(&address) != row.email_key {
        // The account moved to another address since this mail was sent.
        return Err(AppError::InvalidToken);
    }
    if user.email_verified_at.is_none() {
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
            .filter(user::Column::Id.eq(user.id))
            .exec(&txn)
            .await?;
    }
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::EmailVerified).user(user.id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
