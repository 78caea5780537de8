//! `/healthz` (the process serves), `/readyz` (its dependencies answer) and
//! `/metrics` (Prometheus text).

use std::{
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use poem::{handler, http::StatusCode, web::Data, IntoResponse, Response};

use super::HttpState;
use crate::{auth::signing::JWKS_MAX_AGE, telemetry::once_a_second};

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

/// Prometheus text exposition. The dependencies are checked first, so
/// `warden_dependency_up` is current even when nothing probes `/readyz`.
#[handler]
pub async fn metrics(Data(http): Data<&Arc<HttpState>>) -> Response {
    check(http).await;
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(http.app.metrics.render())
}

/// 200 while the process serves.
#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

/// What the dependencies answered.
struct Checks {
    /// `None` when the database answered in time, else why not.
    database: Option<&'static str>,
    /// `None` when Redis answered or is not configured, else why not.
    redis: Option<&'static str>,
}

/// Asks the database and Redis (when configured), each within
/// [`READY_TIMEOUT`], and records the answers in `warden_dependency_up`.
async fn check(http: &HttpState) -> Checks {
    let app = &http.app;
    let (database, redis) = tokio::join!(
        tokio::time::timeout(READY_TIMEOUT, app.db.ping()),
        tokio::time::timeout(READY_TIMEOUT, app.limits.ready()),
    );
    let database = match database {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            // Probes are unauthenticated: a flood of them during an outage
            // must not become a flood of log lines.
            static LAST: AtomicU64 = AtomicU64::new(u64::MAX);
            if once_a_second(&LAST) {
                tracing::warn!(error = %err, "readiness: database check failed");
            }
            Some("database unavailable")
        }
        Err(_) => Some("database timed out"),
    };
    let up = |failed: Option<&str>| i64::from(failed.is_none());
    let gauge = &app.metrics.dependency_up;
    gauge.with_label_values(&["database"]).set(up(database));
    let redis = match redis {
        Ok(None) => {
            return Checks {
                database,
                redis: None,
            }
        }
        Ok(Some(Ok(()))) => None,
        Ok(Some(Err(err))) => {
            static LAST: AtomicU64 = AtomicU64::new(u64::MAX);
            if once_a_second(&LAST) {
                tracing::warn!(error = %err, "readiness: redis check failed");
            }
            Some("redis unavailable")
        }
        Err(_) => Some("redis timed out"),
    };
    gauge.with_label_values(&["redis"]).set(up(redis));
    Checks { database, redis }
}

/// Whether this instance should get traffic.
///
/// - `200 ready`: every dependency answered.
/// - `200 degraded: redis unavailable`: the database answers but the shared
///   rate limiter does not. Each instance limits in its own memory until
///   Redis is back (limits are per instance meanwhile, counted in
///   `warden_limiter_fallbacks_total`), so the instance still serves:
///   taking every instance out of the load balancer because Redis blinked
///   would turn a degraded limiter into a full outage.
/// - `503 database unavailable` (or `timed out`): nothing can be served.
#[handler]
pub async fn readyz(Data(http): Data<&Arc<HttpState>>) -> Response {
    let checks = check(http).await;
    match (checks.database, checks.redis) {
        (Some(database), redis) => {
            let failures: Vec<&str> = std::iter::once(database).chain(redis).collect();
            (StatusCode::SERVICE_UNAVAILABLE, failures.join("; ")).into_response()
        }
        (None, Some(redis)) => format!("degraded: {redis}").into_response(),
        (None, None) => "ready".into_response(),
    }
}
