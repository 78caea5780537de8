//! Per-request context: who is calling and from where, read through
//! [`ContextExt`] rather than raw `ctx.data::<T>()` lookups.
//!
//! Authentication has three states, kept apart on purpose: no header
//! (anonymous), a header that failed verification (rejected, so the client
//! learns `UNAUTHENTICATED` and refreshes instead of being silently
//! anonymous), and a verified token whose session is then checked.

use async_graphql::Context;
use tokio::sync::OnceCell;

use crate::{
    auth::jwt::Claims,
    error::{AppError, UnauthReason},
    meta::RequestMeta,
    services::sessions::{self, AuthUser},
    state::AppState,
};

/// What the `Authorization` header said, after signature and claim checks.
#[derive(Clone, Debug)]
pub enum Viewer {
    /// No `Authorization` header.
    Anonymous,
    /// A token that verified; its session is not checked yet.
    Token(Claims),
    /// A header or token that did not verify.
    Rejected(UnauthReason),
}

/// The per-request authentication state: the viewer and, once checked, the
/// caller whose session is alive (checked at most once per request).
#[derive(Debug)]
pub struct RequestAuth {
    viewer: Viewer,
    checked: OnceCell<AuthUser>,
}

impl RequestAuth {
    /// Wraps what the header said.
    pub fn new(viewer: Viewer) -> Self {
        Self {
            viewer,
            checked: OnceCell::new(),
        }
    }

    /// The verified claims, or why there are none.
    pub fn claims(&self) -> Result<&Claims, AppError> {
        match &self.viewer {
            Viewer::Token(claims) => Ok(claims),
            Viewer::Anonymous => Err(AppError::Unauthenticated(UnauthReason::Missing)),
            Viewer::Rejected(reason) => Err(AppError::Unauthenticated(*reason)),
        }
    }

    /// The caller, proven: a valid token whose session is still alive.
    pub async fn require_user(&self, state: &AppState) -> Result<&AuthUser, AppError> {
        let claims = self.claims()?;
        self.checked
            .get_or_try_init(|| sessions::authenticate(state, claims))
            .await
    }
}

/// Typed access to what the HTTP layer and schema attached.
pub trait ContextExt {
    /// Shared server state.
    fn state(&self) -> Result<&AppState, AppError>;
    /// Facts about the request.
    fn meta(&self) -> Result<&RequestMeta, AppError>;
    /// The authentication state.
    fn auth(&self) -> Result<&RequestAuth, AppError>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> Result<&AppState, AppError> {
        self.data::<AppState>()
            .map_err(|_| AppError::internal("AppState missing from schema data"))
    }

    fn meta(&self) -> Result<&RequestMeta, AppError> {
        self.data::<RequestMeta>()
            .map_err(|_| AppError::internal("RequestMeta missing from request data"))
    }

    fn auth(&self) -> Result<&RequestAuth, AppError> {
        self.data::<RequestAuth>()
            .map_err(|_| AppError::internal("RequestAuth missing from request data"))
    }
}

/// Turns a service result into a resolver result, logging internal errors
/// with the request id. The one door from [`AppError`] to the client.
pub trait Respond<T> {
    /// Converts, attaching `extensions` for the client.
    fn respond(self, ctx: &Context<'_>) -> async_graphql::Result<T>;
}

impl<T> Respond<T> for Result<T, AppError> {
    fn respond(self, ctx: &Context<'_>) -> async_graphql::Result<T> {
        self.map_err(|err| {
            let request_id = ctx
                .meta()
                .map(|m| m.request_id.as_str())
                .unwrap_or("unknown");
            err.into_graphql(request_id)
        })
    }
}
