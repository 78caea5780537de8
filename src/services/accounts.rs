//! Accounts: registration, login, and the role changes the CLI makes.

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    SqlErr,
};
use serde_json::json;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::{
    auth::{
        charset,
        email::Email,
        limiter::Rule,
        password::{self, Password},
        pwned,
    },
    db::FetchUnique,
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        limits,
        lockout::{self, Admission, Attempt, Checked, Client, Failure, Keys},
        sessions::{self, AuthUser, RevokeReason},
        trusted_devices, AuthOutcome,
    },
    state::AppState,
};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest password read at login, in bytes; longer input is refused
/// before any work, since no stored password can be that long.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

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

/// The account with `email`. An account stored before domains were kept in
/// ASCII (`ada@bücher.example`) is found by an older spelling too
/// ([`Email::older_spellings`]), but only when no account has the new one:
/// two rows are never treated as one. One query for every spelling.
async fn find_by_email(state: &AppState, email: &Email) -> Result<Option<user::Model>, AppError> {
    let spellings: Vec<&str> = std::iter::once(email.as_str())
        .chain(email.older_spellings())
        .collect();
    if spellings.len() == 1 {
        return Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .unique(state.db.read())
            .await?);
    }
    let mut found = user::Entity::find()
        .filter(user::Column::Email.is_in(spellings.iter().copied()))
        .all(state.db.read())
        .await?;
    // The normalized spelling first, then the older ones in their order.
    found.sort_by_key(|row| spellings.iter().position(|s| *s == row.email));
    Ok(found.into_iter().next())
}

/// Inserts a user inside `txn`, mapping the unique index to `EMAIL_TAKEN`.
async fn insert_user<C: sea_orm::ConnectionTrait>(
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
    };
    let active = user::ActiveModel {
        id: Set(model.id),
        email: Set(model.email.clone()),
        username: Set(model.username.clone()),
        password_hash: Set(model.password_hash.clone()),
        role: Set(model.role.clone()),
        created_at: Set(now),
        last_login_at: Set(None),
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

/// `register`: creates a `USER` account and logs it in. The caller has
/// spent the `register` rate limit before parsing the input.
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
    // Registering makes this device trusted for the account, like a login.
    let device = trusted_devices::issue(&txn, state, meta, user.id, None, now).await?;
    let mut outcome =
        open_session(state, meta, txn, user, AuditEventKind::UserRegistered, now).await?;
    outcome.device_token = Some(device);
    state.metrics.registrations.inc();
    Ok(outcome)
}

/// Starts a session for `user` inside `txn`, stamps `last_login_at`,
/// records `kind`, commits, and mints the access token.
async fn open_session(
    state: &AppState,
    meta: &RequestMeta,
    txn: DatabaseTransaction,
    mut user: user::Model,
    kind: AuditEventKind,
    now: DateTime<Utc>,
) -> Result<AuthOutcome, AppError> {
    let started = sessions::start(&txn, state, meta, user.id, now).await?;
    user::Entity::update_many()
        .col_expr(user::Column::LastLoginAt, Expr::value(now))
        .filter(user::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    user.last_login_at = Some(now);
    let event = Event::new(kind).user(user.id).session(started.session_id);
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    let role = Role::from_stored(&user.role);
    let access = state.tokens.mint(user.id, started.session_id, role, now)?;
    Ok(AuthOutcome {
        user,
        session_id: started.session_id,
        access,
        refresh_token: started.refresh_token,
        refresh_expires_at: started.refresh_expires_at,
        device_token: None,
    })
}

/// `login` without a device token; see [`login_with_device`].
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    raw_email: &str,
    password: &str,
) -> Result<AuthOutcome, AppError> {
    login_with_device(state, meta, raw_email, password, None).await
}

/// `login`: checks the password and starts a session.
///
/// Unknown email and wrong password give the same error after the same
/// work: an unknown email is verified against a dummy hash of equal cost.
/// `device_token` (from `LoginInput.deviceToken` or the device cookie) is
/// looked up whatever the email; it makes the attempt a trusted device's
/// only when it belongs to the account (so for an unknown email, never).
#[tracing::instrument(skip_all)]
pub async fn login_with_device(
    state: &AppState,
    meta: &RequestMeta,
    raw_email: &str,
    password: &str,
    device_token: Option<&str>,
) -> Result<AuthOutcome, AppError> {
    let ip_key = limits::ip_key(meta);
    let email = Email::parse_existing(raw_email);
    let too_long = password.len() > MAX_LOGIN_PASSWORD_BYTES;
    // An overloaded hasher refuses before the lockout counts the attempt:
    // overload must never lock a real user out.
    let room = state.hasher.has_room();
    // The per-IP limit, then the per-IP-and-email limit, in one round trip
    // to a shared store. The email's bucket is spent only by an attempt that
    // goes on to a password check.
    let email_key = match &email {
        Ok(email) if !too_long && room => Some(limits::ip_email_key(state, meta, email)),
        _ => None,
    };
    let mut checks = vec![(Rule::LoginIp, ip_key.as_str())];
    if let Some(key) = &email_key {
        checks.push((Rule::LoginEmail, key.as_str()));
    }
    // The account and the device token are looked up while a shared store
    // decides (reads, safe to abandon if the login is refused), so Redis's
    // round trip overlaps them instead of adding to them. Only an attempt
    // that goes on to a password check needs them.
    let lookup = async {
        match (&email, &email_key) {
            (Ok(email), Some(_)) => {
                let (user, device) = futures::future::try_join(
                    find_by_email(state, email),
                    trusted_devices::find_live(state, device_token),
                )
                .await?;
                Ok((user, device))
            }
            _ => Ok((None, None)),
        }
    };
    let (user, device) = limits::enforce_in_order_while(state, meta, &checks, lookup).await?;
    let email = email?;
    if too_long {
        return Err(AppError::bad_input("password", "password is too long"));
    }
    if !room {
        return Err(AppError::ServiceUnavailable(
            "password hashing queue is full".into(),
        ));
    }
    // A token is trusted only for its own account: a stolen token of
    // another account, or any token with an unknown email, counts as none.
    let user_id = user.as_ref().map(|u| u.id);
    let trusted = device.filter(|d| user_id == Some(d.user_id));
    let client = match &trusted {
        Some(device) => Client::Device(device.id),
        None => Client::Ip(&ip_key),
    };
    let keys = Keys::new(&state.pseudonyms.of(&email), client);
    // Before any hashing, and whatever the lookup found, so a locked email
    // answers the same whether or not an account has it.
    let attempt = reserve_password_check(state, keys).await?;
    let check = async {
        match user {
            Some(user) => Ok(state
                .hasher
                .verify(password, &user.password_hash)
                .await?
                .then_some(user)),
            None => state.hasher.verify_dummy(password).await.map(|()| None),
        }
    };
    match attempt.check(state, check).await? {
        Checked::Right(success, user) => {
            let now = state.clock.now();
            let txn = state.db.begin().await?;
            success.settle(&txn).await?;
            let token =
                trusted_devices::issue(&txn, state, meta, user.id, trusted.as_ref(), now).await?;
            let mut outcome =
                open_session(state, meta, txn, user, AuditEventKind::LoginSucceeded, now).await?;
            outcome.device_token = Some(token);
            Ok(outcome)
        }
        Checked::Wrong(failure) => {
            record_failure(state, meta, &email, user_id, failure).await?;
            Err(AppError::InvalidCredentials)
        }
    }
}

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
    reserve_password_check(state, keys).await
}

/// The lockout reservation in front of a password check.
async fn reserve_password_check(state: &AppState, keys: Keys) -> Result<Attempt, AppError> {
    match lockout::reserve(state, keys).await? {
        Admission::Proceed(attempt) => Ok(attempt),
        Admission::Locked(lock) => Err(AppError::AccountLocked {
            retry_after: lock.retry_after(state.clock.now()),
        }),
    }
}

/// Audits a failed login and each lock it armed: the client's, the email's.
async fn record_failure(
    state: &AppState,
    meta: &RequestMeta,
    email: &Email,
    user_id: Option<Uuid>,
    failure: Failure,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let (failed, reason) = match user_id {
        Some(id) => (
            Event::new(AuditEventKind::LoginFailed).user(id),
            "wrong_password",
        ),
        None => (Event::new(AuditEventKind::LoginFailed), "unknown_email"),
    };
    let detail = match user_id {
        Some(_) => json!({ "reason": reason }),
        None => json!({ "reason": reason, "email": email.as_str() }),
    };
    audit::record(&txn, now, meta, failed.detail(detail)).await?;
    for scope in failure.armed() {
        let mut locked = Event::new(AuditEventKind::AccountLocked)
            .detail(json!({ "email": email.as_str(), "scope": scope.as_str() }));
        if let Some(id) = user_id {
            locked = locked.user(id);
        }
        audit::record(&txn, now, meta, locked).await?;
    }
    txn.commit().await?;
    for scope in failure.armed() {
        match scope {
            lockout::Scope::Client => state.metrics.lockouts.inc(),
            lockout::Scope::Email => state.metrics.lockout_email_locks.inc(),
        }
    }
    Ok(())
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
    let email = Email::parse_existing(&caller.user.email)?;
    limits::enforce(state, meta, Rule::LoginIp, &limits::ip_key(meta)).await?;
    let context = password::context_words(email.as_str(), caller.user.username.as_deref());
    let new = Password::parse_for(new, "newPassword", &context)?;
    if new.expose() == current {
        return Err(AppError::bad_input(
            "newPassword",
            "the new password must differ from the current one",
        ));
    }
    let attempt = admit_password_check(state, meta, &email, caller.session_id).await?;
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
            .session(caller.session_id)
            .detail(json!({ "operation": "changePassword", "reason": "wrong_password" }));
        audit::record(state.db.write(), state.clock.now(), meta, event).await?;
        return Err(AppError::InvalidCredentials);
    };
    refuse_breached(state, meta, &new, "newPassword", Some(caller.user.id)).await?;
    let hash = state.hasher.hash(&new).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    // A stolen device token must not outlive the password it was issued with.
    trusted_devices::revoke_all(&txn, caller.user.id, now).await?;
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(hash))
        .filter(user::Column::Id.eq(caller.user.id))
        .exec(&txn)
        .await?;
    let ended = sessions::revoke_user_sessions(
        &txn,
        caller.user.id,
        Some(caller.session_id),
        RevokeReason::PasswordChange,
        now,
    )
    .await?;
    let event = Event::new(AuditEventKind::PasswordChanged)
        .user(caller.user.id)
        .session(caller.session_id)
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
