//! The HTTP surface: one GraphQL endpoint, health and readiness.
//!
//! Everything security-relevant about the transport happens here, before a
//! resolver runs: the content type, the body size, batching, GET mutations,
//! the bearer header and the client IP.

mod access;
pub mod caps;
mod client_ip;
pub mod cookie;
mod cors;
pub mod device_cookie;
pub mod fd_limit;
mod graphiql;
mod graphql;
mod health;
mod introspect;
mod landing;
mod over_http;
pub mod serve;

use std::sync::Arc;

use poem::{get, http::header, middleware::SetHeader, EndpointExt, Route};

use crate::{graphql::WardenSchema, state::AppState};

pub use client_ip::client_ip;

/// What every HTTP handler reads.
pub struct HttpState {
    /// The schema, built once.
    pub schema: WardenSchema,
    /// The server state.
    pub app: AppState,
}

/// The routes of a Warden server. `/metrics` is among them unless
/// `WARDEN_METRICS_LISTEN` moves it to [`metrics_routes`].
pub fn routes(schema: WardenSchema, app: AppState) -> impl poem::Endpoint {
    let cors = cors::Cors::from_config(&app.config);
    let access = access::Access::new(app.config.trusted_proxies.clone(), app.metrics.clone());
    let metrics_here = app.config.metrics_listen.is_none();
    let state = Arc::new(HttpState { schema, app });
    let mut route = Route::new()
        .at(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                // Answers carry tokens: no cache may keep one (RFC 6749
                // §5.1), and no browser may read JSON as anything else.
                .with(
                    SetHeader::new()
                        .overriding(header::CACHE_CONTROL, "no-store")
                        .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ),
        )
        .at("/oauth/introspect", poem::post(introspect::post))
        .at("/graphiql/:version/:file", get(graphiql::assets))
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        .at("/.well-known/jwks.json", get(health::jwks));
    if metrics_here {
        route = route.at("/metrics", get(health::metrics));
    }
    // The pages mailed links open when WARDEN_APP_URL is unset.
    route = landing::register(route);
    route
        .data(state)
        .around(move |ep, req| {
            let cors = cors.clone();
            async move { cors.handle(&ep, req).await }
        })
        .around(move |ep, req| {
            let access = access.clone();
            async move { access.handle(&ep, req).await }
        })
}

/// `/metrics` alone, for the `WARDEN_METRICS_LISTEN` listener.
pub fn metrics_routes(schema: WardenSchema, app: AppState) -> impl poem::Endpoint {
    let access = access::Access::new(app.config.trusted_proxies.clone(), app.metrics.clone());
    let state = Arc::new(HttpState { schema, app });
    Route::new()
        .at("/metrics", get(health::metrics))
        .data(state)
        .around(move |ep, req| {
            let access = access.clone();
            async move { access.handle(&ep, req).await }
        })
}
