//! [`AppError`]: the one error type at the GraphQL boundary.
//!
//! Every variant documents the `extensions.code` a client sees. Services return
//! `Result<T, AppError>`; resolvers turn it into a GraphQL error with
//! [`into_graphql`], which is the only place an error crosses to the client.
//! Foreign errors (database, bcrypt, JWT) never reach a client as text: they
//! become [`AppError::Internal`] or [`AppError::ServiceUnavailable`] and their
//! detail goes to the log, once, with the request id.
//!
//! This file is on the bottom floor and knows nothing of GraphQL: the
//! conversion, and the logging that goes with it, live in `graphql/`.
//!
//! [`into_graphql`]: crate::graphql::errors::into_graphql

use std::{fmt, sync::Arc};

use sea_orm::{DbErr, RuntimeErr};

/// Why an access token was not accepted; sent as `extensions.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthReason {
    /// No `Authorization: Bearer` header on an operation that needs one.
    Missing,
    /// Malformed, forged, wrong issuer/audience or missing claims.
    Invalid,
    /// Past its `exp` (plus leeway): the client should refresh.
    Expired,
    /// Well-formed, but its session was logged out, revoked or has ended.
    Revoked,
}

impl UnauthReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "MISSING",
            Self::Invalid => "INVALID",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
        }
    }
}

/// Everything that can go wrong in an operation, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `BAD_USER_INPUT` with `extensions.field`: validation failed.
    #[error("{message}")]
    BadUserInput {
        /// The input field at fault, e.g. `email`.
        field: &'static str,
        /// Says what is wrong, never echoes a secret.
        message: String,
    },
    /// `EMAIL_TAKEN`: register with an email that already has an account.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// `INVALID_CREDENTIALS`: unknown email or wrong password, indistinguishably.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// `ACCOUNT_LOCKED` with `extensions.retryAfter` (seconds).
    #[error("too many failed logins for this email; try again later")]
    AccountLocked {
        /// Seconds until the lock ends, at least 1.
        retry_after: u64,
    },
    /// `RATE_LIMITED` with `extensions.retryAfter` (seconds).
    #[error("too many requests; try again later")]
    RateLimited {
        /// Seconds until the next request would be allowed, at least 1.
        retry_after: u64,
    },
    /// `UNAUTHENTICATED` with `extensions.reason`.
    #[error("{}", unauth_message(*.0))]
    Unauthenticated(UnauthReason),
    /// `INVALID_REFRESH_TOKEN`: unknown, expired or revoked refresh token.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    /// `REFRESH_TOKEN_REUSED`: a rotated token came back; its session is revoked.
    #[error("this refresh token was already used; its session has been revoked")]
    RefreshTokenReused,
    /// `INVALID_TOKEN`: an email-verification, password-reset or
    /// email-change token or code is unknown, expired, used or superseded
    /// (five wrong codes end a code).
    #[error("this link or code is invalid, expired or already used; ask for a new email")]
    InvalidToken,
    /// `EMAIL_NOT_VERIFIED`: the password was right, but the server requires
    /// a verified address and this account's is not yet.
    #[error("verify your email address first: follow the link or enter the code we sent")]
    EmailNotVerified,
    /// `MFA_REQUIRED` with `extensions.mfaToken` and `extensions.methods`:
    /// the password was right and the account has a second factor; send
    /// the token and a factor to `completeLogin`. The one error that
    /// carries a secret, because the contract hands the token over here;
    /// `Debug` redacts it.
    #[error("a second factor is required: call completeLogin with the mfaToken")]
    MfaRequired {
        /// The single-use token for `completeLogin`.
        mfa_token: secrecy::SecretString,
        /// The factors this account can complete with.
        methods: Vec<&'static str>,
    },
    /// `ACCOUNT_DISABLED`: the password (or another proof) was right, but an
    /// administrator disabled the account. Only a right credential reaches
    /// it, so it tells a guesser nothing.
    #[error("this account has been disabled; contact an administrator")]
    AccountDisabled,
    /// `FORBIDDEN`: authenticated, but not allowed.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// `SERVICE_UNAVAILABLE`: the database is unreachable or busy past its timeout.
    #[error("the service is temporarily unavailable; try again shortly")]
    ServiceUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `INTERNAL` with `extensions.requestId`: a bug. The client sees only
    /// "internal error"; the cause chain is logged.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn unauth_message(reason: UnauthReason) -> &'static str {
    match reason {
        UnauthReason::Missing => "this operation requires an access token",
        UnauthReason::Invalid => "the access token is invalid",
        UnauthReason::Expired => "the access token has expired",
        UnauthReason::Revoked => "the session of this access token has ended",
    }
}

impl AppError {
    /// A `BAD_USER_INPUT` for `field`.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            field,
            message: message.into(),
        }
    }

    /// Wraps any error as a bug.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }

    /// The `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput { .. } => "BAD_USER_INPUT",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::AccountLocked { .. } => "ACCOUNT_LOCKED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::MfaRequired { .. } => "MFA_REQUIRED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::Forbidden => "FORBIDDEN",
            Self::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Seconds to wait, for the errors that carry one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::AccountLocked { retry_after } | Self::RateLimited { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl From<DbErr> for AppError {
    /// Pool timeouts, lost connections and a database busy past its timeout
    /// are the client's `SERVICE_UNAVAILABLE`; anything else is a bug.
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            Self::ServiceUnavailable(Box::new(err))
        } else {
            Self::Internal(Box::new(err))
        }
    }
}

impl AppError {
    /// One database error reported to several callers (a batched query
    /// answered them all), classified like [`From<DbErr>`].
    pub fn from_shared_db(err: &Arc<DbErr>) -> Self {
        let shared = Box::new(SharedDbErr(Arc::clone(err)));
        if is_unavailable(err) {
            Self::ServiceUnavailable(shared)
        } else {
            Self::Internal(shared)
        }
    }
}

/// A [`DbErr`] behind an `Arc`, so each caller gets an error of its own.
#[derive(Debug)]
struct SharedDbErr(Arc<DbErr>);

impl fmt::Display for SharedDbErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedDbErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => {
            sqlx_unavailable(sqlx)
        }
        _ => false,
    }
}

/// Errors that say "the database is not answering", as opposed to "this
/// statement is wrong": the pool, the network, and the server's own codes
/// for timeouts, shutdown and overload.
fn sqlx_unavailable(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::Io(_)
        | Error::Tls(_)
        | Error::Protocol(_)
        | Error::BeginFailed => true,
        Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            UNAVAILABLE_CODES.contains(&code.as_ref())
                // Postgres connection exceptions (class 08) and shutdown (57P0x).
                || code.starts_with("08")
                || code.starts_with("57P0")
        }
        _ => false,
    }
}

/// SQLite BUSY (5, and its extended codes) and LOCKED (6) after the busy
/// timeout; Postgres query_canceled by statement_timeout (57014),
/// lock_not_available (55P03), too_many_connections (53300),
/// cannot_connect_now (57P03), and the two transaction rollbacks a retry
/// can succeed after: serialization_failure (40001) and deadlock_detected
/// (40P01). Warden takes rows in one order everywhere, so a deadlock means
/// another client of the database took them in the other.
const UNAVAILABLE_CODES: &[&str] = &[
    "5", "261", "517", "773", "6", "262", "57014", "55P03", "53300", "57P03", "40001", "40P01",
];

/// Displays an error and all its sources, `a: b: c`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locks_and_limits_carry_a_retry_after() {
        assert_eq!(
            AppError::AccountLocked { retry_after: 42 }.retry_after(),
            Some(42)
        );
        assert_eq!(
            AppError::RateLimited { retry_after: 7 }.retry_after(),
            Some(7)
        );
        assert_eq!(AppError::bad_input("email", "no").retry_after(), None);
        assert_eq!(AppError::bad_input("email", "no").code(), "BAD_USER_INPUT");
        assert_eq!(AppError::internal("boom").to_string(), "internal error");
    }
}
