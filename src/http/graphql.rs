//! `POST /graphql` and `GET /graphql`.
//!
//! A POST must be `application/json`: a browser can send a cross-site form
//! (`text/plain`, urlencoded, multipart) without a CORS preflight, so those
//! are refused with 415 before anything executes. A GET may run queries but
//! never a mutation (405), since GETs can be triggered by links and images,
//! not even one named only by its persisted-query hash.
//!
//! Media types, status codes and the request's shape follow the GraphQL
//! over HTTP spec ([`over_http`]).

use std::{net::IpAddr, sync::Arc, time::Instant};

use async_graphql::{
    parser::types::{DocumentOperations, OperationType},
    BatchRequest, BatchResponse, ServerError,
};
use poem::{
    handler,
    http::{header, HeaderMap, StatusCode},
    web::Data,
    Body, Request, Response,
};
use secrecy::ExposeSecret;
use serde_json::json;
use tracing::Instrument;

use super::{
    client_ip, cookie, device_cookie,
    over_http::{self, Media},
    HttpState,
};
use crate::auth::api_key::{self, PresentedKey};
use crate::auth::jwt::VerifyError;
use crate::auth::limiter::RateReport;
use crate::services::{api_keys, auth_user::AuthUser, limits, signing_keys};
use crate::{
    domain::Role,
    error::{AppError, UnauthReason},
    graphql::documents::DocumentCache,
    graphql::persisted::{self, Persisted},
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
        let Some(media) = over_http::negotiate(req.headers()) else {
            return not_acceptable(&meta);
        };
        let refuse = |status, message: &str| refuse_in(media, status, message, &meta);
        // The head had WARDEN_IDLE_TIMEOUT to arrive; the body gets as long,
        // so a client trickling it cannot hold the connection open forever.
        let config = &http.app.config;
        let read = body.into_bytes_limit(config.max_body_bytes);
        let Ok(read) = tokio::time::timeout(config.idle_timeout, read).await else {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            }
            Err(_) => return refuse(StatusCode::BAD_REQUEST, "could not read the request body"),
        };
        let batch = match over_http::parse_body(&bytes) {
            Ok(batch) => batch,
            Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
        };
        if let BatchRequest::Batch(ops) = &batch {
            let max = http.app.config.max_batch;
            if max <= 1 {
                return refuse(StatusCode::BAD_REQUEST, "batched requests are not allowed");
            }
            if ops.len() > max || ops.is_empty() {
                return refuse(StatusCode::BAD_REQUEST, "too many operations in one batch");
            }
        }
        execute(http, req, batch, meta, media).await
    }
    .instrument(span)
    .await
}

/// `GET /graphql`: GraphiQL for a browser, or a query from the URL.
#[handler]
pub async fn get(req: &Request, Data(http): Data<&Arc<HttpState>>) -> Response {
    let meta = request_meta(req, http);
    let query = req.uri().query().unwrap_or_default();
    if !over_http::is_graphql_query_string(query) {
        if http.app.config.introspection && accepts_html(req.headers()) {
            return super::graphiql::page();
        }
        return refuse(
            StatusCode::BAD_REQUEST,
            "send a query with ?query=… or POST JSON",
            &meta,
        );
    }
    let Some(media) = over_http::negotiate(req.headers()) else {
        return not_acceptable(&meta);
    };
    let mut request = match over_http::parse_query_string(query) {
        Ok(request) => request,
        Err(why) => return refuse_in(media, StatusCode::BAD_REQUEST, why, &meta),
    };
    // A hash alone names a document the cache may hold. It is resolved
    // here, once: the method rule applies to the text that will run, and the
    // executor then gets that text with its hash (checked again), never a
    // second lookup that a registration in between could answer with a
    // mutation the check did not see.
    if request.query.is_empty() {
        match persisted::read(&request.extensions, "") {
            Ok(Persisted::None) => {}
            Ok(_) => {
                let known = http
                    .schema
                    .data::<DocumentCache>()
                    .and_then(|cache| cache.persisted_text(&request.extensions));
                match known {
                    Some(text) => request.query = text,
                    None => return request_error(media, persisted::not_found(), &meta),
                }
            }
            Err(error) => return request_error(media, error, &meta),
        }
    }
    if is_mutation(&request.query, request.operation_name.as_deref()) {
        let mut response = refuse_in(
            media,
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations must be sent with POST",
            &meta,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
        return response;
    }
    let span = tracing::info_span!("request", request_id = %meta.request_id, method = "GET");
    execute(http, req, BatchRequest::Single(request), meta, media)
        .instrument(span)
        .await
}

async fn execute(
    http: &HttpState,
    req: &Request,
    batch: BatchRequest,
    meta: RequestMeta,
    media: Media,
) -> Response {
    let started = Instant::now();
    super::access::record_operation(req, &batch);
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
    let rate_report = RateReport::new();
    let operations = match &batch {
        BatchRequest::Single(_) => None,
        BatchRequest::Batch(requests) => Some(requests.len()),
    };
    let mut refused_with: Option<StatusCode> = None;
    let execution = async {
        // An API key is looked up once, here, its own bucket spent first;
        // a key that names no live key is anonymous from here on.
        let (viewer, known) = match resolve_key(http, &meta, viewer).await {
            Ok(resolved) => resolved,
            Err(err) => {
                refused_with = Some(refusal_status(&err));
                return refused_operations(err, operations, &meta.request_id);
            }
        };
        // The caller's quota next: a refused request is not parsed.
        let caller = quota_caller(&viewer);
        let units = operations.unwrap_or(1);
        if let Err(err) = limits::spend_caller_quota(&http.app, &meta, caller, units).await {
            refused_with = Some(refusal_status(&err));
            return refused_operations(err, operations, &meta.request_id);
        }
        let mut attach = |request: async_graphql::Request| {
            let auth = RequestAuth::new(viewer.clone())
                .with_meta(meta.clone())
                .with_caller(known.clone());
            let request = request
                .data(meta.clone())
                .data(auth)
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
        http.schema.execute_batch(batch).await
    };
    let response = limits::reporting(rate_report.clone(), execution).await;
    let errors: Vec<&ServerError> = match &response {
        BatchResponse::Single(r) => r.errors.iter().collect(),
        BatchResponse::Batch(rs) => rs.iter().flat_map(|r| r.errors.iter()).collect(),
    };
    let retry_after = errors.iter().filter_map(|e| retry_after_of(e)).max();
    // A request error (nothing executed) is a 400 only under
    // graphql-response+json; under application/json it is a 200.
    let rejected = matches!(&response, BatchResponse::Single(r) if is_request_error(r));
    let status = if let Some(status) = refused_with {
        status
    } else if rejected && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = response_body(&response);
    tracing::debug!(
        status = status.as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "graphql request"
    );
    let mut builder = Response::builder()
        .status(status)
        .content_type(media.content_type())
        .header("X-Request-Id", request_id);
    // The cookies resolvers asked for, from every operation, in order.
    let attributes = cookie::Attributes::of(&http.app.config);
    for intent in set_cookies.iter().flat_map(ResponseCookies::take) {
        builder = builder.header(header::SET_COOKIE, set_cookie(&intent, &attributes));
    }
    if let Some(secs) = retry_after {
        builder = builder.header(header::RETRY_AFTER, secs.to_string());
    }
    builder = rate_limit_headers(builder, &rate_report);
    builder.body(body)
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10,
/// see [`RateReport`]) for the rules the operations checked; none when they
/// checked none (or limits are off).
fn rate_limit_headers(
    mut builder: poem::ResponseBuilder,
    report: &RateReport,
) -> poem::ResponseBuilder {
    if let (Some(policy), Some(limit)) = (report.policy_header(), report.limit_header()) {
        builder = builder
            .header("RateLimit-Policy", policy)
            .header("RateLimit", limit);
    }
    builder
}

/// True when `response` is a request error: the document did not parse,
/// validate or pass the gate, or its variables did not coerce, so nothing
/// executed. Such errors carry no path and there is no data.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The JSON body: a request error has no `data` key at all (the spec's
/// rule under both media types: `data: null` would claim an execution).
fn response_body(response: &BatchResponse) -> Vec<u8> {
    let strip = |r: &async_graphql::Response| {
        let mut value = serde_json::to_value(r).unwrap_or_default();
        if is_request_error(r) {
            if let Some(fields) = value.as_object_mut() {
                fields.remove("data");
            }
        }
        value
    };
    let body = match response {
        // The common case, an operation that ran, is written directly.
        BatchResponse::Single(r) if !is_request_error(r) => serde_json::to_vec(r),
        BatchResponse::Single(r) => serde_json::to_vec(&strip(r)),
        BatchResponse::Batch(rs) => serde_json::to_vec(&rs.iter().map(strip).collect::<Vec<_>>()),
    };
    body.unwrap_or_else(|_| b"{\"errors\":[{\"message\":\"internal error\"}]}".to_vec())
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

/// Whose quota a request spends, from what its header said (no lookup):
/// a verified access token's session and role, a live API key (its own
/// rule, spent at its lookup), or anyone else by IP.
fn quota_caller(viewer: &Viewer) -> limits::Caller {
    match viewer {
        Viewer::Token(claims) if claims.role == Role::Admin => limits::Caller::Admin(claims.sid),
        Viewer::Token(claims) => limits::Caller::User(claims.sid),
        Viewer::ApiKey(_) | Viewer::KeyWithoutScope => limits::Caller::ApiKey,
        Viewer::Anonymous | Viewer::Expired(_) | Viewer::Rejected(_) => limits::Caller::Anonymous,
    }
}

/// A presented API key, looked up: its caller (`Some`) when it is live
/// and may act (`USER` or `ADMIN` scope); [`Viewer::KeyWithoutScope`]
/// when it is live but may not; [`Viewer::Rejected`] when it names no live
/// key (so the request is anonymous, and its IP's quota pays for it). Its
/// `api_key` bucket spent first: an empty one refuses the request. Any
/// other viewer is returned as it is.
async fn resolve_key(
    http: &HttpState,
    meta: &RequestMeta,
    viewer: Viewer,
) -> Result<(Viewer, Option<AuthUser>), AppError> {
    let Viewer::ApiKey(presented) = viewer else {
        return Ok((viewer, None));
    };
    match api_keys::caller(&http.app, meta, &presented).await {
        Ok(caller) => Ok((Viewer::ApiKey(presented), Some(caller))),
        Err(AppError::Forbidden) => Ok((Viewer::KeyWithoutScope, None)),
        Err(AppError::Unauthenticated(reason)) => Ok((Viewer::Rejected(reason), None)),
        Err(err) => Err(err),
    }
}

/// The status of a request refused before it ran: 429 over a quota, 500
/// when the refusal itself failed.
fn refusal_status(err: &AppError) -> StatusCode {
    match err {
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The answer to a request refused by its caller's quota: each operation
/// answered `RATE_LIMITED` (with `retryAfter`), nothing executed;
/// `operations` is the batch's length, `None` for a single operation.
fn refused_operations(err: AppError, operations: Option<usize>, request_id: &str) -> BatchResponse {
    let error = crate::graphql::errors::into_graphql(err, request_id)
        .into_server_error(async_graphql::Pos::default());
    let one = || async_graphql::Response::from_errors(vec![error.clone()]);
    match operations {
        None => BatchResponse::Single(one()),
        Some(n) => BatchResponse::Batch((0..n).map(|_| one()).collect()),
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
    // A key with a wrong shape or checksum (a typo, a made-up key) is
    // refused here, before any lookup or rate-limit bucket.
    if api_key::is_api_key(token) {
        return match PresentedKey::parse(token) {
            Some(presented) => Viewer::ApiKey(presented),
            None => Viewer::Rejected(UnauthReason::Invalid),
        };
    }
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

/// The request's client, user agent and id.
pub(super) fn request_meta(req: &Request, http: &HttpState) -> RequestMeta {
    // Found once by the access layer, which wraps every route.
    let ip = super::access::client(req).unwrap_or_else(|| {
        let peer: Option<IpAddr> = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        client_ip(peer, forwarded, &http.app.config.trusted_proxies)
    });
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    RequestMeta::new(ip, user_agent, super::access::request_id(req))
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
    refuse_in(Media::Json, status, message, meta)
}

/// [`refuse`] in the media type the client asked for.
fn refuse_in(media: Media, status: StatusCode, message: &str, meta: &RequestMeta) -> Response {
    let body = json!({ "errors": [{ "message": message }] });
    Response::builder()
        .status(status)
        .content_type(media.content_type())
        .header("X-Request-Id", meta.request_id.clone())
        .body(body.to_string())
}

/// A request error answered before anything executes: errors and no
/// `data`, 400 under graphql-response+json and 200 under application/json,
/// as the executor would answer it.
fn request_error(media: Media, error: ServerError, meta: &RequestMeta) -> Response {
    let response = BatchResponse::Single(async_graphql::Response::from_errors(vec![error]));
    let status = match media {
        Media::GraphqlResponse => StatusCode::BAD_REQUEST,
        Media::Json => StatusCode::OK,
    };
    Response::builder()
        .status(status)
        .content_type(media.content_type())
        .header("X-Request-Id", meta.request_id.clone())
        .body(response_body(&response))
}

/// 406: `Accept` names neither media type a GraphQL response comes in.
fn not_acceptable(meta: &RequestMeta) -> Response {
    refuse(
        StatusCode::NOT_ACCEPTABLE,
        "Accept must allow application/graphql-response+json or application/json",
        meta,
    )
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
