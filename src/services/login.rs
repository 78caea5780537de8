//! `login`: an email and a password (and perhaps a device token), checked
//! under the rate limits and the lockout, answered as a [`LoginOutcome`]:
//! signed in, or refused and why. The resolver only translates it.
//!
//! # What is a refusal and what is an error
//! A [`LoginRefusal`] is a verdict on the credentials: wrong (or unknown),
//! or locked out. Everything answered *without* a verdict stays an
//! [`AppError`], as for every other operation: malformed input
//! (`BAD_USER_INPUT`, parsed at the edge), a rate limit (`RATE_LIMITED`,
//! which [`limits`] decides, audits and counts alike for every rule), a
//! hasher that cannot take the check (`SERVICE_UNAVAILABLE`: nothing was
//! judged, so the lockout gives the attempt back), and storage failures.
//!
//! # Where a second factor and trusted devices go
//! The password check ends in one `match` ([`login_with_device`]): a right
//! password reaches `authenticated`, which decides what the client gets.
//! MFA adds one variant, `LoginOutcome::SecondFactorRequired { .. }`, and
//! one branch at the top of `authenticated`: when the account has a
//! second factor and the attempt does not come from a device trusted for it
//! (`trusted`), answer the challenge instead of signing in (the
//! [`lockout::Success`] in hand is settled there, in the challenge's
//! transaction). The resolver's `match` on the outcome then fails to
//! compile until it maps the new variant to a payload.
//!
//! # Security properties kept here
//! The same work for unknown and known emails (a dummy hash); the per-IP
//! limit before the per-IP-and-email one; the account and device lookups
//! overlapping the shared store's round trip; the lockout reservation
//! before any hashing; a device token trusted only for its own account;
//! audit rows inside the transaction of the change they record.

use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{email::Email, limiter::Rule},
    domain::{AuditEventKind, SignedInBy},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts::{self, MAX_LOGIN_PASSWORD_BYTES},
        audit::{self, Event},
        email::verify,
        limits,
        lockout::{self, Admission, Checked, Client, Failure, Keys, Success},
        mail, mfa, trusted_devices, AuthOutcome,
    },
    state::AppState,
};

/// How a login ended, short of an error (see the module docs for which is
/// which).
#[must_use = "a login outcome must reach the client"]
pub enum LoginOutcome {
    /// Signed in: a new session, its tokens, and the device token (boxed:
    /// the refusals are small).
    Authenticated(Box<AuthOutcome>),
    /// Refused: what the client learns, and nothing more.
    Refused(LoginRefusal),
    /// The password was right and the account has a second factor: the
    /// single-use `mfaToken` for `completeLogin` (no session yet) and the
    /// factors it takes.
    SecondFactorRequired {
        /// The token.
        mfa_token: SecretString,
        /// `MFA_REQUIRED`'s `methods`.
        methods: Vec<&'static str>,
    },
}

/// Why a login was refused. Each maps to one [`AppError`], the client's
/// answer ([`From`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginRefusal {
    /// An unknown email or a wrong password, indistinguishably, after the
    /// same work: `INVALID_CREDENTIALS`.
    InvalidCredentials,
    /// A live lock (this client's for the email, or the email's for every
    /// untrusted client) refused the attempt before any check:
    /// `ACCOUNT_LOCKED`.
    Locked {
        /// Seconds until the lock ends, at least 1.
        retry_after: u64,
    },
    /// The password was right, but `WARDEN_REQUIRE_EMAIL_VERIFICATION` is
    /// on and the address is not verified yet: `EMAIL_NOT_VERIFIED`. Only
    /// a right password reaches it, so it tells a guesser nothing.
    EmailNotVerified,
    /// The password was right, but an administrator disabled the account:
    /// `ACCOUNT_DISABLED`. Like `EmailNotVerified`, only a right password
    /// reaches it; a wrong one stays `InvalidCredentials`.
    AccountDisabled,
}

impl From<LoginRefusal> for AppError {
    fn from(refusal: LoginRefusal) -> Self {
        match refusal {
            LoginRefusal::InvalidCredentials => AppError::InvalidCredentials,
            LoginRefusal::Locked { retry_after } => AppError::AccountLocked { retry_after },
            LoginRefusal::EmailNotVerified => AppError::EmailNotVerified,
            LoginRefusal::AccountDisabled => AppError::AccountDisabled,
        }
    }
}

/// `login` without a device token; see [`login_with_device`].
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    raw_email: &str,
    password: &str,
) -> Result<LoginOutcome, AppError> {
    login_with_device(state, meta, raw_email, password, None).await
}

/// `login`: checks the password and, when it is right, starts a session.
///
/// Unknown email and wrong password give the same refusal after the same
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
) -> Result<LoginOutcome, AppError> {
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
                futures::future::try_join(
                    accounts::find_by_email(state, email),
                    trusted_devices::find_live(state, device_token),
                )
                .await
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
        return Err(state.hasher.refuse_overload().await);
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
    let attempt = match lockout::reserve(state, keys).await? {
        Admission::Proceed(attempt) => attempt,
        Admission::Locked(lock) => {
            let retry_after = lock.retry_after(state.clock.now());
            return Ok(LoginOutcome::Refused(LoginRefusal::Locked { retry_after }));
        }
    };
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
            authenticated(state, meta, success, user, trusted.as_ref()).await
        }
        Checked::Wrong(failure) => {
            record_failure(state, meta, &email, user_id, failure).await?;
            Ok(LoginOutcome::Refused(LoginRefusal::InvalidCredentials))
        }
    }
}

/// A right password for `user`: in one transaction, settles the lockout,
/// renews (or issues) the device token and signs the account in.
///
/// A second factor goes first here (see the module docs): the account's
/// factors and `trusted` decide whether to sign in or to answer a challenge.
async fn authenticated(
    state: &AppState,
    meta: &RequestMeta,
    success: Success,
    user: entity::user::Model,
    trusted: Option<&entity::trusted_device::Model>,
) -> Result<LoginOutcome, AppError> {
    if user.disabled_at.is_some() {
        return disabled(state, meta, success, &user).await;
    }
    if state.config.require_email_verification && user.email_verified_at.is_none() {
        return unverified(state, meta, success, &user).await;
    }
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    // A second factor is asked for whatever the device: a trusted device
    // only gets past a lock, never past the factor.
    if user.mfa_enabled_at.is_some() {
        let mfa_token =
            mfa::complete::challenge(&txn, state, user.id, trusted.map(|d| d.id), now).await?;
        let methods = mfa::complete::methods(&txn, &user).await?;
        txn.commit().await?;
        return Ok(LoginOutcome::SecondFactorRequired { mfa_token, methods });
    }
    let token = trusted_devices::issue(&txn, state, meta, user.id, trusted, now).await?;
    let mut outcome = accounts::sign_in(
        state,
        meta,
        txn,
        user,
        AuditEventKind::LoginSucceeded,
        SignedInBy::password(),
        now,
    )
    .await?;
    outcome.device_token = Some(token);
    Ok(LoginOutcome::Authenticated(Box::new(outcome)))
}

/// A right password for an account whose address is not verified while
/// verification is required: the lockout is settled as a success, no
/// session starts, and a fresh verification mail goes out when the
/// address's mail budget allows (the one in hand may have expired, and
/// `sendVerificationEmail` needs a session the account cannot get).
async fn unverified(
    state: &AppState,
    meta: &RequestMeta,
    success: Success,
    user: &entity::user::Model,
) -> Result<LoginOutcome, AppError> {
    let address = Email::parse_existing(&user.email)?;
    let key = limits::KeyFacts::of(meta)
        .with_email(&state.pseudonyms, &address)
        .key(Rule::MailEmail)?;
    let resend = match limits::enforce(state, meta, Rule::MailEmail, &key).await {
        Ok(()) => true,
        Err(AppError::RateLimited { .. }) => false,
        Err(other) => return Err(other),
    };
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    if resend {
        verify::queue_verification(&txn, state, meta, user, now).await?;
    }
    let event = Event::new(AuditEventKind::LoginFailed)
        .user(user.id)
        .detail(json!({ "reason": "email_not_verified", "mail_sent": resend }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    if resend {
        mail::wake(state);
    }
    Ok(LoginOutcome::Refused(LoginRefusal::EmailNotVerified))
}

/// A right password for a disabled account: the lockout is settled as a
/// success (the owner is not the attacker the counter guards against), no
/// session starts, and the refusal is audited.
async fn disabled(
    state: &AppState,
    meta: &RequestMeta,
    success: Success,
    user: &entity::user::Model,
) -> Result<LoginOutcome, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    success.settle(&txn).await?;
    let event = Event::new(AuditEventKind::LoginFailed)
        .user(user.id)
        .detail(json!({ "reason": "account_disabled" }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(LoginOutcome::Refused(LoginRefusal::AccountDisabled))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_answers_the_error_the_client_always_got() {
        let wrong = AppError::from(LoginRefusal::InvalidCredentials);
        assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
        assert_eq!(wrong.retry_after(), None);
        assert_eq!(
            wrong.to_string(),
            AppError::InvalidCredentials.to_string(),
            "same message"
        );
        let locked = AppError::from(LoginRefusal::Locked { retry_after: 42 });
        assert_eq!(locked.code(), "ACCOUNT_LOCKED");
        assert_eq!(locked.retry_after(), Some(42));
        assert_eq!(
            locked.to_string(),
            AppError::AccountLocked { retry_after: 42 }.to_string()
        );
    }
}
