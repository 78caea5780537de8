//! Warden's tables as sea-orm entities: one thin module per table.
//!
//! Entities are storage rows, not API types: nothing here derives a GraphQL
//! type, so a column like `password_hash` can never be published by accident.
//! `Debug` on rows that hold hashes is written by hand and redacts them.

pub mod api_key;
pub mod audit_event;
pub mod email_token;
pub mod login_attempt;
pub mod mail_outbox;
pub mod mfa_token;
pub mod passkey;
pub mod recovery_code;
pub mod refresh_token;
pub mod server_key;
pub mod session;
pub mod session_view;
pub mod signing_key;
pub mod totp_factor;
pub mod trusted_device;
pub mod user;
pub mod webauthn_challenge;
