//! The HTTP surface: one GraphQL endpoint, health and readiness.
//!
//! Everything security-relevant about the transport happens here, before a
//! resolver runs: the content type, the body size, batching, GET mutations,
//! the bearer header and the client IP.

pub mod caps;
mod client_ip;
pub mod cookie;
mod cors;
pub mod device_cookie;
pub mod fd_limit;
mod graphql;
mod health;
pub mod serve;

use std::sync::Arc;

use poem::{get, EndpointExt, Route};

use crate::{graphql::WardenSchema, state::AppState};

pub use client_ip::client_ip;

/// What every HTTP handler reads.
pub struct HttpState {
    /// The schema, built once.
    pub schema: WardenSchema,
    /// The server state.
    pub app: AppState,
}

/// The routes of a Warden server.
pub fn routes(schema: WardenSchema, app: AppState) -> impl poem::Endpoint {
    let cors = cors::Cors::from_config(&app.config);
    let state = Arc::new(HttpState { schema, app });
    Route::new()
        .at("/graphql", get(graphql::get).post(graphql::post))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/metrics", get(health::metrics))
        .at("/.well-known/jwks.json", get(health::jwks))
        .data(state)
        .around(move |ep, req| {
            let cors = cors.clone();
            async move { cors.handle(&ep, req).await }
        })
}
