//! The HTTP transport: content type, GET, batches, body size, health.

use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, PASSWORD};

async fn user_count(app: &crate::helpers::TestApp) -> usize {
    entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap()
        .len()
}

fn register_doc(email: &str) -> String {
    format!("mutation {{ register(input: {{ email: \"{email}\", password: \"{PASSWORD}\" }}) {{ accessToken }} }}")
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_before_anything_runs() {
    let app = spawn_app().await;
    let body = json!({ "query": register_doc("form@example.com") }).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = app
            .client
            .post(format!("{}/graphql", app.address))
            .body(body.clone());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let response = req.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
    }
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn a_mutation_over_get_is_refused_and_does_not_run() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", register_doc("get@example.com"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn a_query_over_get_runs() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ me { id } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["reason"], "MISSING");
}

#[tokio::test]
async fn graphiql_is_served_to_browsers() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
}

#[tokio::test]
async fn a_batch_is_refused_by_default() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!([{ "query": register_doc("b1@example.com") }, { "query": register_doc("b2@example.com") }]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn an_oversize_body_gets_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ me { id } }", "variables": { "pad": padding } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_document_that_does_not_parse_or_validate_gets_errors_and_no_data() {
    let app = spawn_app().await;
    let strict = [("accept", "application/graphql-response+json".to_owned())];
    for query in ["{ me { id ", "{ nope }", "{ me { passwordHash } }"] {
        // 400 under graphql-response+json, 200 under application/json.
        let response = app.post_with_headers(None, query, json!({}), &strict).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string(), "{body}");
        assert!(body.get("data").is_none(), "{body}");
        let response = app.post(None, query, json!({})).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string(), "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
}

#[tokio::test]
async fn a_syntax_error_reads_as_a_sentence_with_its_place() {
    let app = spawn_app().await;
    let body: Value = app
        .post(None, "{\n  me {\n    id\n", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let error = &body["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "GRAPHQL_PARSE_FAILED",
        "{body}"
    );
    assert_eq!(
        error["message"],
        "Syntax error at line 4, column 1: expected a selection set, a selection, \
         a directive or arguments.",
        "{body}"
    );
    assert_eq!(
        error["locations"],
        json!([{ "line": 4, "column": 1 }]),
        "{body}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.post(None, "{ me { id } }", json!({})).await;
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

/// Sends `query` and expects a refusal before execution.
async fn assert_refused(app: &crate::helpers::TestApp, query: &str, what: &str) {
    let started = std::time::Instant::now();
    let strict = [("accept", "application/graphql-response+json".to_owned())];
    let response = app.post_with_headers(None, query, json!({}), &strict).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["data"].is_null() && body["errors"][0]["message"].is_string(),
        "{what}: {body}"
    );
    // A hang guard, not a speed target (benchmarks measure speed).
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "{what} took {elapsed:?}"
    );
}

/// `n` selections made by `field`, space-separated.
fn fields(n: usize, field: impl Fn(usize) -> String) -> String {
    (0..n).map(field).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn deep_wide_aliased_and_directive_heavy_documents_are_refused() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(12),
        "} ".repeat(12)
    );
    assert_refused(&app, &deep, "deep").await;
    let wide = format!("{{ me {{ {} }} }}", "id ".repeat(1000));
    assert_refused(&app, &wide, "wide").await;
    let aliased = format!("{{ {} }}", fields(40, |i| format!("a{i}: me {{ id }}")));
    assert_refused(&app, &aliased, "aliased").await;
    let directives = format!("{{ me {} {{ id }} }}", "@include(if: true) ".repeat(40));
    assert_refused(&app, &directives, "directives").await;
    let many_logins = format!(
        "mutation {{ {} }}",
        fields(13, |i| format!(
            "l{i}: login(input: {{ email: \"a@example.com\", password: \"x\" }}) {{ accessToken }}"
        ))
    );
    assert_refused(&app, &many_logins, "thirteen logins").await;
    let fragments = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    assert_refused(&app, fragments, "fragment cycle").await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "x".repeat(8192);
    let _ = stream.write_all(b"2\r\n{\"\r\n").await;
    for _ in 0..10 {
        if stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
        {
            break; // the server may stop reading once it has refused
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let n = stream.read(&mut answer).await.unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

#[tokio::test]
async fn introspection_off_hides_the_schema_graphiql_and_suggestions() {
    let app = crate::helpers::spawn_app_with(|c| c.introspection = false).await;
    let response = app
        .post(None, "{ __schema { types { name } } }", json!({}))
        .await;
    let body: Value = response.json().await.unwrap();
    assert!(
        body["data"]["__schema"].is_null(),
        "no schema is revealed: {body}"
    );
    // Refused with an error that says why, not a silent null: `__schema`,
    // `__type`, and either of them hidden in a fragment.
    for document in [
        "{ __schema { types { name } } }",
        "{ __type(name: \"User\") { name } }",
        "query { ...Peek } fragment Peek on Query { __type(name: \"User\") { fields { name } } }",
    ] {
        let body: Value = app
            .post(None, document, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let error = &body["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{document}: {body}"
        );
        assert_eq!(
            error["extensions"]["limit"], "INTROSPECTION_FIELDS",
            "{body}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("introspection is turned off"), "{message}");
        assert!(body["data"].is_null(), "{body}");
    }
    // `__typename` is not introspection of the schema: clients add it to
    // every selection (Apollo's cache does), so it keeps working.
    let body = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let typo: Value = app
        .post(None, "{ auditLo { edges { cursor } } }", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let message = typo["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("Did you mean"), "{message}");
    let page = app
        .client
        .get(format!("{}/graphql", app.address))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_ne!(page.status(), StatusCode::OK);
    // With introspection on, the same requests reveal the schema and suggest:
    // the checks above can fail.
    let open = spawn_app().await;
    let body: Value = open
        .post(None, "{ __schema { types { name } } }", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(body["data"]["__schema"]["types"].is_array());
    let typo: Value = open
        .post(None, "{ auditLo { edges { cursor } } }", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(typo["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("Did you mean"));
}

#[tokio::test]
async fn a_common_password_is_refused_at_registration() {
    let app = spawn_app().await;
    for common in ["password1", "iloveyou", "qwertyuiop", "Baseball1"] {
        let body = app
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                json!({ "i": { "email": "c@example.com", "password": common } }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{common}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "password");
    }
}

/// Writes `head` on a raw connection and returns what the server sends back
/// before it closes the connection (or 5 s pass).
async fn raw_exchange(app: &crate::helpers::TestApp, head: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the connection was still open after 5 s");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_and_nothing_runs() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.idle_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let body = json!({ "query": register_doc("slow@example.com") }).to_string();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..body.len() / 2]
    );
    let started = std::time::Instant::now();
    let answer = raw_exchange(&app, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.idle_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let answer = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo",
    )
    .await;
    // The first request was answered, the unfinished second one was not,
    // and the server closed the connection instead of waiting on.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
}

/// Token answers must never be cached (RFC 6749 §5.1) nor sniffed: every
/// /graphql answer, executed or refused, says so.
#[tokio::test]
async fn every_graphql_answer_is_no_store_and_nosniff() {
    let app = spawn_app().await;
    let who = crate::helpers::email();
    let register = format!(
        r#"mutation {{ register(input: {{ email: "{who}", password: "{}" }}) {{ accessToken }} }}"#,
        crate::helpers::PASSWORD
    );
    let url = format!("{}/graphql", app.address);
    let answers = vec![
        app.post(None, &register, serde_json::json!({})).await,
        app.post(None, "{ nope", serde_json::json!({})).await,
        app.client
            .get(format!("{url}?query=%7B__typename%7D"))
            .send()
            .await
            .unwrap(),
        app.client.post(&url).body("x").send().await.unwrap(),
    ];
    for answer in answers {
        let status = answer.status();
        let headers = answer.headers();
        assert_eq!(headers["cache-control"], "no-store", "{status}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{status}");
    }
}
