//! The old path of [`super::opaque_token`], kept only while files outside
//! the opaque-token change still import `auth::refresh::{random_bytes,
//! SuccessorKey}` (key storage, state and start-up). New code imports
//! [`super::opaque_token`]; this shim goes once those imports move.

pub use super::opaque_token::{random_bytes, SuccessorKey};
