//! The use cases, on sea-orm. Each state change is one transaction, and the
//! audit row that records it is written inside that same transaction.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod audit_log;
pub mod auth_user;
pub mod devices;
pub mod email;
pub mod limits;
pub mod lockout;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod own_data;
pub mod passkeys;
pub mod rotation;
pub mod server_keys;
pub mod sessions;
pub mod signing_keys;
pub mod trusted_devices;

use chrono::{DateTime, Utc};
use entity::user;
use secrecy::SecretString;
use uuid::Uuid;

use crate::auth::jwt::Minted;

/// What `register`, `login` and `refresh` hand back to the client.
pub struct AuthOutcome {
    /// The account.
    pub user: user::Model,
    /// The session the tokens belong to.
    pub session_id: Uuid,
    /// A fresh access token.
    pub access: Minted,
    /// The refresh token to present next time.
    pub refresh_token: SecretString,
    /// When that refresh token stops working.
    pub refresh_expires_at: DateTime<Utc>,
    /// The device token of a `register` or `login` (none for `refresh`).
    pub device_token: Option<SecretString>,
}
