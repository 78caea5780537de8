//! Credentials, tokens and rate limits: the mechanisms of authentication.
//!
//! Mechanism only: nothing here touches the SQL database or knows GraphQL.
//! Key storage is in `services/` (`server_keys`, `signing_keys`);
//! [`limiter::redis`] talks to Redis.

pub mod api_key;
pub mod charset;
pub mod email;
pub mod email_code;
pub mod hash_threads;
pub mod jwt;
pub mod limiter;
pub mod opaque_token;
pub mod passkey;
pub mod password;
pub mod pseudonym;
pub mod pwned;
pub mod recovery_code;
pub mod refusal_pace;
pub mod sealing;
pub mod signing;
pub mod strength;
pub mod totp;
