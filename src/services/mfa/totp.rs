//! The authenticator-app factor: enrollment (pending until a first code
//! confirms it) and accepting a code exactly once.
//!
//! The secret is sealed under the `totp-secret` server key with the
//! account's id as associated data, so a sealed secret copied onto another
//! account's row does not open. A code is accepted by one conditional
//! UPDATE that raises `last_step` only from below the code's step: a code
//! already accepted (or an older one) is refused, and of two concurrent uses
//! of one code exactly one changes the row.

use chrono::{DateTime, Utc};
use entity::{totp_factor, user};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::totp::{self, TotpKey},
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
        mail::{self, MailKind},
        mfa::recovery,
    },
    state::AppState,
};

/// How long a started enrollment waits for its first code.
pub const PENDING_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// What `startTotpEnrollment` shows once: the secret three ways.
pub struct Enrollment {
    /// Base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://` URI.
    pub otpauth_uri: SecretString,
    /// The URI as an SVG QR code.
    pub qr_svg: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment([redacted])")
    }
}

fn aad(user_id: Uuid) -> Vec<u8> {
    let mut aad = b"warden totp secret v1\0".to_vec();
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// The account's factor, confirmed or pending.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
) -> Result<Option<totp_factor::Model>, AppError> {
    Ok(totp_factor::Entity::find_by_id(user_id).one(conn).await?)
}

/// `startTotpEnrollment`: a fresh secret for the caller, stored sealed and
/// pending (replacing a pending one). Refused (`BAD_USER_INPUT`) while a
/// confirmed factor is on: `disableTotp` first.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn start_enrollment(state: &AppState, caller: &AuthUser) -> Result<Enrollment, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let user_id = caller.user.id;
    let key = TotpKey::generate();
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    if find(&txn, user_id)
        .await?
        .is_some_and(|f| f.confirmed_at.is_some())
    {
        return Err(AppError::bad_input(
            "code",
            "an authenticator app is already on: disable it first",
        ));
    }
    totp_factor::Entity::delete_by_id(user_id)
        .exec(&txn)
        .await?;
    totp_factor::Entity::insert(totp_factor::ActiveModel {
        user_id: Set(user_id),
        secret_sealed: Set(state.totp_key.seal(&aad(user_id), key.bytes())),
        created_at: Set(now),
        confirmed_at: Set(None),
        last_step: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    let otpauth_uri = key.otpauth_uri(&state.config.product_name, &caller.user.email);
    let qr_svg = totp::qr_svg(&otpauth_uri)
        .ok_or_else(|| AppError::internal("the otpauth URI does not fit a QR code"))?;
    Ok(Enrollment {
        secret: key.base32(),
        otpauth_uri,
        qr_svg,
    })
}

/// Accepts `code` for `factor` at `now`: true when it is a code of a step
/// after the last accepted one, and this call raised `last_step` to it
/// (`pending` selects a pending factor instead of a confirmed one).
pub async fn accept<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    factor: &totp_factor::Model,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let secret = state
        .totp_key
        .open(&aad(factor.user_id), &factor.secret_sealed)
        .and_then(TotpKey::from_bytes)
        .ok_or_else(|| AppError::internal("a stored TOTP secret does not open"))?;
    let Some(step) = secret.matching_step(code.trim(), unix(now)) else {
        return Ok(false);
    };
    let step = i64::try_from(step).map_err(AppError::internal)?;
    let confirmed = match factor.confirmed_at {
        Some(_) => totp_factor::Column::ConfirmedAt.is_not_null(),
        None => totp_factor::Column::ConfirmedAt.is_null(),
    };
    let raised = totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::LastStep, Expr::value(step))
        .filter(totp_factor::Column::UserId.eq(factor.user_id))
        .filter(confirmed)
        .filter(
            Expr::col(totp_factor::Column::LastStep)
                .is_null()
                .or(Expr::col(totp_factor::Column::LastStep).lt(step)),
        )
        .exec(conn)
        .await?;
    Ok(raised.rows_affected == 1)
}

/// `confirmTotpEnrollment`: a code from the pending secret turns the factor
/// on and returns the account's first recovery codes, in one transaction
/// with `MFA_ENABLED`. A wrong or replayed code: `INVALID_CREDENTIALS`;
/// nothing pending: `BAD_USER_INPUT`.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn confirm_enrollment(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: &str,
) -> Result<Vec<SecretString>, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let user_id = caller.user.id;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let Some(factor) = find(&txn, user_id)
        .await?
        .filter(|f| f.confirmed_at.is_none())
    else {
        return Err(AppError::bad_input(
            "code",
            "no enrollment is pending: call startTotpEnrollment",
        ));
    };
    // An enrollment left pending is not an open door for whoever holds a
    // session later.
    if now - factor.created_at > PENDING_TTL {
        return Err(AppError::bad_input(
            "code",
            "this enrollment expired: call startTotpEnrollment again",
        ));
    }
    if !accept(&txn, state, &factor, code, now).await? {
        drop(txn);
        let event = Event::new(AuditEventKind::MfaFailed)
            .user(user_id)
            .session(caller.require_session()?)
            .detail(json!({ "operation": "confirmTotpEnrollment", "method": "TOTP" }));
        audit::record(state.db.write(), now, meta, event).await?;
        return Err(AppError::InvalidCredentials);
    }
    totp_factor::Entity::update_many()
        .col_expr(totp_factor::Column::ConfirmedAt, Expr::value(now))
        .filter(totp_factor::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    user::Entity::update_many()
        .col_expr(user::Column::MfaEnabledAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let codes = recovery::replace(&txn, state, user_id, now).await?;
    let event = Event::new(AuditEventKind::MfaEnabled)
        .user(user_id)
        .session(caller.require_session()?)
        .detail(json!({ "method": "TOTP" }));
    audit::record(&txn, now, meta, event).await?;
    mail::notify_owner(&txn, state, MailKind::MfaEnabled, &caller.user).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(codes)
}
