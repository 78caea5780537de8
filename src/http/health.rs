//! `/healthz` (the process serves), `/readyz` (its dependencies answer) and
//! `/metrics` (Prometheus text).

use std::{sync::Arc, time::Duration};

use poem::{handler, http::StatusCode, web::Data, IntoResponse, Response};

use super::HttpState;
use crate::auth::signing::JWKS_MAX_AGE;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The public keys that verify access tokens (RFC 7517), including a
/// rotated key that does not sign yet: `warden keys rotate` publishes it one
/// `max-age` before it signs, so a verifier's cached copy always knows the
/// `kid` it meets. Empty with HS256: a shared secret is never published.
#[handler]
pub async fn jwks(Data(http): Data<&Arc<HttpState>>) -> Response {
    let max_age = JWKS_MAX_AGE.as_secs();
    Response::builder()
        .content_type("application/json")
        .header("Cache-Control", format!("public, max-age={max_age}"))
        .body(http.app.tokens.jwks(http.app.clock.now()).to_string())
}

/// Prometheus text exposition.
#[handler]
pub async fn metrics(Data(http): Data<&Arc<HttpState>>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(http.app.metrics.render())
}

/// 200 while the process serves.
#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database (and Redis, when configured) answer in time, else
/// 503 naming what failed.
#[handler]
pub async fn readyz(Data(http): Data<&Arc<HttpState>>) -> Response {
    let database = match tokio::time::timeout(READY_TIMEOUT, http.app.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Some("database unavailable")
        }
        Err(_) => Some("database timed out"),
    };
    let redis = match tokio::time::timeout(READY_TIMEOUT, http.app.limits.ready()).await {
        Ok(None | Some(Ok(()))) => None,
        Ok(Some(Err(err))) => {
            tracing::warn!(error = %err, "readiness: redis check failed");
            Some("redis unavailable")
        }
        Err(_) => Some("redis timed out"),
    };
    let failures: Vec<&str> = database.into_iter().chain(redis).collect();
    if failures.is_empty() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, failures.join("; ")).into_response()
    }
}
