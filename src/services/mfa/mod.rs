//! Second factors: an authenticator app (TOTP) and its recovery codes.
//!
//! - [`totp`] holds enrollment (`startTotpEnrollment`, `confirmTotpEnrollment`)
//!   and accepting a code once (the last accepted step is stored).
//! - [`recovery`] holds ten one-time codes, keyed hashes at rest.
//! - [`complete`] holds the login's second step (`MFA_REQUIRED`, `completeLogin`).
//! - Here: what a signed-in caller does with a factor that is on
//!   (`disableTotp`, `regenerateRecoveryCodes`, `recoveryCodesLeft`), each
//!   proven by a current TOTP code (or, for `disableTotp`, the password:
//!   the way out for someone who lost the app and signed in with a recovery
//!   code).
//!
//! A code check by a signed-in caller is a guess like a password check: it
//! goes through the lockout, counted per session (as `changePassword`'s
//! check is), and a wrong code writes `MFA_FAILED`.

pub mod complete;
pub mod recovery;
pub mod tokens;
pub mod totp;

use entity::{totp_factor, user};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    auth::{email::Email, limiter::Rule},
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
        limits,
        lockout::{self, Checked, Client, Keys, Success},
        mail,
    },
    state::AppState,
};

/// Spends one of the account's code tries (`WARDEN_RATE_MFA_USER`), before
/// a TOTP or recovery code is compared.
pub async fn spend_code_try(
    state: &AppState,
    meta: &RequestMeta,
    user_id: uuid::Uuid,
) -> Result<(), AppError> {
    let facts = limits::KeyFacts::of(meta).with_user(user_id);
    limits::enforce_rule(state, meta, Rule::MfaUser, facts).await
}

/// Counts one check of a second factor in `warden_mfa_total`.
pub fn count(state: &AppState, method: &str, right: bool) {
    let result = if right { "success" } else { "failure" };
    state.metrics.mfa.with_label_values(&[method, result]).inc();
}

/// How a signed-in caller proves the factor for a sensitive change.
pub enum Proof<'a> {
    /// A current code from the authenticator app.
    Totp(&'a str),
    /// The account's password.
    Password(&'a str),
}

/// `confirmTotpEnrollment`, after spending one of the account's code tries
/// (a wrong guess turns nothing on, but the tries are bounded all the same).
pub async fn confirm_totp_enrollment(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: &str,
) -> Result<Vec<SecretString>, AppError> {
    spend_code_try(state, meta, caller.user.id).await?;
    totp::confirm_enrollment(state, meta, caller, code).await
}

/// `recoveryCodesLeft`: the caller's unused recovery codes (0 without a factor).
pub async fn recovery_codes_left(state: &AppState, caller: &AuthUser) -> Result<u64, AppError> {
    recovery::left(state.db.read(), caller.user.id).await
}

/// Checks a TOTP code of the caller's confirmed factor under the rate limit
/// and the lockout; a wrong code is audited `MFA_FAILED` (with
/// `operation`) and answered `INVALID_CREDENTIALS`. No confirmed factor:
/// `BAD_USER_INPUT`.
pub async fn check_code(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: &str,
    operation: &'static str,
) -> Result<Success, AppError> {
    // Only for a session: an API key never gets this far (FORBIDDEN).
    caller.require_session()?;
    let Some(factor) = totp::find(state.db.write(), caller.user.id)
        .await?
        .filter(|f| f.confirmed_at.is_some())
    else {
        return Err(AppError::bad_input(
            "code",
            "no authenticator app is on for this account",
        ));
    };
    let email = Email::parse_existing(&caller.user.email)?;
    limits::enforce(
        state,
        meta,
        Rule::LoginEmail,
        &limits::ip_email_key(state, meta, &email),
    )
    .await?;
    spend_code_try(state, meta, caller.user.id).await?;
    let keys = Keys::new(
        &state.pseudonyms.of(&email),
        Client::Session(caller.require_session()?),
    );
    let attempt = lockout::admit(state, keys).await?;
    let now = state.clock.now();
    let check = async {
        let accepted = totp::accept(state.db.write(), state, &factor, code, now).await?;
        Ok(accepted.then_some(()))
    };
    let result = attempt.check(state, check).await?;
    count(state, "TOTP", matches!(result, Checked::Right(..)));
    match result {
        Checked::Right(success, ()) => Ok(success),
        Checked::Wrong(_) => {
            let event = Event::new(AuditEventKind::MfaFailed)
                .user(caller.user.id)
                .session(caller.require_session()?)
                .detail(json!({ "operation": operation, "method": "TOTP" }));
            audit::record(state.db.write(), now, meta, event).await?;
            Err(AppError::InvalidCredentials)
        }
    }
}

/// The second factor a sensitive change (`changePassword`,
/// `requestEmailChange`) demands while one is on: `code`, a current TOTP
/// code, checked like [`check_code`] and spent before the change runs.
/// Without a factor on, `code` is ignored. With one on and no `code`:
/// `BAD_USER_INPUT` (field `code`), so the app knows to ask for it.
pub async fn demand_second_factor(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: Option<&str>,
    operation: &'static str,
) -> Result<(), AppError> {
    // Only for a session: an API key never gets this far (FORBIDDEN).
    caller.require_session()?;
    if caller.user.mfa_enabled_at.is_none() {
        return Ok(());
    }
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(AppError::bad_input(
            "code",
            "this account has an authenticator app: give a current code from it",
        ));
    };
    let success = check_code(state, meta, caller, code, operation).await?;
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// How long after its sign-in a session may add a second factor or a
/// passkey without giving the password again.
pub const RECENT_SIGN_IN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Adding a factor or a passkey is a way to keep an account: a stolen
/// session must not be able to do it. A session that signed in within
/// [`RECENT_SIGN_IN`] may; an older one must give the account's `password`
/// (checked like `changePassword`'s, under the lockout). Without it:
/// `BAD_USER_INPUT` (field `password`), so the app knows to ask.
pub async fn require_recent_sign_in(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    password: Option<&str>,
    operation: &'static str,
) -> Result<(), AppError> {
    // Only for a session: an API key never gets this far (FORBIDDEN).
    caller.require_session()?;
    let signed_in_at = entity::session::Entity::find_by_id(caller.require_session()?)
        .one(state.db.write())
        .await?
        .map(|s| s.created_at)
        .ok_or(AppError::Unauthenticated(
            crate::error::UnauthReason::Revoked,
        ))?;
    if state.clock.now() - signed_in_at <= RECENT_SIGN_IN {
        return Ok(());
    }
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(AppError::bad_input(
            "password",
            "this session signed in more than 10 minutes ago: give the account's password",
        ));
    };
    let success =
        crate::services::accounts::check_current_password(state, meta, caller, password, operation)
            .await?;
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    txn.commit().await?;
    Ok(())
}

async fn check_proof(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    proof: Proof<'_>,
    operation: &'static str,
) -> Result<Success, AppError> {
    match proof {
        Proof::Totp(code) => check_code(state, meta, caller, code, operation).await,
        Proof::Password(password) => {
            crate::services::accounts::check_current_password(
                state, meta, caller, password, operation,
            )
            .await
        }
    }
}

/// `disableTotp`: after a current code or the password, removes the factor
/// and its recovery codes and clears `mfaEnabled`, with `MFA_DISABLED`, in
/// one transaction. `false` when no factor was on.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn disable_totp(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    proof: Proof<'_>,
) -> Result<bool, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    if caller.user.mfa_enabled_at.is_none() {
        return Ok(false);
    }
    let method = match proof {
        Proof::Totp(_) => "TOTP",
        Proof::Password(_) => "PASSWORD",
    };
    let success = check_proof(state, meta, caller, proof, "disableTotp").await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    totp_factor::Entity::delete_by_id(caller.user.id)
        .exec(&txn)
        .await?;
    recovery::delete_all(&txn, caller.user.id).await?;
    user::Entity::update_many()
        .col_expr(
            user::Column::MfaEnabledAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(user::Column::Id.eq(caller.user.id))
        .exec(&txn)
        .await?;
    let event = Event::new(AuditEventKind::MfaDisabled)
        .user(caller.user.id)
        .session(caller.require_session()?)
        .detail(json!({ "method": "TOTP", "proof": method }));
    audit::record(&txn, now, meta, event).await?;
    mail::notify_owner(&txn, state, mail::MailKind::MfaDisabled, &caller.user).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(true)
}

/// `regenerateRecoveryCodes`: after a current code, replaces every
/// recovery code of the caller; the new ones are in this answer only.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn regenerate_recovery_codes(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: &str,
) -> Result<Vec<SecretString>, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let success = check_code(state, meta, caller, code, "regenerateRecoveryCodes").await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    let codes = recovery::replace(&txn, state, caller.user.id, now).await?;
    txn.commit().await?;
    Ok(codes)
}
