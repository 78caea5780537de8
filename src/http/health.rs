//! `/healthz` (the process serves) and `/readyz` (its dependencies answer).

use std::{sync::Arc, time::Duration};

use poem::{handler, http::StatusCode, web::Data, IntoResponse, Response};

use super::HttpState;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process serves.
#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the database answers in time, else 503 naming what failed.
#[handler]
pub async fn readyz(Data(http): Data<&Arc<HttpState>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, http.app.db.ping()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out").into_response(),
    }
}
