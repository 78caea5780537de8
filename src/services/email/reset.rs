//! Password reset: `requestPasswordReset` and `resetPassword`.
//!
//! The request answers the same for every address after the same work: it
//! spends the rate limits and writes one outbox *job* (the address sealed
//! inside), never looking the address up. The mail sender runs the job
//! ([`run_job`]): for an address with an account it issues the token and
//! code and queues the mail, in the transaction that completes the job;
//! for any other address it only completes the job.

use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    tokens::{self, LinkMail},
    Purpose, TokenInput,
};
use crate::{
    auth::{
        email::Email,
        limiter::Rule,
        password::{self, Password},
    },
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts,
        audit::{self, Event},
        limits::{self, KeyFacts},
        lockout,
        mail::{self, Job, JobFuture, MailKind, MailValues, RESET_REQUEST_JOB},
        sessions::{self, RevokeReason},
        trusted_devices,
    },
    state::AppState,
};

/// What a reset request's job carries: the address, and who asked (for
/// the audit row the job writes when the address has an account).
#[derive(Serialize, Deserialize)]
struct ResetRequest {
    email: String,
    ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
    request_id: String,
}

/// `requestPasswordReset`: spends the per-IP then the per-address mail
/// limits and queues a job; the same work and answer for every address.
pub async fn request_password_reset(
    state: &AppState,
    meta: &RequestMeta,
    raw_email: &str,
) -> Result<(), AppError> {
    let email = Email::parse_existing(raw_email)?;
    let facts = KeyFacts::of(meta).with_email(&state.pseudonyms, &email);
    let (ip_key, email_key) = (facts.key(Rule::MailIp)?, facts.key(Rule::MailEmail)?);
    limits::enforce_in_order(
        state,
        meta,
        &[(Rule::MailIp, &ip_key), (Rule::MailEmail, &email_key)],
    )
    .await?;
    let request = ResetRequest {
        email: email.as_str().to_owned(),
        ip: meta.ip,
        user_agent: meta.user_agent.clone(),
        request_id: meta.request_id.clone(),
    };
    let payload = serde_json::to_vec(&request).map_err(AppError::internal)?;
    mail::enqueue_job(state.db.write(), state, RESET_REQUEST_JOB, &payload).await?;
    mail::wake(state);
    Ok(())
}

/// The sender's handler of the jobs this module queues.
pub fn run_job(state: AppState, job: Job) -> JobFuture {
    Box::pin(async move {
        match job.kind.as_str() {
            RESET_REQUEST_JOB => reset_request(&state, job).await,
            other => Err(AppError::internal(format!("unknown outbox job {other}"))),
        }
    })
}

/// Issues a reset token and code for `user` and queues its mail, in the
/// caller's transaction (wake the sender after the commit): the mail of
/// `requestPasswordReset`, sent by an administrator's `sendPasswordReset`.
pub async fn queue_reset<C: sea_orm::ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user: &user::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), AppError> {
    let address = Email::parse_existing(&user.email)?;
    let mail = LinkMail {
        user,
        purpose: Purpose::Reset,
        kind: MailKind::PasswordReset,
        to: &address,
        new_email: None,
        ttl: state.config.reset_token_ttl,
    };
    tokens::issue_mailed(conn, state, mail, now).await
}

/// A reset request, at the sender: for an address with an account, a
/// token, its mail and the audit row, committed with the job's completion.
async fn reset_request(state: &AppState, job: Job) -> Result<(), AppError> {
    let request: ResetRequest = serde_json::from_slice(&job.payload).map_err(AppError::internal)?;
    let email = Email::parse_existing(&request.email)?;
    let meta = RequestMeta::new(
        request.ip,
        request.user_agent.as_deref(),
        request.request_id.clone(),
    )
    .with_ipv6_prefix(state.config.ipv6_prefix);
    let account = accounts::find_by_email(state, &email).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    if !mail::complete_job(&txn, &job, now).await? {
        // Another sender holds it now; dropping the transaction rolls back.
        return Ok(());
    }
    if let Some(user) = &account {
        queue_reset(&txn, state, user, now).await?;
        audit::record(
            &txn,
            now,
            &meta,
            Event::new(AuditEventKind::PasswordResetRequested).user(user.id),
        )
        .await?;
    }
    txn.commit().await?;
    if account.is_some() {
        mail::wake(state);
    }
    Ok(())
}

/// `resetPassword`: with the link's token or the address and code, sets a
/// new password (the policy applies), ends every session and trusted
/// device of the account, clears its lockout, marks the address verified
/// and queues a "your password was changed" notice. Does not log in.
pub async fn reset_password(
    state: &AppState,
    meta: &RequestMeta,
    input: TokenInput,
    new_password: &str,
) -> Result<(), AppError> {
    // The policy first (no database): a weak password spends no try. With
    // a code, the address typed is context too.
    let typed = match &input {
        TokenInput::Code { email, .. } => Some(email.trim().to_lowercase()),
        TokenInput::Link(_) => None,
    };
    let typed_context = typed
        .as_deref()
        .map(|e| password::context_words(e, None))
        .unwrap_or_default();
    Password::parse_for(new_password, "newPassword", &typed_context)?;
    let row = tokens::find(state, meta, Purpose::Reset, &input).await?;
    let user = user::Entity::find_by_id(row.user_id)
        .one(state.db.write())
        .await?
        .ok_or(AppError::InvalidToken)?;
    let address = Email::parse_existing(&user.email)?;
    if state.pseudonyms.of(&address) != row.email_key {
        // The account moved to another address since this mail was sent.
        return Err(AppError::InvalidToken);
    }
    let context = password::context_words(address.as_str(), user.username.as_deref());
    let new = Password::parse_for(new_password, "newPassword", &context)?;
    accounts::refuse_breached(state, meta, &new, "newPassword", Some(user.id)).await?;
    let hash = state.hasher.hash(&new).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    tokens::claim(&txn, row.id, now).await?;
    // Every other link or code mailed before, a pending email change above
    // all, dies with the old password.
    tokens::retire(&txn, user.id, None, now).await?;
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(user.id));
    if user.email_verified_at.is_none() {
        // The mail reached the owner: the address is theirs.
        update = update.col_expr(user::Column::EmailVerifiedAt, Expr::value(now));
    }
    update.exec(&txn).await?;
    let ended =
        sessions::revoke_user_sessions(&txn, user.id, None, RevokeReason::PasswordReset, now)
            .await?;
    trusted_devices::revoke_all(&txn, user.id, now).await?;
    crate::services::mfa::tokens::retire(&txn, user.id, now).await?;
    lockout::unlock(&txn, &state.pseudonyms.of(&address)).await?;
    let notice = mail::compose(
        state,
        MailKind::PasswordChanged,
        &user.email,
        &MailValues {
            username: user.username.clone(),
            ..MailValues::default()
        },
    )?;
    mail::enqueue(&txn, state, notice).await?;
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::PasswordReset)
            .user(user.id)
            .detail(json!({ "sessions_ended": ended })),
    )
    .await?;
    txn.commit().await?;
    mail::wake(state);
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[RevokeReason::PasswordReset.as_str()])
        .inc_by(ended);
    Ok(())
}
