//! TEMPORARY stand-in for `crate::services::email` until the lead's flows
//! land on main: the same signatures, answering as if no token existed.
//! Replaced by a re-export after `git merge main`.

use uuid::Uuid;

use crate::{error::AppError, meta::RequestMeta, state::AppState};

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Email verification.
    Verify,
    /// Password reset.
    Reset,
    /// Email change.
    Change,
}

/// A link token or an email with its code.
pub enum TokenInput {
    /// The link's token.
    Link(String),
}

/// What a token is, read without consuming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// Usable.
    Live,
    /// Used or superseded.
    Used,
    /// Past its expiry.
    Expired,
    /// Never issued.
    Unknown,
}

/// Stand-in: tokens starting `LIVE` are live, `GONE` expired, `USED` used.
pub async fn token_state(
    _state: &AppState,
    _purpose: Purpose,
    token: &str,
) -> Result<TokenState, AppError> {
    Ok(match token.get(..4) {
        Some("LIVE") => TokenState::Live,
        Some("GONE") => TokenState::Expired,
        Some("USED") => TokenState::Used,
        _ => TokenState::Unknown,
    })
}

fn stub(input: TokenInput) -> Result<(), AppError> {
    let TokenInput::Link(token) = input;
    if token.starts_with("LIVE") {
        Ok(())
    } else {
        Err(AppError::InvalidToken)
    }
}

/// Stand-in: every token is invalid.
pub async fn verify_email(
    _state: &AppState,
    _meta: &RequestMeta,
    input: TokenInput,
) -> Result<(), AppError> {
    stub(input)
}

/// Stand-in: every token is invalid.
pub async fn reset_password(
    _state: &AppState,
    _meta: &RequestMeta,
    input: TokenInput,
    _new_password: &str,
) -> Result<(), AppError> {
    stub(input)
}

/// Stand-in: every token is invalid.
pub async fn confirm_email_change(
    _state: &AppState,
    _meta: &RequestMeta,
    input: TokenInput,
    _caller_session: Option<Uuid>,
) -> Result<(), AppError> {
    stub(input)
}
