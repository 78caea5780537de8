//! Per-request context: who is calling and from where, read through
//! [`ContextExt`] rather than raw `ctx.data::<T>()` lookups.
//!
//! Authentication has three states, kept apart on purpose: no header
//! (anonymous), a header that failed verification (rejected, so the client
//! learns `UNAUTHENTICATED` and refreshes instead of being silently
//! anonymous), and a verified token whose session is then checked.
//!
//! An API key (`Bearer wdn_…`) is a fourth kind of header: its shape and
//! checksum are checked by the HTTP layer, its bucket and its row when a
//! field first asks for the caller.

use std::sync::Mutex;

use async_graphql::Context;

use crate::{
    auth::{api_key::PresentedKey, jwt::Claims},
    error::{AppError, UnauthReason},
    graphql::cookies::{CookieIntent, ResponseCookies},
    meta::RequestMeta,
    services::{
        api_keys,
        sessions::{self, AuthUser},
    },
    state::AppState,
};

pub use crate::graphql::cookies::RefreshCookie;

/// What the `Authorization` header said, after signature and claim checks.
#[derive(Clone, Debug)]
pub enum Viewer {
    /// No `Authorization` header.
    Anonymous,
    /// A token that verified; its session is not checked yet.
    Token(Claims),
    /// A genuine token past its expiry: refused everywhere except `logout`.
    Expired(Claims),
    /// A well-formed API key (looked up by the HTTP layer before anything
    /// runs, which then attaches its caller).
    ApiKey(PresentedKey),
    /// A live API key without the `USER` or `ADMIN` scope (an
    /// `INTROSPECT` key): it may run nothing that needs a caller.
    KeyWithoutScope,
    /// A header or token that did not verify.
    Rejected(UnauthReason),
}

/// The per-request authentication state: the viewer and, once checked, the
/// caller whose session is alive (one database check serves every field of
/// the request until a field ends the session).
#[derive(Debug)]
pub struct RequestAuth {
    viewer: Viewer,
    /// The request, for an API key's rate limit and audit row.
    meta: Option<RequestMeta>,
    checked: Mutex<Option<AuthUser>>,
}

impl RequestAuth {
    /// Wraps what the header said.
    pub fn new(viewer: Viewer) -> Self {
        Self {
            viewer,
            meta: None,
            checked: Mutex::new(None),
        }
    }

    /// The caller, when the HTTP layer has already proven it (a live API
    /// key, looked up once per request).
    pub fn with_caller(self, caller: Option<AuthUser>) -> Self {
        if let Some(caller) = caller {
            if let Ok(mut slot) = self.checked.lock() {
                *slot = Some(caller);
            }
        }
        self
    }

    /// The request the header came with (needed to check an API key).
    pub fn with_meta(self, meta: RequestMeta) -> Self {
        Self {
            meta: Some(meta),
            ..self
        }
    }

    /// The verified, unexpired claims, or why there are none.
    pub fn claims(&self) -> Result<&Claims, AppError> {
        match &self.viewer {
            Viewer::Token(claims) => Ok(claims),
            Viewer::Expired(_) => Err(AppError::Unauthenticated(UnauthReason::Expired)),
            Viewer::Anonymous => Err(AppError::Unauthenticated(UnauthReason::Missing)),
            Viewer::Rejected(reason) => Err(AppError::Unauthenticated(*reason)),
            // An API key has no session, so nothing that needs one (logout).
            Viewer::ApiKey(_) | Viewer::KeyWithoutScope => Err(AppError::Forbidden),
        }
    }

    /// Claims good enough to end their own session: genuine, possibly
    /// expired. Logging out must work for a client whose token just lapsed.
    pub fn claims_for_logout(&self) -> Result<&Claims, AppError> {
        match &self.viewer {
            Viewer::Expired(claims) => Ok(claims),
            _ => self.claims(),
        }
    }

    /// The caller, proven: a valid token whose session is still alive, or
    /// a live API key with the `USER` or `ADMIN` scope (its bucket spent
    /// once per request).
    pub async fn require_user(&self, state: &AppState) -> Result<AuthUser, AppError> {
        if let Some(user) = self.cached() {
            return Ok(user);
        }
        let user = match &self.viewer {
            Viewer::ApiKey(presented) => {
                let meta = self
                    .meta
                    .as_ref()
                    .ok_or_else(|| AppError::internal("RequestAuth without RequestMeta"))?;
                api_keys::caller(state, meta, presented).await?
            }
            Viewer::KeyWithoutScope => return Err(AppError::Forbidden),
            _ => sessions::authenticate(state, self.claims()?).await?,
        };
        if let Ok(mut slot) = self.checked.lock() {
            *slot = Some(user.clone());
        }
        Ok(user)
    }

    /// Drops the cached check after a field ended sessions, so later fields
    /// of the same request see the revocation.
    pub fn forget(&self) {
        if let Ok(mut slot) = self.checked.lock() {
            *slot = None;
        }
    }

    fn cached(&self) -> Option<AuthUser> {
        self.checked.lock().ok().and_then(|slot| slot.clone())
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
    /// The refresh cookies, in cookie mode (empty otherwise).
    fn refresh_cookies(&self) -> &[String];
    /// In cookie mode, sets (or with `None` clears) the refresh cookie: the
    /// HTTP layer writes the `Set-Cookie` header after execution.
    fn set_refresh_cookie(&self, token: Option<(&str, i64)>);
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

    fn refresh_cookies(&self) -> &[String] {
        self.data::<RefreshCookie>()
            .map(|c| c.0.as_slice())
            .unwrap_or_default()
    }

    fn set_refresh_cookie(&self, token: Option<(&str, i64)>) {
        let Ok(state) = self.state() else { return };
        if !state.config.refresh_cookie.enabled() {
            return;
        }
        // Without the HTTP layer (a schema run on its own) there is no
        // response to carry a cookie.
        let Ok(cookies) = self.data::<ResponseCookies>() else {
            return;
        };
        cookies.record(match token {
            Some((token, max_age)) => CookieIntent::SetRefresh {
                token: token.into(),
                max_age,
            },
            None => CookieIntent::ClearRefresh,
        });
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
            super::errors::into_graphql(err, request_id)
        })
    }
}
