//! GraphQL object and input types. Separate from the storage entities, so
//! only what is listed here is ever published. Every doc comment below ships
//! in `schema.graphql`: it is written for the frontend developer.

use async_graphql::{InputObject, Json, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{audit_event, user};
use secrecy::ExposeSecret;

use crate::{
    domain::{AuditEventKind, Role, Severity},
    error::AppError,
    services::AuthOutcome,
};

/// An account.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    /// Stable unique id.
    pub id: ID,
    /// Email address, lowercase.
    pub email: String,
    /// Optional display name given at registration.
    pub username: Option<String>,
    /// What the account may do.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last logged in (registration counts), if ever.
    pub last_login_at: Option<DateTime<Utc>>,
    /// True once the owner proved the address: `verifyEmail`, a password
    /// reset through a mailed link or code, or a confirmed email change.
    pub email_verified: bool,
    /// True while a second factor (an authenticator app) protects the
    /// account: `login` then answers `MFA_REQUIRED` after the password.
    pub mfa_enabled: bool,
    /// True while an administrator has the account disabled: it cannot sign
    /// in (`ACCOUNT_DISABLED` after a right password) and has no sessions.
    pub disabled: bool,
    /// When the account was disabled. Read by administrators (`users`,
    /// `user`); null elsewhere.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The administrator's note on why it was disabled. Read by
    /// administrators (`users`, `user`); null elsewhere.
    pub disabled_reason: Option<String>,
    /// What the account holds: sessions, passkeys, factors. Filled by
    /// `user(id)` only (administrators); null elsewhere.
    pub holdings: Option<UserHoldings>,
}

/// What an account holds, for an administrator (`user(id)`).
#[derive(SimpleObject, Clone, Debug)]
pub struct UserHoldings {
    /// Its live sessions (not revoked, not expired).
    pub active_sessions: i32,
    /// Its passkeys.
    pub passkeys: i32,
    /// True while a confirmed authenticator app is on.
    pub totp_enabled: bool,
    /// Its unused recovery codes.
    pub recovery_codes_left: i32,
}

impl From<user::Model> for User {
    fn from(u: user::Model) -> Self {
        Self {
            id: ID(u.id.to_string()),
            role: Role::from_stored(&u.role),
            email: u.email,
            username: u.username,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
            email_verified: u.email_verified_at.is_some(),
            mfa_enabled: u.mfa_enabled_at.is_some(),
            disabled: u.disabled_at.is_some(),
            disabled_at: None,
            disabled_reason: None,
            holdings: None,
        }
    }
}

/// One login on one device: a session and its chain of refresh tokens.
#[derive(SimpleObject, Clone, Debug)]
pub struct Session {
    /// Pass to `revokeSession` to end it.
    pub id: ID,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// When its refresh token was last used (or the login, if never).
    pub last_used_at: DateTime<Utc>,
    /// When it ends at the latest, whatever the refreshes.
    pub expires_at: DateTime<Utc>,
    /// Client IP of the login.
    pub ip: Option<String>,
    /// User agent of the login.
    pub user_agent: Option<String>,
    /// True for the session of the access token making this request.
    pub current: bool,
    /// How its login proved who the user is.
    pub method: crate::domain::SignInMethod,
    /// The RFC 8176 `amr` values its access tokens carry (`pwd`, `otp`,
    /// `hwk`, `swk`, `user`, `mfa`).
    pub amr: Vec<String>,
}

impl Session {
    /// From a stored row; `current` is the caller's session id.
    pub fn new(row: entity::session::Model, current: Option<uuid::Uuid>) -> Self {
        Self {
            id: ID(row.id.to_string()),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            ip: row.ip,
            user_agent: row.user_agent,
            current: Some(row.id) == current,
            method: crate::domain::SignInMethod::from_stored(&row.method),
            amr: row.amr.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// The tokens of a session, returned by `register`, `login` and `refresh`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// A short-lived JWT. Send it as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i32,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// An opaque token for `refresh`. Keep it secret; every `refresh` returns a
    /// new one and the old one stops working. With `WARDEN_REFRESH_COOKIE=only`
    /// it is always `""`, deliberately: the token travels only in the HttpOnly
    /// `warden_refresh` cookie, so no script ever sees it (call `refresh` and
    /// `logout` without the argument).
    pub refresh_token: String,
    /// When the refresh token expires (never after the session's absolute end).
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The account the tokens belong to.
    pub user: User,
    /// The session these tokens belong to; `logout` ends it.
    pub session_id: ID,
    /// The device token of `register` and `login` (null for `refresh`, and
    /// in cookie-only mode, where the `warden_device` cookie carries it).
    /// Keep it on the device, apart from the session, and send it back as
    /// `LoginInput.deviceToken` at every login: it proves this device logged
    /// in to the account before, so it may still log in while too many
    /// failed logins from elsewhere lock the email. Each login replaces it.
    pub device_token: Option<String>,
}

impl From<AuthOutcome> for AuthPayload {
    fn from(o: AuthOutcome) -> Self {
        Self {
            access_token: o.access.token,
            token_type: "Bearer".to_owned(),
            expires_in: i32::try_from(o.access.lifetime_secs).unwrap_or(i32::MAX),
            access_token_expires_at: o.access.expires_at,
            refresh_token: o.refresh_token.expose_secret().to_owned(),
            refresh_token_expires_at: o.refresh_expires_at,
            user: o.user.into(),
            session_id: ID(o.session_id.to_string()),
            device_token: o.device_token.map(|t| t.expose_secret().to_owned()),
        }
    }
}

/// Input of `register`.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Email address; trimmed and compared case-insensitively; at most 254 bytes.
    pub email: String,
    /// 8 to 72 bytes of UTF-8, taken exactly as typed; common passwords are refused.
    pub password: String,
    /// Optional display name, at most 64 characters.
    pub username: Option<String>,
}

/// Input of `login`.
#[derive(InputObject)]
pub struct LoginInput {
    /// The email the account was registered with (any case).
    pub email: String,
    /// The password, exactly as typed at registration.
    pub password: String,
    /// The `deviceToken` of this device's last login to this account, if it
    /// has one. Optional; in cookie mode the `warden_device` cookie serves.
    pub device_token: Option<String>,
}

/// What a mailed link or code gives back to `verifyEmail`, `resetPassword`
/// and `confirmEmailChange`: either the link's `token`, or the `email` the
/// mail went to with the 6-digit `code` from it.
#[derive(InputObject)]
pub struct EmailTokenInput {
    /// The `token` query parameter of the mailed link.
    pub token: Option<String>,
    /// The address the mail was sent to (with `code`).
    pub email: Option<String>,
    /// The 6-digit code from the mail (with `email`).
    pub code: Option<String>,
}

/// `Debug` for types that hold a password or a token: only what is safe.
macro_rules! redacted_debug {
    ($ty:ty, $name:literal, $($field:ident),*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($name)$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}

redacted_debug!(
    AuthPayload,
    "AuthPayload",
    session_id,
    access_token_expires_at
);
redacted_debug!(RegisterInput, "RegisterInput", email, username);
redacted_debug!(LoginInput, "LoginInput", email);
redacted_debug!(EmailTokenInput, "EmailTokenInput", email);

/// One security event.
#[derive(SimpleObject, Debug)]
pub struct AuditEvent {
    /// Unique id; larger is newer.
    pub id: ID,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: AuditEventKind,
    /// How serious it is.
    pub severity: Severity,
    /// The account involved, when known.
    pub user_id: Option<ID>,
    /// The session involved, when there is one.
    pub session_id: Option<ID>,
    /// Client IP of the request that caused it.
    pub ip: Option<String>,
    /// User agent of the request that caused it.
    pub user_agent: Option<String>,
    /// Kind-specific context (reasons, counts); never a secret.
    pub detail: Option<Json<serde_json::Value>>,
}

impl TryFrom<audit_event::Model> for AuditEvent {
    type Error = AppError;

    fn try_from(row: audit_event::Model) -> Result<Self, AppError> {
        let kind = AuditEventKind::from_stored(&row.kind)
            .ok_or_else(|| AppError::internal(format!("unknown audit kind in row {}", row.id)))?;
        Ok(Self {
            id: ID(row.id.to_string()),
            at: row.at,
            kind,
            severity: Severity::from_level(row.severity),
            user_id: row.user_id.map(|u| ID(u.to_string())),
            session_id: row.session_id.map(|s| ID(s.to_string())),
            ip: row.ip,
            user_agent: row.user_agent,
            detail: row.detail.map(Json),
        })
    }
}

/// Narrows `auditLog`. Every field is optional; all given ones must match.
#[derive(InputObject, Debug, Default)]
pub struct AuditLogFilter {
    /// Only events of these kinds.
    pub kinds: Option<Vec<AuditEventKind>>,
    /// Only events of this account (admins: anyone; users: only themselves).
    pub user_id: Option<ID>,
    /// Only events at or after this time (years 0001 to 9999, else
    /// `BAD_USER_INPUT`).
    pub since: Option<DateTime<Utc>>,
    /// Only events at or before this time (years 0001 to 9999, else
    /// `BAD_USER_INPUT`).
    pub until: Option<DateTime<Utc>>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

/// A page of audit events, newest first (Relay connection).
#[derive(SimpleObject, Debug)]
pub struct AuditEventConnection {
    /// The events of this page, each with its cursor.
    pub edges: Vec<AuditEventEdge>,
    /// Where this page ends and whether another follows.
    pub page_info: PageInfo,
}

/// An audit event and its cursor.
#[derive(SimpleObject, Debug)]
pub struct AuditEventEdge {
    /// Pass as `after` to continue from this event.
    pub cursor: String,
    /// The event.
    pub node: AuditEvent,
}

/// Pagination state of a connection.
#[derive(SimpleObject, Debug)]
pub struct PageInfo {
    /// True when more items follow this page (older events, later accounts).
    pub has_next_page: bool,
    /// Cursor of the last item of this page; pass it as `after`.
    pub end_cursor: Option<String>,
}
