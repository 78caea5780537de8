//! CORS for browser apps on other origins (`WARDEN_CORS_ORIGINS`).
//!
//! Only listed origins get a grant, always echoed exactly (never `*`, which
//! browsers forbid with credentials anyway), with credentials allowed so
//! cookie mode works. An unlisted origin gets no CORS headers at all: its
//! browser refuses to hand the response to the page. Requests without an
//! `Origin` (curl, servers, same-origin GETs) are untouched.
//!
//! A preflight of a listed origin is answered with exactly the configured
//! request headers (`WARDEN_CORS_ALLOW_HEADERS`), never an echo of what it
//! asked: a request header outside the list gets no allow, and the browser
//! refuses the request, naming that header in its console. The answer may
//! be cached for `WARDEN_CORS_MAX_AGE`. Responses expose the headers a
//! client needs to back off and to report (`Retry-After`, `RateLimit`,
//! `RateLimit-Policy`, `X-Request-Id`).

use std::{sync::Arc, time::Duration};

use poem::{
    http::{header, HeaderValue, Method, StatusCode},
    Endpoint, IntoResponse, Request, Response,
};

use crate::config::Config;

/// The response headers a page on a granted origin may read.
const EXPOSED: &str = "retry-after, ratelimit, ratelimit-policy, x-request-id";

/// The configured allow-list and preflight answer.
#[derive(Clone, Debug)]
pub struct Cors {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origins: Vec<String>,
    /// `Access-Control-Allow-Headers`: the allowed names, comma-separated.
    allow_headers: Option<HeaderValue>,
    /// `Access-Control-Max-Age`, in seconds.
    max_age: HeaderValue,
}

impl Cors {
    /// CORS for `origins` (already validated, no trailing slash), allowing
    /// the request headers `allow_headers` (validated names) and letting
    /// browsers cache a preflight for `max_age`.
    pub fn new(origins: Vec<String>, allow_headers: &[String], max_age: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                origins,
                allow_headers: HeaderValue::from_str(&allow_headers.join(", ")).ok(),
                max_age: HeaderValue::from(max_age.as_secs()),
            }),
        }
    }

    /// CORS as the settings say.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            config.cors_origins.clone(),
            &config.cors_allow_headers,
            config.cors_max_age,
        )
    }

    fn allowed(&self, origin: &str) -> bool {
        self.inner.origins.iter().any(|o| o == origin)
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
                if let Some(allowed) = &self.inner.allow_headers {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
                }
                headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.inner.max_age.clone());
            }
            return Ok(response);
        }
        let mut response = next.call(req).await?.into_response();
        if let Some(origin) = &granted {
            grant(&mut response, origin);
            response.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
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
