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
async fn a_document_that_does_not_parse_or_validate_gets_400_with_errors() {
    let app = spawn_app().await;
    for query in ["{ me { id ", "{ nope }", "{ me { passwordHash } }"] {
        let response = app.post(None, query, json!({})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
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
