//! Sessions and refresh tokens: starting a session, rotating its refresh
//! token, catching replays, and ending sessions.
//!
//! # Rotation and reuse
//! Each `refresh` *claims* the presented token with one conditional UPDATE
//! (`… SET used_at = now WHERE id = ? AND used_at IS NULL`). Exactly one
//! caller can win that update, on SQLite and on Postgres, so concurrent
//! refreshes never fork a session. The winner's writes are in
//! [`crate::services::rotation`] (one statement on Postgres). A loser finds the token used and decides:
//! - within the reuse interval of the first use, with the successor still
//!   unused and the session alive: it gets the *same* successor (derived from
//!   the token, see [`crate::auth::opaque_token`]) — a retry or a second tab;
//! - otherwise the token was stolen or replayed late: the whole session is
//!   revoked and `REFRESH_TOKEN_REUSE_DETECTED` is written, and that
//!   transaction is committed before the request fails.
//!
//! # Layout
//! One file per use case, re-exported here:
//! - `start.rs`: [`start`], a new session and its first refresh token;
//! - `rotate.rs`: [`refresh`] and [`refresh_any`], the claim and its outcome;
//! - `reuse.rs`: judging a loser of the claim (grace retry or theft);
//! - `end.rs`: [`revoke`], the logouts, [`logout_many`] and
//!   [`revoke_user_sessions`];
//! - `check.rs`: [`authenticate`], the session check of every authenticated
//!   request.

mod check;
mod end;
mod reuse;
mod rotate;
mod start;

pub use self::{
    check::authenticate,
    end::{
        logout_by_access_token, logout_by_refresh_token, logout_many, revoke, revoke_user_sessions,
        Scope,
    },
    rotate::{refresh, refresh_any},
    start::{start, Started},
};
pub use crate::services::auth_user::AuthUser;

/// Why a session ended, as stored in `sessions.revoked_reason`.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    /// `logout`.
    Logout,
    /// `logoutAllDevices`.
    LogoutAll,
    /// `logoutOtherDevices`.
    LogoutOthers,
    /// `revokeSession`.
    Revoked,
    /// `changePassword` ended the other sessions.
    PasswordChange,
    /// A refresh token was replayed.
    TokenReuse,
    /// `resetPassword` ended every session.
    PasswordReset,
    /// `confirmEmailChange` ended the other sessions.
    EmailChange,
    /// An administrator disabled the account (`disableUser`).
    Disabled,
    /// An administrator ended the account's sessions (`revokeUserSessions`).
    AdminRevoked,
}

impl RevokeReason {
    /// The stored name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::LogoutOthers => "logout_others",
            Self::Revoked => "revoke_session",
            Self::PasswordChange => "password_change",
            Self::TokenReuse => "refresh_token_reuse",
            Self::PasswordReset => "password_reset",
            Self::EmailChange => "email_change",
            Self::Disabled => "account_disabled",
            Self::AdminRevoked => "admin_revoked",
        }
    }
}
