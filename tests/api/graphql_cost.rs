//! Documents whose expanded size, errors or fields would cost more than they are worth are refused before they run.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{email, spawn_app, TestApp};

/// graphql-js's full introspection query, every option on.
const INTROSPECTION: &str = include_str!("introspection.graphql");

/// A hang detector, not a speed target: no document may hold the server's
/// thread this long. Before the cost gate, the ten-deep nest of spreads
/// below held a core for 20 s. What a refusal costs is printed here and
/// measured by the benchmark (`bench/run --only W15`); that the gate's
/// walk visits each written selection once, however often its fragment is
/// spread, is a unit test of `graphql::cost` that counts the visits.
const HANG_CPU: Duration = Duration::from_secs(1);

/// Taken by the two tests that load the machine (the `me` p99 under attack
/// and the random documents), so that neither measures the other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

mod introspection;
mod load;

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (ns).
///
/// `#[tokio::test]` runs on a current-thread runtime: the server spawned by
/// `spawn_app` and the client both run on the test's own thread, so this
/// thread's CPU is the server's CPU for the request (plus the client's small
/// share), and tests running in parallel on other threads do not blur it.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// `query { ...G<depth> }` where each `G<k>` spreads `G<k-1>` `fanout` times and
/// `G0` is `__typename`: `fanout^depth` fields once expanded.
fn nested_spreads(depth: usize, fanout: usize) -> String {
    let mut doc = format!("query {{ ...G{depth} }}\n");
    for k in 1..=depth {
        let spreads = format!("...G{} ", k - 1).repeat(fanout);
        doc.push_str(&format!("fragment G{k} on Query {{ {spreads}}}\n"));
    }
    doc.push_str("fragment G0 on Query { __typename }\n");
    doc
}

/// `Accept: application/graphql-response+json`: a refused document is a
/// 400 there (under `application/json` it is a 200 with the same body).
fn graphql_response() -> [(&'static str, String); 1] {
    [("accept", "application/graphql-response+json".to_owned())]
}

/// What the server did with one document, and the CPU it took.
struct Answer {
    status: StatusCode,
    body: Value,
    cpu: Duration,
}

async fn send(app: &TestApp, query: &str) -> Answer {
    let before = thread_cpu();
    // Under graphql-response+json a refused document is a 400 (under
    // application/json it would be a 200 with the same body).
    let response = app
        .post_with_headers(None, query, json!({}), &graphql_response())
        .await;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        cpu: thread_cpu().saturating_sub(before),
    }
}

#[tokio::test]
async fn a_ten_deep_nest_of_fragment_spreads_is_refused_before_it_is_expanded() {
    let app = spawn_app().await;
    let doc = nested_spreads(10, 5);
    assert!(doc.len() < 700, "{} bytes", doc.len());
    let started = Instant::now();
    let answer = send(&app, &doc).await;
    eprintln!(
        "ten-deep spreads ({} bytes): {} in {:?} wall, {:?} CPU: {}",
        doc.len(),
        answer.status,
        started.elapsed(),
        answer.cpu,
        answer.body
    );
    assert_refused(&answer, "SIZE");
}

/// Asserts a 400 with no data and one error naming `limit`, well within
/// the hang detector.
fn assert_refused(answer: &Answer, limit: &str) {
    let body = &answer.body;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["data"].is_null(), "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert_eq!(ext["limit"], limit, "{body}");
    assert!(answer.cpu < HANG_CPU, "{limit}: {:?} of CPU", answer.cpu);
}

/// `n` selections made by `field`, space-separated.
fn fields(n: usize, field: impl Fn(usize) -> String) -> String {
    (0..n).map(field).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn wide_fragments_spread_many_times_are_refused_before_they_are_expanded() {
    let app = spawn_app().await;
    // 400 fields, spread 40 times: 16,000 fields in 5 KB.
    let wide = format!(
        "{{ {} }} fragment W on Query {{ {} }}",
        "...W ".repeat(40),
        "__typename ".repeat(400)
    );
    assert_refused(&send(&app, &wide).await, "SIZE");
    // The same through two levels of fragments spread side by side.
    let two = format!(
        "{{ ...B ...B ...B ...B }} fragment B on Query {{ {} }} fragment W on Query {{ {} }}",
        "...W ".repeat(30),
        "__typename ".repeat(30)
    );
    assert_refused(&send(&app, &two).await, "SIZE");
}

#[tokio::test]
async fn typename_and_introspection_fields_count_toward_the_size_bound() {
    let app = spawn_app().await;
    let typenames = format!("{{ {} }}", "__typename ".repeat(3_500));
    assert_refused(&send(&app, &typenames).await, "SIZE");
    let introspection = format!(
        "{{ __schema {{ types {{ {} }} }} }}",
        fields(1_600, |i| format!("n{i}: name"))
    );
    let answer = send(&app, &introspection).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.cpu < HANG_CPU, "{:?}", answer.cpu);
    // Each `__schema` walks the whole schema: twenty of them cost 68 ms.
    let schemas = format!(
        "{{ {} }}",
        fields(20, |i| format!(
            "s{i}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"
        ))
    );
    assert_refused(&send(&app, &schemas).await, "INTROSPECTION_FIELDS");
    // More than twice max_size tokens are refused before they are parsed.
    let huge = format!("{{ {} }}", "t ".repeat(6_500));
    let answer = send(&app, &huge).await;
    assert_refused(&answer, "SIZE");
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("at least"), "{message}");
}

#[tokio::test]
async fn many_unused_fragments_variables_arguments_or_directives_are_refused_cheaply() {
    let app = spawn_app().await;
    let unused = format!(
        "{{ __typename }} {}",
        fields(1_000, |i| format!(
            "fragment U{i} on Query {{ __typename }}"
        ))
    );
    assert_refused(&send(&app, &unused).await, "DEFINITIONS");
    let variables = format!(
        "query({}) {{ __typename }}",
        fields(1_000, |i| format!("$v{i}: Int"))
    );
    assert_refused(&send(&app, &variables).await, "VARIABLES");
    let arguments = format!(
        "{{ user(id: \"x\", {}) {{ id }} }}",
        fields(500, |i| format!("a{i}: {i}"))
    );
    assert_refused(&send(&app, &arguments).await, "ARGUMENTS");
    let directives = format!(
        "{{ {} }}",
        fields(100, |i| format!("t{i}: __typename @skip(if: false)"))
    );
    assert_refused(&send(&app, &directives).await, "DIRECTIVES");
    // An unused fragment that would expand to millions is refused as well.
    let bomb = nested_spreads(10, 5).replace("query { ...G10 }", "query { __typename }");
    assert_refused(&send(&app, &bomb).await, "SIZE");
}

#[tokio::test]
async fn fragment_cycles_and_unknown_fragments_are_refused_without_recursing() {
    let app = spawn_app().await;
    let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    assert_refused(&send(&app, cycle).await, "FRAGMENT_CYCLE");
    let unused_cycle = "query { __typename } fragment A on Query { __typename ...A }";
    assert_refused(&send(&app, unused_cycle).await, "FRAGMENT_CYCLE");
    assert_refused(&send(&app, "{ ...Missing }").await, "UNKNOWN_FRAGMENT");
}

#[tokio::test]
async fn aliases_are_counted_in_the_expanded_document() {
    let app = spawn_app().await;
    let twenty = fields(20, |i| format!("a{i}: __typename"));
    let once = format!("{{ ...A }} fragment A on Query {{ {twenty} }}");
    let answer = send(&app, &once).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["data"]["a19"], "Query", "{}", answer.body);
    let twice = format!("{{ ...A ...A }} fragment A on Query {{ {twenty} }}");
    assert_refused(&send(&app, &twice).await, "ALIASES");
}

#[tokio::test]
async fn a_document_with_two_audit_log_fields_is_refused_even_through_fragments_or_aliases() {
    let app = spawn_app().await;
    let token = app.register(&email()).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = "auditLog(first: 5) { edges { cursor } }";
    for query in [
        format!("{{ a: {log} b: {log} }}"),
        format!("{{ ...A ...A }} fragment A on Query {{ {log} }}"),
        format!("{{ {log} ...A }} fragment A on Query {{ ... on Query {{ {log} }} }}"),
    ] {
        let before = thread_cpu();
        let response = app
            .post_with_headers(Some(&token), &query, json!({}), &graphql_response())
            .await;
        let answer = Answer {
            status: response.status(),
            body: response.json().await.unwrap(),
            cpu: thread_cpu().saturating_sub(before),
        };
        assert_refused(&answer, "AUDIT_LOG_FIELDS");
    }
    // One field, even spread from a fragment, still reads the log.
    let one = format!("{{ ...A }} fragment A on Query {{ {log} }}");
    let body = app.gql(Some(&token), &one, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(body["data"]["auditLog"]["edges"].is_array(), "{body}");
}

#[tokio::test]
async fn a_response_carries_at_most_twenty_errors_then_says_how_many_were_left_out() {
    let app = spawn_app().await;
    let unknown = format!("{{ {} }}", fields(30, |i| format!("nope{i}")));
    let answer = send(&app, &unknown).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let errors = answer.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 21, "{}", answer.body);
    assert!(errors[..20]
        .iter()
        .all(|e| e["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"));
    assert_eq!(errors[20]["extensions"]["code"], "TOO_MANY_ERRORS");
    assert_eq!(errors[20]["extensions"]["omitted"], 10);
    // A document that does not parse says so with its own code.
    let broken = send(&app, "{ me { id }").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        broken.body["errors"][0]["extensions"]["code"],
        "GRAPHQL_PARSE_FAILED"
    );
}

/// Twenty failed fields before three refreshes past their limit: the cap
/// used to drop the `RATE_LIMITED` errors, and with them `Retry-After`.
#[tokio::test]
async fn the_error_cap_never_drops_a_rate_limit_error_or_its_retry_after() {
    let app =
        crate::helpers::spawn_app_with(|c| c.rates.rate_refresh_ip = "2/min".parse().unwrap())
            .await;
    let mut document = String::from("mutation { ");
    for i in 0..20 {
        document.push_str(&format!("a{i}: logoutAllDevices "));
    }
    for i in 0..3 {
        document.push_str(&format!(
            "r{i}: refresh(refreshToken: \"not-a-token-{i}\") {{ accessToken }} "
        ));
    }
    document.push('}');
    let response = app.post(None, &document, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap();
    let codes: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["extensions"]["code"].as_str())
        .collect();
    assert_eq!(codes.len(), 21, "{body}");
    assert!(codes.contains(&"RATE_LIMITED"), "{codes:?}");
    assert_eq!(codes.last(), Some(&"TOO_MANY_ERRORS"));
    assert!(retry_after.is_some(), "no Retry-After: {body}");
}

#[tokio::test]
async fn a_kept_document_is_measured_again_with_each_requests_variables() {
    let app = spawn_app().await;
    let query = "query($f: AuditLogFilter) { auditLog(filter: $f) { pageInfo { hasNextPage } } }";
    // Seen twice and valid: the document cache keeps it.
    for _ in 0..2 {
        let small = json!({ "f": { "kinds": ["LOGIN_FAILED"] } });
        let response = app.post(None, query, small).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let kinds = vec!["LOGIN_FAILED"; 4_000];
    let before = thread_cpu();
    let response = app
        .post_with_headers(
            None,
            query,
            json!({ "f": { "kinds": kinds } }),
            &graphql_response(),
        )
        .await;
    let answer = Answer {
        status: response.status(),
        body: response.json().await.unwrap(),
        cpu: thread_cpu().saturating_sub(before),
    };
    assert_refused(&answer, "SIZE");
}
