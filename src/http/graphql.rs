//! `POST /graphql` and `GET /graphql`.
//!
//! A POST must be `application/json`: a browser can send a cross-site form
//! (`text/plain`, urlencoded, multipart) without a CORS preflight, so those
//! are refused with 415 before anything executes. A GET may run queries but
//! never a mutation (405), since GETs can be triggered by links and images.

use std::{net::IpAddr, sync::Arc, time::Instant};

use async_graphql::{
    http::{parse_query_string, GraphiQLSource},
    parser::types::{DocumentOperations, OperationType},
    BatchRequest, BatchResponse, ServerError,
};
use poem::{
    handler,
    http::{header, HeaderMap, StatusCode},
    web::{Data, Html},
    Body, IntoResponse, Request, Response,
};
use secrecy::ExposeSecret;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use super::{client_ip, cookie, device_cookie, HttpState};
use crate::auth::jwt::VerifyError;
use crate::services::signing_keys;
use crate::{
    error::UnauthReason,
    graphql::{
        context::{RequestAuth, Viewer},
        cookies::{CookieIntent, DeviceCookie, RefreshCookie, ResponseCookies},
    },
    meta::RequestMeta,
};

/// `POST /graphql`: one JSON operation (or a batch, when allowed).
#[handler]
pub async fn post(req: &Request, body: Body, Data(http): Data<&Arc<HttpState>>) -> Response {
    let meta = request_meta(req, http);
    let span = tracing::info_span!("request", request_id = %meta.request_id, method = "POST");
    async move {
        if !is_json(req.headers()) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST /graphql needs Content-Type: application/json",
                &meta,
            );
        }
        // The head had WARDEN_IDLE_TIMEOUT to arrive; the body gets as long,
        // so a client trickling it cannot hold the connection open forever.
        let config = &http.app.config;
        let read = body.into_bytes_limit(config.max_body_bytes);
        let Ok(read) = tokio::time::timeout(config.idle_timeout, read).await else {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
                &meta,
            );
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                    &meta,
                )
            }
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                    &meta,
                )
            }
        };
        let batch = match serde_json::from_slice::<BatchRequest>(&bytes) {
            Ok(batch) => batch,
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "the body is not a GraphQL request in JSON",
                    &meta,
                )
            }
        };
        if let BatchRequest::Batch(ops) = &batch {
            let max = http.app.config.max_batch;
            if max <= 1 {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "batched requests are not allowed",
                    &meta,
                );
            }
            if ops.len() > max || ops.is_empty() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "too many operations in one batch",
                    &meta,
                );
            }
        }
        execute(http, req, batch, meta).await
    }
    .instrument(span)
    .await
}

/// `GET /graphql`: GraphiQL for a browser, or a query from the URL.
#[handler]
pub async fn get(req: &Request, Data(http): Data<&Arc<HttpState>>) -> Response {
    let meta = request_meta(req, http);
    let query = req.uri().query().unwrap_or_default();
    if query.is_empty() || !query.split('&').any(|pair| pair.starts_with("query=")) {
        if http.app.config.introspection && accepts_html(req.headers()) {
            return Html(
                GraphiQLSource::build()
                    .endpoint("/graphql")
                    .title("Warden")
                    .finish(),
            )
            .into_response();
        }
        return refuse(
            StatusCode::BAD_REQUEST,
            "send a query with ?query=… or POST JSON",
            &meta,
        );
    }
    let request = match parse_query_string(query) {
        Ok(request) => request,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "could not read the query string",
                &meta,
            )
        }
    };
    if is_mutation(&request.query, request.operation_name.as_deref()) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations must be sent with POST",
            &meta,
        );
    }
    let span = tracing::info_span!("request", request_id = %meta.request_id, method = "GET");
    execute(http, req, BatchRequest::Single(request), meta)
        .instrument(span)
        .await
}

async fn execute(
    http: &HttpState,
    req: &Request,
    batch: BatchRequest,
    meta: RequestMeta,
) -> Response {
    let started = Instant::now();
    let viewer = viewer(req.headers(), http).await;
    let request_id = meta.request_id.clone();
    // The cookie is read only in cookie mode: otherwise a browser's stray
    // cookie must not stand in for a missing argument.
    let cookie = RefreshCookie(if http.app.config.refresh_cookie.enabled() {
        cookie::read_all(req.headers())
    } else {
        Vec::new()
    });
    let device = DeviceCookie(
        http.app
            .config
            .refresh_cookie
            .enabled()
            .then(|| device_cookie::read(req.headers()))
            .flatten(),
    );
    // In cookie mode, each operation records the cookies it sets in its
    // own list, read back below in operation order. Otherwise no resolver
    // sets one, and a request (a `me`, say) allocates no list.
    let cookie_mode = http.app.config.refresh_cookie.enabled();
    let mut set_cookies = Vec::new();
    let mut attach = |request: async_graphql::Request| {
        let request = request
            .data(meta.clone())
            .data(RequestAuth::new(viewer.clone()))
            .data(cookie.clone())
            .data(device.clone());
        if !cookie_mode {
            return request;
        }
        let cookies = ResponseCookies::new();
        set_cookies.push(cookies.clone());
        request.data(cookies)
    };
    let batch = match batch {
        BatchRequest::Single(request) => BatchRequest::Single(attach(request)),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(attach).collect())
        }
    };
    let response = http.schema.execute_batch(batch).await;
    let errors: Vec<&ServerError> = match &response {
        BatchResponse::Single(r) => r.errors.iter().collect(),
        BatchResponse::Batch(rs) => rs.iter().flat_map(|r| r.errors.iter()).collect(),
    };
    // A document that did not parse or validate never reached a field:
    // its errors carry no path and there is no data.
    let rejected = match &response {
        BatchResponse::Single(r) => {
            r.data == async_graphql::Value::Null
                && !r.errors.is_empty()
                && r.errors.iter().all(|e| e.path.is_empty())
        }
        BatchResponse::Batch(_) => false,
    };
    let retry_after = errors.iter().filter_map(|e| retry_after_of(e)).max();
    let status = if rejected {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_vec(&response)
        .unwrap_or_else(|_| b"{\"errors\":[{\"message\":\"internal error\"}]}".to_vec());
    tracing::debug!(
        status = status.as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "graphql request"
    );
    let mut builder = Response::builder()
        .status(status)
        .content_type("application/json")
        .header("X-Request-Id", request_id);
    // The cookies resolvers asked for, from every operation, in order.
    let attributes = cookie::Attributes::of(&http.app.config);
    for intent in set_cookies.iter().flat_map(ResponseCookies::take) {
        builder = builder.header(header::SET_COOKIE, set_cookie(&intent, &attributes));
    }
    if let Some(secs) = retry_after {
        builder = builder.header(header::RETRY_AFTER, secs.to_string());
    }
    builder.body(body)
}

/// The `Set-Cookie` value that carries out what a resolver asked.
fn set_cookie(intent: &CookieIntent, attributes: &cookie::Attributes<'_>) -> String {
    match intent {
        CookieIntent::SetRefresh { token, max_age } => {
            cookie::set(token.expose_secret(), *max_age, attributes)
        }
        CookieIntent::ClearRefresh => cookie::clear(attributes),
        CookieIntent::SetDevice { token, max_age } => {
            device_cookie::set(token.expose_secret(), *max_age, attributes)
        }
    }
}

/// `retryAfter` of a `RATE_LIMITED` or `ACCOUNT_LOCKED` error.
fn retry_after_of(err: &ServerError) -> Option<u64> {
    let ext = err.extensions.as_ref()?;
    let code = ext.get("code")?;
    let limited = matches!(code, async_graphql::Value::String(c) if c == "RATE_LIMITED" || c == "ACCOUNT_LOCKED");
    if !limited {
        return None;
    }
    match ext.get("retryAfter")? {
        async_graphql::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Verifies the bearer token, if any. Only the `Authorization` header is
/// read: a token in the URL or the body is ignored.
async fn viewer(headers: &HeaderMap, http: &HttpState) -> Viewer {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Viewer::Anonymous;
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Viewer::Rejected(UnauthReason::Invalid);
    };
    let tokens = &http.app.tokens;
    let mut verdict = tokens.verify(token, http.app.clock.now());
    // A kid we do not know may be a key another instance just rotated in:
    // reload the keys (at most once a second) and try once more.
    if verdict == Err(VerifyError::UnknownKid) && tokens.may_reload() {
        let app = &http.app;
        match signing_keys::reload(&app.db, &app.config, tokens, app.clock.now()).await {
            Ok(()) => verdict = tokens.verify(token, app.clock.now()),
            Err(err) => tracing::warn!(error = %err, "could not reload signing keys"),
        }
    }
    match verdict {
        Ok(claims) => Viewer::Token(claims),
        Err(VerifyError::Refused(UnauthReason::Expired)) => {
            match tokens.verify_ignoring_expiry(token) {
                Ok(claims) => Viewer::Expired(claims),
                Err(reason) => Viewer::Rejected(reason),
            }
        }
        Err(VerifyError::Refused(reason)) => Viewer::Rejected(reason),
        Err(VerifyError::UnknownKid) => Viewer::Rejected(UnauthReason::Invalid),
    }
}

fn request_meta(req: &Request, http: &HttpState) -> RequestMeta {
    let peer: Option<IpAddr> = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let ip = client_ip(peer, forwarded, &http.app.config.trusted_proxies);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    RequestMeta::new(ip, user_agent, Uuid::new_v4().to_string())
        .with_ipv6_prefix(http.app.config.ipv6_prefix)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// True when the operation that would run is a mutation (or a subscription).
/// A document that does not parse is left to the executor to refuse.
fn is_mutation(query: &str, operation_name: Option<&str>) -> bool {
    // The gate's cheap pre-scan first, so a hostile GET is not parsed here
    // outside it; a text it refuses never executes, mutation or not.
    if crate::graphql::cost::check_text(query, &crate::graphql::LIMITS).is_err() {
        return false;
    }
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let ty = match &doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, op)| op.node.ty),
            // Without a name the executor refuses the document; any mutation in it counts.
            None => ops
                .values()
                .find(|op| op.node.ty != OperationType::Query)
                .map(|op| op.node.ty),
        },
    };
    ty.is_some_and(|t| t != OperationType::Query)
}

/// A transport-level refusal: nothing executed.
fn refuse(status: StatusCode, message: &str, meta: &RequestMeta) -> Response {
    let body = json!({ "errors": [{ "message": message }] });
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header("X-Request-Id", meta.request_id.clone())
        .body(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_found_whatever_the_document_shape() {
        assert!(is_mutation("mutation { logout }", None));
        assert!(!is_mutation("{ me { id } }", None));
        assert!(is_mutation(
            "query A { me { id } } mutation B { logout }",
            Some("B")
        ));
        assert!(!is_mutation(
            "query A { me { id } } mutation B { logout }",
            Some("A")
        ));
        assert!(is_mutation(
            "query A { me { id } } mutation B { logout }",
            None
        ));
    }
}
