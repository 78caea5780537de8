//! `POST /oauth/introspect`: token introspection (RFC 7662) for resource
//! servers and gateways, so they honour logouts and revoked keys without
//! reading Warden's database.
//!
//! The caller sends `Authorization: Bearer wdn_…` (an API key with the
//! `INTROSPECT` scope) and a form-encoded `token`: 401 without a valid key,
//! 403 without the scope, 429 when the key's bucket is empty, and
//! otherwise 200 with `{"active": …}`. The answer is never cached.

use std::sync::Arc;

use poem::{
    handler,
    http::{header, HeaderMap, StatusCode},
    web::Data,
    Body, Request, Response,
};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::HttpState;
use crate::{auth::api_key::PresentedKey, error::AppError, services::api_keys::introspect};

/// The form body (RFC 7662 §2.1); `token_type_hint` is accepted and not
/// needed: the token's shape says what it is.
#[derive(Deserialize)]
struct Form {
    token: Option<String>,
}

/// `POST /oauth/introspect`.
#[handler]
pub async fn post(req: &Request, body: Body, Data(http): Data<&Arc<HttpState>>) -> Response {
    let meta = super::graphql::request_meta(req, http);
    let span = tracing::info_span!("request", request_id = %meta.request_id, method = "POST", route = "introspect");
    async move {
        let Some(caller) = bearer_key(req.headers()) else {
            return unauthorized();
        };
        if !is_form(req.headers()) {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "error": "invalid_request", "error_description": "send application/x-www-form-urlencoded" }),
            );
        }
        let config = &http.app.config;
        let read = body.into_bytes_limit(config.max_body_bytes);
        let bytes = match tokio::time::timeout(config.idle_timeout, read).await {
            Ok(Ok(bytes)) => bytes,
            _ => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "invalid_request", "error_description": "could not read the request body" }),
                )
            }
        };
        let Some(token) = serde_urlencoded::from_bytes::<Form>(&bytes)
            .ok()
            .and_then(|form| form.token)
            .filter(|t| !t.is_empty())
        else {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_request", "error_description": "the form needs a token" }),
            );
        };
        match introspect::introspect(&http.app, &meta, &caller, token.trim()).await {
            Ok(body) => answer(StatusCode::OK, body),
            Err(AppError::Unauthenticated(_)) => unauthorized(),
            Err(AppError::Forbidden) => answer(
                StatusCode::FORBIDDEN,
                json!({ "error": "insufficient_scope", "error_description": "the key lacks the INTROSPECT scope" }),
            ),
            Err(AppError::RateLimited { retry_after }) => {
                let mut response = answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({ "error": "rate_limited" }),
                );
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Err(err) => {
                tracing::error!(error = ?err, "introspection failed");
                let status = match err {
                    AppError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                answer(status, json!({ "error": "server_error" }))
            }
        }
    }
    .instrument(span)
    .await
}

/// The caller's key from `Authorization: Bearer`, if well formed.
fn bearer_key(headers: &HeaderMap) -> Option<PresentedKey> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    PresentedKey::parse(token.trim())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn unauthorized() -> Response {
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "invalid_token", "error_description": "send an API key with the INTROSPECT scope as Authorization: Bearer" }),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}
