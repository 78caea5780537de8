//! GraphQL over HTTP (the graphql-over-http spec): what a request may look
//! like, and which media type the answer is in.
//!
//! - **Media type.** `Accept` is negotiated between
//!   `application/graphql-response+json` and `application/json`, honouring
//!   q-values; no `Accept` (or one that only says `*/*`) means
//!   `application/json`, the legacy type every client reads. When `Accept`
//!   names neither (say `Accept: application/xml`), the answer is 406: the
//!   spec allows that or ignoring the header, and a clear refusal is easier
//!   to debug than a body the client said it cannot read.
//! - **Status.** Under `application/graphql-response+json` a request error
//!   (a document that does not parse, does not validate, or is refused by
//!   the document gate, or variables that do not coerce) is a 400; under
//!   `application/json` it is a 200, because legacy clients treat any
//!   non-2xx as a transport failure. Either way the body has no `data`: the
//!   operation never ran.
//! - **Shape.** A body is an object (or, when batching is on, an array of
//!   them) with `query` a string, `operationName` a string or null,
//!   `variables` and `extensions` objects or null. Anything else is a 400
//!   under both media types: it is not a GraphQL request at all. `query` may
//!   be left out only when `extensions.persistedQuery` stands for it.

use async_graphql::{BatchRequest, Request};
use poem::http::{header, HeaderMap};
use serde_json::{Map, Value};

/// The media type of a GraphQL response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/json`: request errors answer 200.
    Json,
    /// `application/graphql-response+json`: request errors answer 400.
    GraphqlResponse,
}

impl Media {
    /// The `Content-Type` of a response in this media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type to answer in, or `None` when `Accept` allows neither.
pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if accept.iter().all(|v| v.trim().is_empty()) {
        return Some(Media::Json);
    }
    let ranges: Vec<(String, f32)> = accept
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(media_range)
        .collect();
    // For each type: the q of the most specific range that matches it
    // (RFC 9110 §12.5.1), and how specific that range was.
    let score = |mime: &str| -> Option<(f32, u8)> {
        let (ty, _) = mime.split_once('/')?;
        ranges
            .iter()
            .filter_map(|(range, q)| {
                let specificity = if range == mime {
                    2
                } else if range.strip_suffix("/*") == Some(ty) {
                    1
                } else if range == "*/*" {
                    0
                } else {
                    return None;
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map(|(specificity, q)| (q, specificity))
            .filter(|(q, _)| *q > 0.0)
    };
    match (score(GRAPHQL_RESPONSE), score(JSON)) {
        (None, None) => None,
        (Some(_), None) => Some(Media::GraphqlResponse),
        (None, Some(_)) => Some(Media::Json),
        // A client that names the new type as high as the old one reads
        // it; a wildcard alone keeps the legacy type.
        (Some((gq, gs)), Some((jq, _))) if gq > jq || (gq == jq && gs == 2) => {
            Some(Media::GraphqlResponse)
        }
        (Some(_), Some(_)) => Some(Media::Json),
    }
}

/// `type/subtype;q=0.5` → (`type/subtype` lowercased, 0.5).
fn media_range(item: &str) -> Option<(String, f32)> {
    let mut parts = item.split(';');
    let range = parts.next()?.trim().to_ascii_lowercase();
    if range.is_empty() {
        return None;
    }
    let mut q = 1.0;
    for param in parts {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                q = value.trim().parse::<f32>().ok()?.clamp(0.0, 1.0);
            }
        }
    }
    Some((range, q))
}

/// Why a body or query string is not a GraphQL request.
pub type Malformed = &'static str;

/// The request(s) in a POST body.
pub fn parse_body(bytes: &[u8]) -> Result<BatchRequest, Malformed> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| "the body is not a GraphQL request in JSON")?;
    match value {
        Value::Object(fields) => Ok(BatchRequest::Single(request(fields)?)),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(fields) => request(fields),
                _ => Err("each operation of a batch must be a JSON object"),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(BatchRequest::Batch),
        _ => Err("the body must be a JSON object"),
    }
}

/// The request in a GET's query string: `query`, `operationName`, and
/// `variables` and `extensions` as JSON text.
pub fn parse_query_string(query: &str) -> Result<Request, Malformed> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|_| "could not read the query string")?;
    let mut fields = Map::new();
    for (name, value) in pairs {
        let value = match name.as_str() {
            "query" | "operationName" => Value::String(value),
            "variables" | "extensions" => serde_json::from_str(&value)
                .map_err(|_| "variables and extensions must be JSON in the query string")?,
            _ => continue,
        };
        if fields.insert(name, value).is_some() {
            return Err("a parameter appears twice in the query string");
        }
    }
    request(fields)
}

/// True when the query string holds a GraphQL request rather than asking
/// for GraphiQL.
pub fn is_graphql_query_string(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.starts_with("query=") || pair.starts_with("extensions="))
}

/// One operation's fields, checked for type, as async-graphql's request.
fn request(mut fields: Map<String, Value>) -> Result<Request, Malformed> {
    // null stands for "not sent" in every optional field.
    fields.retain(|_, v| !v.is_null());
    let persisted = fields
        .get("extensions")
        .and_then(|e| e.get("persistedQuery"))
        .is_some();
    match fields.get("query") {
        Some(Value::String(_)) => {}
        None if persisted => {}
        None => return Err("the request has no query"),
        Some(_) => return Err("query must be a string"),
    }
    if fields.get("operationName").is_some_and(|v| !v.is_string()) {
        return Err("operationName must be a string");
    }
    if fields.get("variables").is_some_and(|v| !v.is_object()) {
        return Err("variables must be a JSON object");
    }
    if fields.get("extensions").is_some_and(|v| !v.is_object()) {
        return Err("extensions must be a JSON object");
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|_| "the request is not a GraphQL request")
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn accept(value: &str) -> Option<Media> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::ACCEPT, value);
        }
        negotiate(&headers)
    }

    #[test]
    fn accept_is_negotiated_with_q_values() {
        use Media::*;
        assert_eq!(accept(""), Some(Json));
        assert_eq!(accept("*/*"), Some(Json));
        assert_eq!(accept("application/*"), Some(Json));
        assert_eq!(accept("application/json"), Some(Json));
        assert_eq!(accept(GRAPHQL_RESPONSE), Some(GraphqlResponse));
        assert_eq!(
            accept("application/graphql-response+json,application/json;q=0.9"),
            Some(GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(Json)
        );
        assert_eq!(
            accept("application/json;q=0.9, application/graphql-response+json"),
            Some(GraphqlResponse)
        );
        // q=0 refuses a type, whatever a wildcard says.
        assert_eq!(accept("application/json;q=0, */*"), Some(GraphqlResponse));
        assert_eq!(accept("application/json;q=0"), None);
        assert_eq!(accept("application/xml"), None);
        assert_eq!(accept("text/html"), None);
        assert_eq!(
            accept("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            Some(Json)
        );
    }

    #[test]
    fn a_body_must_have_the_spec_shape() {
        assert!(parse_body(br#"{"query":"{ me { id } }","variables":null}"#).is_ok());
        assert!(parse_body(br#"{"query":"{ a }","operationName":null,"extensions":{}}"#).is_ok());
        for bad in [
            &br#"{"query":"{"#[..],
            br#"{}"#,
            br#"{"query":1}"#,
            br#"{"query":"{ a }","variables":"x"}"#,
            br#"{"query":"{ a }","variables":[1]}"#,
            br#"{"query":"{ a }","operationName":false}"#,
            br#"{"query":"{ a }","extensions":"x"}"#,
            br#""{ a }""#,
            br#"[1]"#,
        ] {
            assert!(parse_body(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let hashed = br#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}}}"#;
        assert!(parse_body(hashed).is_ok());
    }

    #[test]
    fn a_query_string_reads_every_parameter() {
        let request = parse_query_string(
            "query=query%20A(%24x%3AInt)%7B__typename%7D&operationName=A&variables=%7B%22x%22%3A1%7D",
        );
        let request = request.map_err(|e| e.to_owned());
        assert_eq!(
            request.as_ref().map(|r| r.operation_name.clone()),
            Ok(Some("A".to_owned()))
        );
        assert!(parse_query_string("query=%7Ba%7D&variables=nope").is_err());
        assert!(parse_query_string("query=%7Ba%7D&query=%7Bb%7D").is_err());
    }
}
