//! Credentials, tokens and rate limits: the mechanisms of authentication.
//!
//! Nothing here touches the SQL database except [`keys`], which loads or
//! creates the server's key material once at start-up; [`limiter::redis`]
//! talks to Redis.

pub mod charset;
pub mod email;
pub mod hash_threads;
pub mod jwt;
pub mod keys;
pub mod limiter;
pub mod password;
pub mod pseudonym;
pub mod pwned;
pub mod refresh;
pub mod signing;
pub mod strength;
