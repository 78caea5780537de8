//! The login's second step. `login` with a right password for an account
//! with a factor [`challenge`]s: a single-use `mfaToken` (only its SHA-256
//! stored, bound to the account, `WARDEN_MFA_TOKEN_TTL`) instead of a
//! session. [`complete_login`] redeems it with a TOTP or recovery code.
//!
//! A wrong factor is a guess like a wrong password: it goes through the
//! same lockout (the account's email, this client), is audited `MFA_FAILED`
//! and answered `INVALID_CREDENTIALS`; the token stays usable until it
//! expires, so a typo does not send the user back to the password. The
//! token is claimed by a conditional UPDATE in the sign-in's transaction:
//! of two completions with one token, one signs in and the other gets
//! `INVALID_TOKEN`, like a used, expired or unknown token.

use chrono::{DateTime, Utc};
use entity::{mfa_token, trusted_device, user};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{email::Email, limiter::Rule, opaque_token},
    clock::delta,
    db::FetchUnique,
    domain::{AuditEventKind, SignInMethod, SignedInBy},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts,
        audit::{self, Event},
        limits,
        lockout::{self, Checked, Client, Keys},
        mail::{self, MailKind},
        mfa::{recovery, totp},
        passkeys, trusted_devices, AuthOutcome,
    },
    state::AppState,
};

/// The second factor presented to `completeLogin`.
pub enum Factor {
    /// A code from the authenticator app.
    Totp(String),
    /// One of the account's recovery codes.
    RecoveryCode(String),
    /// A passkey assertion over a `startPasskeyLogin` ceremony.
    Passkey(serde_json::Value),
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Totp(_) => "Factor::Totp([redacted])",
            Self::RecoveryCode(_) => "Factor::RecoveryCode([redacted])",
            Self::Passkey(_) => "Factor::Passkey(..)",
        })
    }
}

impl Factor {
    /// The name in `MFA_REQUIRED`'s `methods` and in audit rows.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Totp(_) => "TOTP",
            Self::RecoveryCode(_) => "RECOVERY_CODE",
            Self::Passkey(_) => "PASSKEY",
        }
    }

    /// `CompleteLoginInput`'s factor fields: exactly one (`BAD_USER_INPUT`
    /// otherwise).
    pub fn parse(
        totp_code: Option<String>,
        recovery_code: Option<String>,
        passkey: Option<serde_json::Value>,
    ) -> Result<Self, AppError> {
        match (totp_code, recovery_code, passkey) {
            (Some(code), None, None) => Ok(Self::Totp(code)),
            (None, Some(code), None) => Ok(Self::RecoveryCode(code)),
            (None, None, Some(assertion)) => Ok(Self::Passkey(assertion)),
            _ => Err(AppError::bad_input(
                "totpCode",
                "give exactly one of totpCode, recoveryCode or passkey",
            )),
        }
    }

    /// How a login completed with this factor is recorded.
    fn signed_in_by(&self, synced_key: bool) -> SignedInBy {
        let method = match self {
            Self::Totp(_) => SignInMethod::PasswordTotp,
            Self::RecoveryCode(_) => SignInMethod::PasswordRecoveryCode,
            Self::Passkey(_) => SignInMethod::PasswordPasskey,
        };
        SignedInBy::new(method, synced_key)
    }
}

/// The factors `completeLogin` takes for this account, as `MFA_REQUIRED`'s
/// `methods` lists them: the authenticator app and its recovery codes
/// while it is on, passkeys when it has any.
pub async fn methods<C: ConnectionTrait>(
    conn: &C,
    user: &user::Model,
) -> Result<Vec<&'static str>, AppError> {
    let mut methods = Vec::with_capacity(3);
    if user.mfa_enabled_at.is_some() {
        methods.extend(["TOTP", "RECOVERY_CODE"]);
    }
    if passkeys::has_any(conn, user.id).await? {
        methods.push("PASSKEY");
    }
    Ok(methods)
}

/// Issues the `mfaToken` for `user_id` on `conn` (the transaction that
/// settles the password's lockout attempt).
pub async fn challenge<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user_id: Uuid,
    trusted_device: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<SecretString, AppError> {
    let token = opaque_token::generate();
    mfa_token::Entity::insert(mfa_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        token_hash: Set(opaque_token::hash(token.expose_secret())),
        created_at: Set(now),
        expires_at: Set(now + delta(state.config.mfa_token_ttl)),
        used_at: Set(None),
        trusted_device_id: Set(trusted_device),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(token)
}

/// The live token `raw` names, or `INVALID_TOKEN`.
async fn live_token(state: &AppState, raw: &str) -> Result<mfa_token::Model, AppError> {
    if !opaque_token::looks_valid(raw) {
        return Err(AppError::InvalidToken);
    }
    let now = state.clock.now();
    mfa_token::Entity::find()
        .filter(mfa_token::Column::TokenHash.eq(opaque_token::hash(raw)))
        .unique(state.db.write())
        .await?
        .filter(|row| row.used_at.is_none() && row.expires_at > now)
        .ok_or(AppError::InvalidToken)
}

/// `completeLogin`: the `mfaToken` of a right password and a second
/// factor of that account start a session (a new device token with it).
#[tracing::instrument(skip_all)]
pub async fn complete_login(
    state: &AppState,
    meta: &RequestMeta,
    raw_token: &str,
    factor: Factor,
) -> Result<AuthOutcome, AppError> {
    let ip_key = limits::ip_key(meta);
    limits::enforce(state, meta, Rule::LoginIp, &ip_key).await?;
    let token = live_token(state, raw_token).await?;
    let user = user::Entity::find_by_id(token.user_id)
        .unique(state.db.write())
        .await?
        .ok_or(AppError::InvalidToken)?;
    // The token proves the password was right, so saying why tells a
    // guesser nothing; no factor is spent on a disabled account.
    if user.disabled_at.is_some() {
        return Err(AppError::AccountDisabled);
    }
    let email = Email::parse_existing(&user.email)?;
    // The trusted device whose login this completes, while it still is:
    // its tries are counted on it, as the password's were, so an attack
    // that closed the email to untrusted clients does not stop it here.
    let now = state.clock.now();
    let device = match token.trusted_device_id {
        Some(id) => trusted_device::Entity::find_by_id(id)
            .one(state.db.write())
            .await?
            .filter(|d| d.user_id == user.id && d.revoked_at.is_none() && d.expires_at > now),
        None => None,
    };
    let client = match &device {
        Some(device) => Client::Device(device.id),
        None => Client::Ip(&ip_key),
    };
    if !matches!(factor, Factor::Passkey(_)) {
        super::spend_code_try(state, meta, user.id).await?;
    }
    let keys = Keys::new(&state.pseudonyms.of(&email), client);
    let attempt = lockout::admit(state, keys).await?;
    // Right: whether the key was a synced passkey (for `amr`).
    let check = async {
        let right = match &factor {
            Factor::Totp(code) => match totp::find(state.db.write(), user.id).await? {
                Some(f) if f.confirmed_at.is_some() => {
                    totp::accept(state.db.write(), state, &f, code, now)
                        .await?
                        .then_some(false)
                }
                _ => None,
            },
            Factor::RecoveryCode(code) => {
                recovery::redeem(state.db.write(), state, user.id, code, now)
                    .await?
                    .then_some(false)
            }
            Factor::Passkey(assertion) => {
                passkeys::sign_in::verify(state, assertion.clone(), None, Some(user.id), now)
                    .await?
                    .ok()
                    .map(|verified| verified.passkey.backup_eligible)
            }
        };
        Ok(right)
    };
    let result = attempt.check(state, check).await?;
    super::count(state, factor.method(), matches!(result, Checked::Right(..)));
    let (success, synced_key) = match result {
        Checked::Right(success, synced_key) => (success, synced_key),
        Checked::Wrong(failure) => {
            let txn = state.db.begin().await?;
            let event = Event::new(AuditEventKind::MfaFailed)
                .user(user.id)
                .detail(json!({ "operation": "completeLogin", "method": factor.method() }));
            audit::record(&txn, now, meta, event).await?;
            for scope in failure.armed() {
                let locked = Event::new(AuditEventKind::AccountLocked)
                    .user(user.id)
                    .detail(json!({ "email": email.as_str(), "scope": scope.as_str() }));
                audit::record(&txn, now, meta, locked).await?;
            }
            txn.commit().await?;
            return Err(AppError::InvalidCredentials);
        }
    };
    let txn = state.db.begin().await?;
    let claimed = mfa_token::Entity::update_many()
        .col_expr(mfa_token::Column::UsedAt, Expr::value(now))
        .filter(mfa_token::Column::Id.eq(token.id))
        .filter(mfa_token::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Err(AppError::InvalidToken);
    }
    success.settle(&txn).await?;
    if let Factor::RecoveryCode(_) = factor {
        let left = recovery::left(&txn, user.id).await?;
        let event = Event::new(AuditEventKind::RecoveryCodeUsed)
            .user(user.id)
            .detail(json!({ "left": left }));
        audit::record(&txn, now, meta, event).await?;
        // The owner learns of it even when it was not them: a recovery
        // code in a thief's hands is a lost second factor.
        mail::notify_owner(&txn, state, MailKind::RecoveryCodeUsed, &user).await?;
    }
    let recovery_used = matches!(factor, Factor::RecoveryCode(_));
    let device = trusted_devices::issue(&txn, state, meta, user.id, device.as_ref(), now).await?;
    let how = factor.signed_in_by(synced_key);
    let mut outcome = accounts::sign_in(
        state,
        meta,
        txn,
        user,
        AuditEventKind::LoginSucceeded,
        how,
        now,
    )
    .await?;
    outcome.device_token = Some(device);
    if recovery_used {
        mail::wake(state);
    }
    Ok(outcome)
}
