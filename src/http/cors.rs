//! CORS for browser apps on other origins (`WARDEN_CORS_ORIGINS`).
//!
//! Only listed origins get a grant, always echoed exactly (never `*`, which
//! browsers forbid with credentials anyway), with credentials allowed so
//! cookie mode works. An unlisted origin gets no CORS headers at all: its
//! browser refuses to hand the response to the page. Requests without an
//! `Origin` (curl, servers, same-origin GETs) are untouched.

use std::sync::Arc;

use poem::{
    http::{header, HeaderValue, Method, StatusCode},
    Endpoint, IntoResponse, Request, Response,
};

/// The configured allow-list.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Arc<Vec<String>>,
}

impl Cors {
    /// CORS for `origins` (already validated, no trailing slash).
    pub fn new(origins: Vec<String>) -> Self {
        Self {
            origins: Arc::new(origins),
        }
    }

    fn allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// Answers a preflight, or runs `next` and adds the grant headers.
    pub async fn handle<E: Endpoint>(&self, next: &E, req: Request) -> poem::Result<Response> {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let granted = origin
            .as_deref()
            .filter(|o| self.allowed(o))
            .map(str::to_owned);
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut response = StatusCode::NO_CONTENT.into_response();
            if let Some(origin) = &granted {
                grant(&mut response, origin);
                let headers = response.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
            return Ok(response);
        }
        let mut response = next.call(req).await?.into_response();
        if let Some(origin) = &granted {
            grant(&mut response, origin);
            response.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("retry-after, x-request-id"),
            );
        }
        Ok(response)
    }
}

fn grant(response: &mut Response, origin: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}
