//! The access log and the request's identity: one line per request, its
//! request id and its W3C trace context.
//!
//! Every request gets a request id: the caller's `X-Request-Id` when it is
//! 1 to 128 characters of `[A-Za-z0-9._:-]` (what proxies and tracing
//! systems send), otherwise a fresh UUID (the refused value is not logged:
//! it is whatever a client chose to write). The id is echoed in the
//! response's `X-Request-Id`, carried into the GraphQL request (internal
//! errors log it and return it as `requestId`) and written in the access
//! line. A valid W3C `traceparent` (`version-traceid-parentid-flags`, ids
//! not all zeros) is kept: its trace id and parent id are logged as
//! `trace_id` and `parent_id`, so the line can be found from a trace.
//! `traceparent` is a request header in Trace Context: a server sends it on
//! to the services it calls, never back to its caller, so the response
//! does not carry it.
//!
//! The access line (target `warden::access`, message `request`) has the
//! method, the path *without* its query string (a GET query's variables
//! live there), the status, `duration_ms`, the GraphQL operation name when
//! the request named one (a GraphQL name, recorded by the GraphQL handler
//! through [`record_operation`]; never variables or the document), the
//! request id, the trace id and the client IP as Warden sees it (the peer,
//! or the `X-Forwarded-For` entry a trusted proxy vouches for). Probes and
//! scrapes (`/healthz`, `/readyz`, `/metrics`) are logged at DEBUG: a
//! kubelet asking every few seconds would otherwise drown the log. Every
//! response is also counted in `warden_http_responses_total{status}`.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use async_graphql::BatchRequest;
use ipnet::IpNet;
use poem::{
    http::{HeaderName, HeaderValue},
    Endpoint, IntoResponse, Request, Response,
};
use uuid::Uuid;

use super::client_ip;
use crate::metrics::Metrics;

/// The request id header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The W3C Trace Context header.
const TRACEPARENT: &str = "traceparent";

/// Longest request id kept from a caller.
const MAX_REQUEST_ID: usize = 128;

/// Longest path written in the access line, in bytes; the rest is cut.
const MAX_LOGGED_PATH: usize = 256;

/// Longest operation name written in the access line.
const MAX_OPERATION_NAME: usize = 128;

/// Paths hit by probes and scrapers, logged at DEBUG instead of INFO.
const QUIET_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// What the access layer knows of one request, in its extensions.
#[derive(Debug)]
pub struct RequestContext {
    /// The caller's valid `X-Request-Id`, or a fresh UUID.
    pub request_id: String,
    /// The client IP (the peer, or what a trusted proxy forwarded), found
    /// once per request: the handlers' `RequestMeta` reads it from here.
    pub client: Option<IpAddr>,
    /// The GraphQL operation name, once the handler has read the request.
    operation: Mutex<Option<String>>,
}

/// The access log and response counter, around every route.
#[derive(Clone, Debug)]
pub struct Access {
    trusted_proxies: Arc<Vec<IpNet>>,
    metrics: Arc<Metrics>,
}

impl Access {
    /// Logs and counts with these trusted proxies and metrics.
    pub fn new(trusted_proxies: Vec<IpNet>, metrics: Arc<Metrics>) -> Self {
        Self {
            trusted_proxies: Arc::new(trusted_proxies),
            metrics,
        }
    }

    /// Gives the request its id, runs `next`, echoes the id, logs the line.
    pub async fn handle<E: Endpoint>(&self, next: &E, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let incoming = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok());
        let (request_id, replaced) = match incoming {
            Some(id) if valid_request_id(id) => (id.to_owned(), false),
            Some(_) => (Uuid::new_v4().to_string(), true),
            None => (Uuid::new_v4().to_string(), false),
        };
        let trace = req
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let client_addr = client_ip(peer, forwarded, &self.trusted_proxies);
        let client = client_addr.map(|ip| ip.to_string()).unwrap_or_default();
        let method = req.method().as_str().to_owned();
        let path = logged_path(req.uri().path());
        let context = Arc::new(RequestContext {
            request_id: request_id.clone(),
            client: client_addr,
            operation: Mutex::new(None),
        });
        req.extensions_mut().insert(context.clone());

        let mut response = match next.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let status = response.status().as_u16();
        self.metrics
            .http_responses
            .with_label_values(&[&status.to_string()])
            .inc();
        let operation = context
            .operation
            .lock()
            .map(|op| op.clone())
            .unwrap_or_default();
        let duration_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        let trace_id = trace.as_ref().map(|t| t.trace_id.as_str());
        let parent_id = trace.as_ref().map(|t| t.parent_id.as_str());
        let operation = operation.as_deref();
        if QUIET_PATHS.contains(&path.as_str()) {
            tracing::debug!(target: "warden::access", method, path, status, duration_ms, operation, request_id, request_id_replaced = replaced, trace_id, parent_id, client_ip = client, "request");
        } else {
            tracing::info!(target: "warden::access", method, path, status, duration_ms, operation, request_id, request_id_replaced = replaced, trace_id, parent_id, client_ip = client, "request");
        }
        Ok(response)
    }
}

/// The request id the access layer gave `req`, or a fresh one when the
/// request did not come through it (a handler called directly).
pub fn request_id(req: &Request) -> String {
    req.extensions()
        .get::<Arc<RequestContext>>()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The client IP the access layer found for `req`; `None` outside it.
pub fn client(req: &Request) -> Option<Option<IpAddr>> {
    req.extensions()
        .get::<Arc<RequestContext>>()
        .map(|c| c.client)
}

/// Records the operation name of `batch` for the access line: the
/// `operationName` the client sent, or else the name of the document's
/// first operation; in a batch, the names joined with `,`. Only a valid
/// GraphQL name is kept, so nothing a client wrote but a name reaches the log.
pub fn record_operation(req: &Request, batch: &BatchRequest) {
    let Some(context) = req.extensions().get::<Arc<RequestContext>>() else {
        return;
    };
    let names: Vec<String> = batch
        .iter()
        .filter_map(|r| {
            r.operation_name
                .as_deref()
                .map(str::to_owned)
                .or_else(|| first_operation_name(&r.query))
        })
        .filter(|name| valid_name(name))
        .collect();
    if names.is_empty() {
        return;
    }
    if let Ok(mut operation) = context.operation.lock() {
        *operation = Some(names.join(","));
    }
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A GraphQL name (`[_A-Za-z][_0-9A-Za-z]*`), at most 128 characters.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_OPERATION_NAME
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The name of a document's first operation, read with a scan of its first
/// tokens (no parse): `query Name`, `mutation Name`, `subscription Name`.
/// `None` for an anonymous operation or anything else.
fn first_operation_name(query: &str) -> Option<String> {
    let mut rest = skip_ignored(query);
    let keyword = name_token(rest)?;
    if !matches!(keyword, "query" | "mutation" | "subscription") {
        return None;
    }
    rest = skip_ignored(&rest[keyword.len()..]);
    name_token(rest).map(str::to_owned)
}

/// `text` without its leading whitespace, commas, byte-order mark and comments.
fn skip_ignored(mut text: &str) -> &str {
    loop {
        let trimmed = text
            .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',' || c == '\u{feff}');
        match trimmed.strip_prefix('#') {
            Some(comment) => {
                text = comment.find(['\n', '\r']).map_or("", |i| &comment[i..]);
            }
            None => return trimmed,
        }
    }
}

/// The GraphQL name `text` starts with, if any.
fn name_token(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..end];
    valid_name(name).then_some(name)
}

/// The path, cut at [`MAX_LOGGED_PATH`] bytes (a URI path is ASCII).
fn logged_path(path: &str) -> String {
    match path.get(..MAX_LOGGED_PATH) {
        Some(cut) if path.len() > MAX_LOGGED_PATH => format!("{cut}…"),
        _ => path.to_owned(),
    }
}

/// A valid W3C `traceparent`.
#[derive(Debug, PartialEq, Eq)]
struct TraceParent {
    trace_id: String,
    parent_id: String,
}

impl TraceParent {
    /// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, ids not all zeros. A later
    /// version may append fields after the flags; version `ff` is invalid.
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.splitn(5, '-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let parent_id = parts.next()?;
        let flags = parts.next()?;
        let extra = parts.next();
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let zeros = |s: &str| s.bytes().all(|b| b == b'0');
        let fits = hex(version, 2)
            && version != "ff"
            && hex(trace_id, 32)
            && !zeros(trace_id)
            && hex(parent_id, 16)
            && !zeros(parent_id)
            && hex(flags, 2)
            // Version 00 has exactly four fields.
            && (extra.is_none() || version != "00");
        fits.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_keep_only_a_safe_alphabet_and_length() {
        assert!(valid_request_id("abc-123_X.y:z"));
        assert!(valid_request_id(&"a".repeat(128)));
        assert!(!valid_request_id(&"a".repeat(129)));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("a b"));
        assert!(!valid_request_id("a\"b"));
        assert!(!valid_request_id("é"));
    }

    #[test]
    fn traceparent_is_validated_by_its_format() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceParent::parse(good),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                parent_id: "00f067aa0ba902b7".into(),
            })
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert!(TraceParent::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
        )
        .is_some());
    }

    #[test]
    fn the_operation_name_is_read_from_the_first_tokens_only() {
        assert_eq!(
            first_operation_name("  # hi\n mutation Login($i: LoginInput!) { login }"),
            Some("Login".into())
        );
        assert_eq!(first_operation_name("query Me{me{id}}"), Some("Me".into()));
        assert_eq!(first_operation_name("{ me { id } }"), None);
        assert_eq!(first_operation_name("query { me { id } }"), None);
        assert_eq!(first_operation_name("fragment F on User { id }"), None);
        assert!(!valid_name("a b"));
        assert!(!valid_name("1a"));
        assert!(!valid_name(&"a".repeat(129)));
        assert!(valid_name("_Op1"));
    }

    #[test]
    fn long_paths_are_cut() {
        assert_eq!(logged_path("/graphql"), "/graphql");
        let long = format!("/{}", "a".repeat(400));
        assert!(logged_path(&long).len() < 270);
    }
}
