//! `register`: a new `USER` account, logged in at once; what it reads
//! ([`NewAccount`], [`parse_username`]); and the insert that
//! `warden admin create` shares.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{ActiveValue::Set, EntityTrait, SqlErr};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::{find_by_email, refuse_breached, sign_in};
use crate::{
    auth::{charset, email::Email, password::Password},
    domain::{AuditEventKind, Role, SignedInBy},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        email::verify,
        mail, trusted_devices, AuthOutcome,
    },
    state::AppState,
};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Trims an optional username (empty means none) and puts it in NFC.
///
/// A username is a display name: not unique, never used to log in. It may
/// hold any script and ordinary spaces, but no character that hides or
/// reorders text ([`charset::hidden_char`]: controls, zero-width and bidi
/// characters, variation selectors, private use) and no space but U+0020,
/// so that no name can pose as another one that looks the same.
pub fn parse_username(raw: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(name) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let name: String = name.nfc().collect();
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(AppError::bad_input(
            "username",
            "username must be at most 64 characters",
        ));
    }
    if let Some(c) = charset::hidden_char(&name)
        .or_else(|| name.chars().find(|c| c.is_whitespace() && *c != ' '))
    {
        return Err(AppError::bad_input(
            "username",
            format!(
                "username must not contain control, invisible or formatting characters (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(Some(name))
}

/// A validated `register` request.
#[derive(Debug)]
pub struct NewAccount {
    /// Normalized email.
    pub email: Email,
    /// Policy-checked password.
    pub password: Password,
    /// Optional display name.
    pub username: Option<String>,
}

/// Inserts a user inside `txn`, mapping the unique index to `EMAIL_TAKEN`.
pub(super) async fn insert_user<C: sea_orm::ConnectionTrait>(
    conn: &C,
    account: &NewAccount,
    hash: String,
    role: Role,
    now: DateTime<Utc>,
) -> Result<user::Model, AppError> {
    let model = user::Model {
        id: Uuid::now_v7(),
        email: account.email.as_str().to_owned(),
        username: account.username.clone(),
        password_hash: hash,
        role: role.as_str().to_owned(),
        created_at: now,
        last_login_at: None,
        email_verified_at: None,
        mfa_enabled_at: None,
        disabled_at: None,
        disabled_reason: None,
    };
    let active = user::ActiveModel {
        id: Set(model.id),
        email: Set(model.email.clone()),
        username: Set(model.username.clone()),
        password_hash: Set(model.password_hash.clone()),
        role: Set(model.role.clone()),
        created_at: Set(now),
        last_login_at: Set(None),
        email_verified_at: Set(None),
        mfa_enabled_at: Set(None),
        disabled_at: Set(None),
        disabled_reason: Set(None),
    };
    match user::Entity::insert(active)
        .exec_without_returning(conn)
        .await
    {
        Ok(_) => Ok(model),
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AppError::EmailTaken)
        }
        Err(err) => Err(err.into()),
    }
}

/// `register`: creates a `USER` account, queues its verification mail and
/// logs it in; with `WARDEN_REQUIRE_EMAIL_VERIFICATION=true` it answers
/// `EMAIL_NOT_VERIFIED` instead of logging in (the account and its mail
/// are committed). The caller has spent the `register` rate limit before
/// parsing the input.
#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    meta: &RequestMeta,
    account: NewAccount,
) -> Result<AuthOutcome, AppError> {
    // Cheap early answer; the unique index is what decides under concurrency.
    if find_by_email(state, &account.email).await?.is_some() {
        return Err(AppError::EmailTaken);
    }
    refuse_breached(state, meta, &account.password, "password", None).await?;
    let hash = state.hasher.hash(&account.password).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let user = insert_user(&txn, &account, hash, Role::User, now).await?;
    // The verification mail commits with the account, or neither does.
    verify::queue_verification(&txn, state, meta, &user, now).await?;
    if state.config.require_email_verification {
        // The account exists and its mail is on the way; no session until
        // the address is proven.
        audit::record(
            &txn,
            now,
            meta,
            Event::new(AuditEventKind::UserRegistered).user(user.id),
        )
        .await?;
        txn.commit().await?;
        mail::wake(state);
        state.metrics.registrations.inc();
        return Err(AppError::EmailNotVerified);
    }
    // Registering makes this device trusted for the account, like a login.
    let device = trusted_devices::issue(&txn, state, meta, user.id, None, now).await?;
    let mut outcome = sign_in(
        state,
        meta,
        txn,
        user,
        AuditEventKind::UserRegistered,
        SignedInBy::password(),
        now,
    )
    .await?;
    outcome.device_token = Some(device);
    mail::wake(state);
    state.metrics.registrations.inc();
    Ok(outcome)
}
