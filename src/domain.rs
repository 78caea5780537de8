//! The small vocabulary shared by storage, services and the API: roles,
//! audit event kinds and severities. Stored as their wire names, so the
//! database reads the same as the GraphQL schema.

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

/// What an account may do.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// A normal account: sees only its own data. Every `register` creates one.
    User,
    /// An administrator: reads the whole audit log. Made only with the `warden admin` CLI.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
        }
    }

    /// Reads a stored role; anything unknown is the least privileged.
    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "ADMIN" => Self::Admin,
            _ => Self::User,
        }
    }
}

/// What an API key may do. Stored space-separated, by these names.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiKeyScope {
    /// Act as the owner in ordinary operations (never changing a password,
    /// a factor, an email or a key).
    User,
    /// The admin operations; only an admin's key may hold it, and it acts
    /// only while the owner is still an admin.
    Admin,
    /// Call `POST /oauth/introspect`.
    Introspect,
}

impl ApiKeyScope {
    /// Every scope, in stored order.
    pub const ALL: [Self; 3] = [Self::User, Self::Admin, Self::Introspect];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
            Self::Introspect => "INTROSPECT",
        }
    }

    /// The scopes stored as `raw` (space-separated); unknown names are dropped.
    pub fn parse_stored(raw: &str) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|scope| raw.split(' ').any(|name| name == scope.as_str()))
            .collect()
    }

    /// The stored form of `scopes`: space-separated, in [`ALL`](Self::ALL) order, once each.
    pub fn to_stored(scopes: &[Self]) -> String {
        Self::ALL
            .into_iter()
            .filter(|scope| scopes.contains(scope))
            .map(Self::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How the login behind a session proved who the user is: `Session.method`,
/// stored on the session with the access token's `amr` (RFC 8176 values).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInMethod {
    /// The password alone (`register`, or `login` without a second factor).
    Password,
    /// The password, then a code from the authenticator app.
    PasswordTotp,
    /// The password, then a recovery code.
    PasswordRecoveryCode,
    /// The password, then a passkey.
    PasswordPasskey,
    /// A passkey alone (`finishPasskeyLogin`): possession plus the
    /// authenticator's own user verification.
    Passkey,
}

impl SignInMethod {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "PASSWORD",
            Self::PasswordTotp => "PASSWORD_TOTP",
            Self::PasswordRecoveryCode => "PASSWORD_RECOVERY_CODE",
            Self::PasswordPasskey => "PASSWORD_PASSKEY",
            Self::Passkey => "PASSKEY",
        }
    }

    /// Reads a stored method; anything unknown is the weakest.
    pub fn from_stored(raw: &str) -> Self {
        match raw {
            "PASSWORD_TOTP" => Self::PasswordTotp,
            "PASSWORD_RECOVERY_CODE" => Self::PasswordRecoveryCode,
            "PASSWORD_PASSKEY" => Self::PasswordPasskey,
            "PASSKEY" => Self::Passkey,
            _ => Self::Password,
        }
    }

    /// The `amr` values (RFC 8176) of a login by this method. A passkey is
    /// `swk` when its key may be synced to other devices (backup eligible),
    /// `hwk` when it is bound to one authenticator. Every method with two
    /// factors adds `mfa`; a passkey's user verification makes it one.
    pub fn amr(self, synced_key: bool) -> Vec<&'static str> {
        let key = if synced_key { "swk" } else { "hwk" };
        match self {
            Self::Password => vec!["pwd"],
            Self::PasswordTotp | Self::PasswordRecoveryCode => vec!["pwd", "otp", "mfa"],
            Self::PasswordPasskey => vec!["pwd", key, "mfa"],
            Self::Passkey => vec![key, "user", "mfa"],
        }
    }
}

/// How a login proved who the user is: its method and the `amr` values
/// its session's access tokens carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedInBy {
    /// `Session.method`.
    pub method: SignInMethod,
    /// RFC 8176 values, space-separated as stored.
    pub amr: String,
}

impl SignedInBy {
    /// A login by `method`; `synced_key` tells a synced passkey from a
    /// device-bound one (see [`SignInMethod::amr`]).
    pub fn new(method: SignInMethod, synced_key: bool) -> Self {
        Self {
            method,
            amr: method.amr(synced_key).join(" "),
        }
    }

    /// A login by password alone.
    pub fn password() -> Self {
        Self::new(SignInMethod::Password, false)
    }
}

/// How serious an audit event is, in increasing order.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Routine: a login, a refresh.
    Info,
    /// Worth a look in aggregate: a failed login.
    Notice,
    /// Possibly hostile: a lockout, a rate limit, a denied access.
    Warning,
    /// An attack in progress: a stolen refresh token was replayed.
    Critical,
}

impl Severity {
    /// The stored number, so `minSeverity` is a comparison in SQL.
    pub fn level(self) -> i16 {
        self as i16
    }

    /// Reads a stored number.
    pub fn from_level(level: i16) -> Self {
        match level {
            i16::MIN..=0 => Self::Info,
            1 => Self::Notice,
            2 => Self::Warning,
            _ => Self::Critical,
        }
    }
}

/// What happened, for the audit log.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AuditEventKind {
    /// An account was created.
    UserRegistered,
    /// A login succeeded and a session began.
    LoginSucceeded,
    /// A login failed: unknown email or wrong password.
    LoginFailed,
    /// Too many failed logins locked an email.
    AccountLocked,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// A refresh was refused: unknown, expired or revoked token.
    RefreshFailed,
    /// A rotated refresh token came back after the grace interval: the session was revoked.
    RefreshTokenReuseDetected,
    /// One session was logged out or revoked.
    SessionRevoked,
    /// Every session of a user was revoked.
    AllSessionsRevoked,
    /// A request was refused by a rate limit.
    RateLimited,
    /// An authenticated caller asked for something it may not have.
    AccessDenied,
    /// Someone read the audit log.
    AuditLogViewed,
    /// An administrator role was granted or removed.
    RoleChanged,
    /// A password was changed (and the account's other sessions ended).
    PasswordChanged,
    /// The breached-password check (Pwned Passwords) could not answer, so
    /// the password was accepted unchecked: the check fails open.
    PasswordCheckUnavailable,
    /// A signing key was added (`warden keys rotate`), or a change of
    /// `WARDEN_JWT_SECRET` or `WARDEN_JWT_ALGORITHM` retired the old keys.
    SigningKeyRotated,
    /// A signing key was revoked (`warden keys revoke`): its tokens stopped
    /// verifying at once.
    SigningKeyRevoked,
    /// The mail sender gave up on a message after its last attempt.
    MailFailed,
    /// A verification mail (link and code) was queued for an account's address.
    EmailVerificationSent,
    /// An account's address was verified (link or code).
    EmailVerified,
    /// A password reset was asked for an address that has an account, and
    /// its mail queued (nothing is recorded for an address without one).
    PasswordResetRequested,
    /// A password was reset with a mailed token or code: every session ended.
    PasswordReset,
    /// An email change was asked for: the new address mailed a token, the old one a notice.
    EmailChangeRequested,
    /// An account moved to a new, proven address.
    EmailChanged,
    /// A second factor (an authenticator app) was turned on.
    MfaEnabled,
    /// A second factor was turned off.
    MfaDisabled,
    /// A wrong second factor (a TOTP or recovery code) was presented.
    MfaFailed,
    /// A recovery code was used (and the owner notified by mail).
    RecoveryCodeUsed,
    /// A passkey was registered to an account.
    PasskeyAdded,
    /// A passkey was deleted from an account.
    PasskeyRemoved,
    /// An API key was created (its prefix, name and scopes in the detail).
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// An API key authenticated a request (sampled: at most once an hour per key).
    ApiKeyUsed,
    /// An administrator disabled an account (its sessions ended with it).
    UserDisabled,
    /// An administrator enabled a disabled account again.
    UserEnabled,
    /// An administrator deleted an account.
    UserDeleted,
    /// An administrator removed an account's second factors and passkeys.
    FactorsReset,
    /// An administrator cleared an address's lockout counters.
    AccountUnlocked,
    /// An administrator read accounts (`users`, `user`): one row per
    /// session and minute, however often it reads.
    UsersViewed,
    /// An account was deleted by its owner (`deleteAccount`).
    AccountDeleted,
    /// An account's owner downloaded what Warden holds about it
    /// (`exportMyData`).
    DataExported,
}

impl AuditEventKind {
    /// Every kind, for parsing stored names.
    pub const ALL: [Self; 41] = [
        Self::UserRegistered,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::TokenRefreshed,
        Self::RefreshFailed,
        Self::RefreshTokenReuseDetected,
        Self::SessionRevoked,
        Self::AllSessionsRevoked,
        Self::RateLimited,
        Self::AccessDenied,
        Self::AuditLogViewed,
        Self::RoleChanged,
        Self::PasswordChanged,
        Self::PasswordCheckUnavailable,
        Self::SigningKeyRotated,
        Self::SigningKeyRevoked,
        Self::MailFailed,
        Self::EmailVerificationSent,
        Self::EmailVerified,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaFailed,
        Self::RecoveryCodeUsed,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::ApiKeyUsed,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::FactorsReset,
        Self::AccountUnlocked,
        Self::UsersViewed,
        Self::AccountDeleted,
        Self::DataExported,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "USER_REGISTERED",
            Self::LoginSucceeded => "LOGIN_SUCCEEDED",
            Self::LoginFailed => "LOGIN_FAILED",
            Self::AccountLocked => "ACCOUNT_LOCKED",
            Self::TokenRefreshed => "TOKEN_REFRESHED",
            Self::RefreshFailed => "REFRESH_FAILED",
            Self::RefreshTokenReuseDetected => "REFRESH_TOKEN_REUSE_DETECTED",
            Self::SessionRevoked => "SESSION_REVOKED",
            Self::AllSessionsRevoked => "ALL_SESSIONS_REVOKED",
            Self::RateLimited => "RATE_LIMITED",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::AuditLogViewed => "AUDIT_LOG_VIEWED",
            Self::RoleChanged => "ROLE_CHANGED",
            Self::PasswordChanged => "PASSWORD_CHANGED",
            Self::PasswordCheckUnavailable => "PASSWORD_CHECK_UNAVAILABLE",
            Self::SigningKeyRotated => "SIGNING_KEY_ROTATED",
            Self::SigningKeyRevoked => "SIGNING_KEY_REVOKED",
            Self::MailFailed => "MAIL_FAILED",
            Self::EmailVerificationSent => "EMAIL_VERIFICATION_SENT",
            Self::EmailVerified => "EMAIL_VERIFIED",
            Self::PasswordResetRequested => "PASSWORD_RESET_REQUESTED",
            Self::PasswordReset => "PASSWORD_RESET",
            Self::EmailChangeRequested => "EMAIL_CHANGE_REQUESTED",
            Self::EmailChanged => "EMAIL_CHANGED",
            Self::MfaEnabled => "MFA_ENABLED",
            Self::MfaDisabled => "MFA_DISABLED",
            Self::MfaFailed => "MFA_FAILED",
            Self::RecoveryCodeUsed => "RECOVERY_CODE_USED",
            Self::PasskeyAdded => "PASSKEY_ADDED",
            Self::PasskeyRemoved => "PASSKEY_REMOVED",
            Self::ApiKeyCreated => "API_KEY_CREATED",
            Self::ApiKeyRevoked => "API_KEY_REVOKED",
            Self::ApiKeyUsed => "API_KEY_USED",
            Self::UserDisabled => "USER_DISABLED",
            Self::UserEnabled => "USER_ENABLED",
            Self::UserDeleted => "USER_DELETED",
            Self::FactorsReset => "FACTORS_RESET",
            Self::AccountUnlocked => "ACCOUNT_UNLOCKED",
            Self::UsersViewed => "USERS_VIEWED",
            Self::AccountDeleted => "ACCOUNT_DELETED",
            Self::DataExported => "DATA_EXPORTED",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// The severity every event of this kind is recorded with.
    pub fn severity(self) -> Severity {
        match self {
            Self::UserRegistered
            | Self::LoginSucceeded
            | Self::TokenRefreshed
            | Self::SessionRevoked
            | Self::AuditLogViewed
            | Self::UsersViewed
            | Self::EmailVerificationSent
            | Self::EmailVerified
            | Self::ApiKeyUsed => Severity::Info,
            Self::LoginFailed
            | Self::RefreshFailed
            | Self::AllSessionsRevoked
            | Self::PasswordChanged
            | Self::PasswordCheckUnavailable
            | Self::SigningKeyRotated
            | Self::PasswordResetRequested
            | Self::PasswordReset
            | Self::EmailChangeRequested
            | Self::EmailChanged
            | Self::MfaEnabled
            | Self::RecoveryCodeUsed
            | Self::PasskeyAdded
            | Self::ApiKeyCreated
            | Self::ApiKeyRevoked
            | Self::UserEnabled
            | Self::AccountUnlocked
            | Self::DataExported => Severity::Notice,
            Self::AccountLocked
            | Self::RateLimited
            | Self::AccessDenied
            | Self::RoleChanged
            | Self::SigningKeyRevoked
            | Self::MailFailed
            | Self::MfaDisabled
            | Self::MfaFailed
            | Self::PasskeyRemoved
            | Self::UserDisabled
            | Self::UserDeleted
            | Self::AccountDeleted
            | Self::FactorsReset => Severity::Warning,
            Self::RefreshTokenReuseDetected => Severity::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_stored_name() {
        for kind in AuditEventKind::ALL {
            assert_eq!(AuditEventKind::from_stored(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditEventKind::from_stored("NOPE"), None);
    }

    #[test]
    fn api_key_scopes_are_stored_once_each_in_a_fixed_order() {
        use ApiKeyScope::*;
        assert_eq!(
            ApiKeyScope::to_stored(&[Introspect, User, User]),
            "USER INTROSPECT"
        );
        assert_eq!(ApiKeyScope::to_stored(&[]), "");
        assert_eq!(
            ApiKeyScope::parse_stored("USER ADMIN INTROSPECT"),
            vec![User, Admin, Introspect]
        );
        // Unknown or partial names grant nothing.
        assert_eq!(
            ApiKeyScope::parse_stored("ADMINISTRATOR user  NOPE"),
            vec![]
        );
        for scopes in [
            vec![User],
            vec![Admin, Introspect],
            ApiKeyScope::ALL.to_vec(),
        ] {
            assert_eq!(
                ApiKeyScope::parse_stored(&ApiKeyScope::to_stored(&scopes)),
                scopes
            );
        }
    }

    #[test]
    fn severities_order_and_round_trip() {
        for s in [
            Severity::Info,
            Severity::Notice,
            Severity::Warning,
            Severity::Critical,
        ] {
            assert_eq!(Severity::from_level(s.level()), s);
        }
        assert!(Severity::Critical > Severity::Warning);
        assert_eq!(
            AuditEventKind::RefreshTokenReuseDetected.severity(),
            Severity::Critical
        );
    }
}
