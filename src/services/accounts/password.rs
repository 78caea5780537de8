//! Passwords of existing accounts: `changePassword` (checked like a login:
//! the same rate limit and lockout, counted per session), and the
//! breached-password refusal that every flow setting a password applies.

use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{
        email::Email,
        limiter::Rule,
        password::{self, Password},
        pwned,
    },
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        email::tokens::{self, Purpose},
        limits::{self, KeyFacts},
        lockout::{self, Attempt, Checked, Client, Keys, Success},
        sessions::{self, AuthUser, RevokeReason},
        trusted_devices,
    },
    state::AppState,
};

/// Longest password read at login (or as `changePassword`'s current one),
/// in bytes; longer input is refused before any work, since no stored
/// password can be that long.
pub const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

/// The gate in front of a password check by a caller with a live session
/// of the account (`changePassword`): the per-IP-and-email rate limit, then
/// a lockout reservation.
async fn admit_password_check(
    state: &AppState,
    meta: &RequestMeta,
    email: &Email,
    session_id: Uuid,
) -> Result<Attempt, AppError> {
    limits::enforce(
        state,
        meta,
        Rule::LoginEmail,
        &limits::ip_email_key(state, meta, email),
    )
    .await?;
    // A live session of the account proves at least what a device token
    // does: a distributed attack on the email must not stop its owner from
    // changing the password. It is counted per session, not per address:
    // keyed by IP, a stolen session could check the password from one
    // address after another while the email is locked to everyone else.
    let keys = Keys::new(&state.pseudonyms.of(email), Client::Session(session_id));
    lockout::admit(state, keys).await
}

/// `changePassword`: re-verifies the current password (with the same rate
/// limits and lockout as `login`, since it is a password guess too), applies
/// the policy to the new one, and in one transaction stores it, ends every
/// other session of the account and records `PASSWORD_CHANGED`.
#[tracing::instrument(skip_all)]
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    current: &str,
    new: &str,
) -> Result<u64, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let email = Email::parse_existing(&caller.user.email)?;
    limits::enforce_rule(state, meta, Rule::LoginIp, KeyFacts::of(meta)).await?;
    let context = password::context_words(email.as_str(), caller.user.username.as_deref());
    let new = Password::parse_for(new, "newPassword", &context)?;
    if new.expose() == current {
        return Err(AppError::bad_input(
            "newPassword",
            "the new password must differ from the current one",
        ));
    }
    let success = check_current_password(state, meta, caller, current, "changePassword").await?;
    refuse_breached(state, meta, &new, "newPassword", Some(caller.user.id)).await?;
    let hash = state.hasher.hash(&new).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    // A stolen device token must not outlive the password it was issued with.
    trusted_devices::revoke_all(&txn, caller.user.id, now).await?;
    crate::services::mfa::tokens::retire(&txn, caller.user.id, now).await?;
    // Nor may a pending email change or reset asked with the old password.
    tokens::retire(
        &txn,
        caller.user.id,
        Some(&[Purpose::Change, Purpose::Reset]),
        now,
    )
    .await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(caller.user.id))
        .exec(&txn)
        .await?;
    let ended = sessions::revoke_user_sessions(
        &txn,
        caller.user.id,
        Some(caller.require_session()?),
        RevokeReason::PasswordChange,
        now,
    )
    .await?;
    let event = Event::new(AuditEventKind::PasswordChanged)
        .user(caller.user.id)
        .session(caller.require_session()?)
        .detail(json!({ "other_sessions_ended": ended }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[RevokeReason::PasswordChange.as_str()])
        .inc_by(ended);
    Ok(ended)
}

/// Re-verifies a signed-in caller's current password before a sensitive
/// change (`operation` names it in the audit row), under `login`'s
/// per-IP-and-email limit and a lockout counted per session (the caller
/// spends `login`'s per-IP limit first, before reading its input). A wrong password is audited as `ACCESS_DENIED` and answered
/// `INVALID_CREDENTIALS`; a right one returns the lockout [`Success`] to
/// settle in the transaction of the change.
pub async fn check_current_password(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    current: &str,
    operation: &'static str,
) -> Result<Success, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let email = Email::parse_existing(&caller.user.email)?;
    let attempt = admit_password_check(state, meta, &email, caller.require_session()?).await?;
    // A current password too long to be anyone's is wrong without a check
    // (and stays counted, like any wrong guess).
    let check = async {
        if current.len() > MAX_LOGIN_PASSWORD_BYTES {
            return Ok(None);
        }
        let right = state
            .hasher
            .verify(current, &caller.user.password_hash)
            .await?;
        Ok(right.then_some(()))
    };
    let Checked::Right(success, ()) = attempt.check(state, check).await? else {
        let event = Event::new(AuditEventKind::AccessDenied)
            .user(caller.user.id)
            .session(caller.require_session()?)
            .detail(json!({ "operation": operation, "reason": "wrong_password" }));
        audit::record(state.db.write(), state.clock.now(), meta, event).await?;
        return Err(AppError::InvalidCredentials);
    };
    Ok(success)
}

/// With `WARDEN_PWNED_PASSWORDS=on`, refuses a new password that the Pwned
/// Passwords range API lists as breached (`BAD_USER_INPUT` on `field`).
///
/// Fails open: when the service cannot answer (down, slow past 2 s, an odd
/// answer) the password is accepted, with a `PASSWORD_CHECK_UNAVAILABLE`
/// audit row and the `unavailable` metric, because a third party's outage
/// must not stop sign-ups and password changes; the other policy checks
/// (length, the common list, zxcvbn) have already run locally.
pub async fn refuse_breached(
    state: &AppState,
    meta: &RequestMeta,
    password: &Password,
    field: &'static str,
    user_id: Option<Uuid>,
) -> Result<(), AppError> {
    if !state.config.pwned_passwords {
        return Ok(());
    }
    let outcome = pwned::is_breached(&state.config.pwned_passwords_url, password).await;
    let label = match &outcome {
        Ok(true) => "breached",
        Ok(false) => "clean",
        Err(_) => "unavailable",
    };
    state
        .metrics
        .password_breach_checks
        .with_label_values(&[label])
        .inc();
    match outcome {
        Ok(false) => Ok(()),
        Ok(true) => Err(AppError::bad_input(
            field,
            "this password has appeared in a data breach (Have I Been Pwned); choose another",
        )),
        Err(why) => {
            tracing::warn!(reason = %why.reason(), "breached-password check unavailable; accepted unchecked");
            let mut event = Event::new(AuditEventKind::PasswordCheckUnavailable)
                .detail(json!({ "reason": why.reason(), "field": field }));
            if let Some(id) = user_id {
                event = event.user(id);
            }
            audit::record(state.db.write(), state.clock.now(), meta, event).await?;
            Ok(())
        }
    }
}
