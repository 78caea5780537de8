//! The session check of every authenticated request: verified claims in,
//! the caller out.

use crate::{
    auth::jwt::Claims,
    error::{AppError, UnauthReason},
    services::auth_user::AuthUser,
    state::AppState,
};

/// Checks that the session behind verified `claims` is alive and loads its
/// user, on every authenticated request (batched with concurrent checks:
/// see [`crate::db::liveness`]).
pub async fn authenticate(state: &AppState, claims: &Claims) -> Result<AuthUser, AppError> {
    match state.session_checks.owner(claims.sid, claims.sub).await? {
        Some(user) => Ok(AuthUser::by_session(user, claims.sid)),
        None => Err(AppError::Unauthenticated(UnauthReason::Revoked)),
    }
}
