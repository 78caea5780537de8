//! Credentials and tokens: the pure, CPU-side half of authentication.
//!
//! Nothing here touches the database except [`keys`], which loads or creates
//! the server's key material once at start-up.

pub mod email;
pub mod jwt;
pub mod keys;
pub mod limiter;
pub mod password;
pub mod refresh;
