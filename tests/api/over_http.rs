//! GraphQL over HTTP, to the spec: the graphql-http server audit, Apollo
//! Client 4's view of request errors, and the media-type and status rules
//! checked directly.

use reqwest::{header, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::{email, spawn_app, TestApp, PASSWORD};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// POSTs a raw body with `Accept: accept` (none when empty).
async fn post_raw(app: &TestApp, accept: &str, body: String) -> (StatusCode, String, Value) {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if !accept.is_empty() {
        req = req.header(header::ACCEPT, accept);
    }
    let response = req.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

async fn post_doc(app: &TestApp, accept: &str, query: &str) -> (StatusCode, String, Value) {
    post_raw(app, accept, json!({ "query": query }).to_string()).await
}

#[tokio::test]
async fn the_graphql_http_audit_passes_every_check_must_should_and_may() {
    let app = spawn_app().await;
    let Some(report) = crate::node::run("audit.mjs", &[&app.address], false).await else {
        return;
    };
    eprintln!("graphql-http audit: {report}");
    assert_eq!(report["failed"], json!([]), "{report}");
    assert_eq!(report["error"], 0, "{report}");
    assert_eq!(report["warn"], 0, "{report}");
    assert!(report["ok"].as_u64().unwrap_or(0) >= 60, "{report}");
    assert_eq!(report["ok"], report["total"], "{report}");
}

#[tokio::test]
async fn apollo_client_4_reads_parse_and_validation_errors_as_graphql_errors() {
    let app = spawn_app().await;
    let address = email();
    app.register(&address).await;
    let Some(report) = crate::node::run("apollo.mjs", &[&app.address, &address], false).await
    else {
        return;
    };
    eprintln!("apollo: {report}");
    assert_eq!(report["valid"]["data"]["__typename"], "Query", "{report}");

    let syntax = &report["syntax"]["error"];
    assert_eq!(syntax["kind"], "CombinedGraphQLErrors", "{report}");
    assert_eq!(
        syntax["errors"][0]["code"], "GRAPHQL_PARSE_FAILED",
        "{report}"
    );
    assert_eq!(
        syntax["errors"][0]["message"],
        "Syntax error at line 4, column 1: expected a selection set, a selection, \
         a directive or arguments.",
        "{report}"
    );
    assert_eq!(
        syntax["errors"][0]["locations"],
        json!([{ "line": 4, "column": 1 }]),
        "{report}"
    );

    let unknown = &report["unknownField"]["error"];
    assert_eq!(unknown["kind"], "CombinedGraphQLErrors", "{report}");
    assert_eq!(
        unknown["errors"][0]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{report}"
    );
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{report}"
    );
    assert!(unknown["errors"][0]["locations"][0]["line"].is_number());

    let login = &report["wrongPassword"]["error"];
    assert_eq!(login["kind"], "CombinedGraphQLErrors", "{report}");
    assert_eq!(
        login["errors"][0]["code"], "INVALID_CREDENTIALS",
        "{report}"
    );

    // What Apollo saw on the wire: its default Accept, a 400 in
    // graphql-response+json for the request errors, a 200 for the rest.
    let requests = report["requests"].as_array().unwrap();
    let statuses: Vec<_> = requests.iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, [json!(200), json!(400), json!(400), json!(200)]);
    for request in requests {
        assert!(
            request["accept"]
                .as_str()
                .is_some_and(|a| a.starts_with(GRAPHQL_RESPONSE)),
            "{request}"
        );
        assert!(
            request["contentType"]
                .as_str()
                .is_some_and(|c| c.starts_with(GRAPHQL_RESPONSE) && c.contains("charset=utf-8")),
            "{request}"
        );
    }
}

#[tokio::test]
async fn a_request_error_is_200_under_json_and_400_under_graphql_response_and_never_has_data() {
    let app = spawn_app().await;
    for query in ["{ me { id ", "{ nope }", "query($x: Int!) { __typename }"] {
        for accept in ["", "*/*", "application/json", "application/*"] {
            let (status, content_type, body) = post_doc(&app, accept, query).await;
            assert_eq!(status, StatusCode::OK, "{query} with {accept:?}: {body}");
            assert_eq!(content_type, "application/json; charset=utf-8");
            assert!(body.get("data").is_none(), "{query}: {body}");
            assert!(body["errors"][0]["message"].is_string(), "{body}");
        }
        for accept in [
            GRAPHQL_RESPONSE,
            "application/graphql-response+json,application/json;q=0.9",
            "application/json;q=0.5, application/graphql-response+json",
        ] {
            let (status, content_type, body) = post_doc(&app, accept, query).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query} with {accept}");
            assert_eq!(
                content_type,
                "application/graphql-response+json; charset=utf-8"
            );
            assert!(body.get("data").is_none(), "{query}: {body}");
            assert!(
                body["errors"][0]["extensions"]["code"].is_string(),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn an_operation_that_ran_is_200_with_data_under_either_media_type() {
    let app = spawn_app().await;
    for accept in ["", "application/json", GRAPHQL_RESPONSE] {
        let (status, _, body) = post_doc(&app, accept, "{ __typename }").await;
        assert_eq!(status, StatusCode::OK, "{accept}");
        assert_eq!(body["data"]["__typename"], "Query", "{body}");
        // A field error: it ran, so 200 and data, whatever the media type.
        let (status, _, body) = post_doc(&app, accept, "{ me { id } }").await;
        assert_eq!(status, StatusCode::OK, "{accept}: {body}");
        assert!(body.get("data").is_some(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn an_accept_that_allows_no_graphql_media_type_gets_406_and_nothing_runs() {
    let app = spawn_app().await;
    let mutation = format!(
        "mutation {{ register(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ accessToken }} }}",
        email()
    );
    for accept in ["application/xml", "text/html", "application/json;q=0"] {
        let (status, content_type, body) = post_doc(&app, accept, &mutation).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{accept}: {body}");
        assert_eq!(content_type, "application/json; charset=utf-8");
    }
    let users = entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert!(users.is_empty(), "a refused request ran");
}

#[tokio::test]
async fn a_body_that_is_not_a_graphql_request_is_400_under_both_media_types() {
    let app = spawn_app().await;
    let bodies = [
        "{\"query\": \"{ __typename }\"".to_owned(),
        "{}".to_owned(),
        json!({ "query": 1 }).to_string(),
        json!({ "query": ["{ __typename }"] }).to_string(),
        json!({ "query": "{ __typename }", "variables": "{}" }).to_string(),
        json!({ "query": "{ __typename }", "operationName": 7 }).to_string(),
        json!({ "query": "{ __typename }", "extensions": [] }).to_string(),
        "\"{ __typename }\"".to_owned(),
    ];
    for body in &bodies {
        for accept in ["", GRAPHQL_RESPONSE] {
            let (status, _, answer) = post_raw(&app, accept, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{body} ({accept:?}): {answer}"
            );
            assert!(answer["errors"][0]["message"].is_string(), "{answer}");
        }
    }
    // Nulls stand for absent fields.
    let body = json!({ "query": "{ __typename }", "variables": null, "operationName": null, "extensions": null });
    let (status, _, answer) = post_raw(&app, "", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn a_get_reads_operation_name_and_variables_and_refuses_mutations_with_allow() {
    let app = spawn_app().await;
    let url = format!("{}/graphql", app.address);
    let response = app
        .client
        .get(&url)
        .query(&[
            (
                "query",
                "query A($n: String!) { t: __type(name: $n) { name } } query B { __typename }",
            ),
            ("operationName", "A"),
            ("variables", "{\"n\":\"User\"}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], json!({ "t": { "name": "User" } }), "{body}");

    let response = app
        .client
        .get(&url)
        .query(&[("query", "mutation { logout }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok()),
        Some("GET, POST")
    );
}
