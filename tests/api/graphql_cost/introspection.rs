//! The standard introspection query (graphql-js's, every option on, as
//! GraphiQL, Apollo and codegen tools send it) runs at the default limits,
//! while introspection documents past its shape, and deep or complex
//! ordinary documents, are still refused before anything executes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{fields, INTROSPECTION};
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// Sends `query` under `Accept: application/graphql-response+json` (where
/// a refused document is a 400; under `application/json` it is a 200 with
/// the same body) and returns the status and body.
async fn send(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let response = app
        .post_with_headers(None, query, json!({}), &super::graphql_response())
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts a refusal before execution: 400, no `data` key, the validation code
/// and `limit` naming the bound.
async fn assert_refused(app: &TestApp, query: &str, limit: &str) -> Value {
    let (status, body) = send(app, query).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}: {body}");
    assert!(body.get("data").is_none(), "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert_eq!(ext["limit"], limit, "{body}");
    body
}

/// `levels` fields nested in each other, `leaf` innermost.
fn nested(name: &str, levels: usize, leaf: &str) -> String {
    format!(
        "{}{leaf}{}",
        format!("{name} {{ ").repeat(levels),
        " }".repeat(levels)
    )
}

#[tokio::test]
async fn graphql_js_introspection_builds_a_client_schema_with_login() {
    let app = spawn_app().await;
    let Some(report) = crate::node::run("introspection.mjs", &[&app.address], false).await else {
        return;
    };
    assert_eq!(report["status"], 200, "{report}");
    assert!(report["errors"].is_null(), "{report}");
    assert_eq!(report["mutationType"], "Mutation", "{report}");
    assert_eq!(report["login"]["type"], "AuthPayload!", "{report}");
    assert_eq!(report["login"]["args"], json!(["input"]), "{report}");
    assert!(
        report["queryFields"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("me"))),
        "{report}"
    );
    assert_eq!(
        report["storedMatches"], true,
        "tests/api/introspection.graphql is no longer graphql-js's query: {report}"
    );
}

#[tokio::test]
async fn the_full_introspection_query_answers_the_schema_without_errors() {
    let app = spawn_app().await;
    let (status, body) = send(&app, INTROSPECTION).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["errors"].is_null(), "{}", body["errors"]);
    let schema = &body["data"]["__schema"];
    assert_eq!(schema["mutationType"]["name"], "Mutation", "{schema}");
    let types = schema["types"].as_array().unwrap();
    let mutation = types.iter().find(|t| t["name"] == "Mutation").unwrap();
    let login = mutation["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "login")
        .unwrap();
    // `AuthPayload!`: the `ofType` chain is answered, not cut.
    assert_eq!(login["type"]["kind"], "NON_NULL", "{login}");
    assert_eq!(login["type"]["ofType"]["name"], "AuthPayload", "{login}");
    assert!(schema["directives"]
        .as_array()
        .is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn with_introspection_off_the_full_query_is_told_so_and_typename_still_works() {
    let app = spawn_app_with(|c| c.introspection = false).await;
    let body = assert_refused(&app, INTROSPECTION, "INTROSPECTION_FIELDS").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("introspection is turned off"), "{message}");
    let body = assert_refused(
        &app,
        "{ __type(name: \"User\") { name } }",
        "INTROSPECTION_FIELDS",
    )
    .await;
    assert!(
        body.to_string().contains("introspection is turned off"),
        "{body}"
    );
    let (status, body) = send(&app, "{ __typename }").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
}

#[tokio::test]
async fn a_deep_ordinary_document_is_still_refused_at_twelve_levels_of_fields() {
    let app = spawn_app().await;
    // No type of Warden's nests this deep: validation would refuse these
    // anyway, but the gate refuses first, by depth, without validating.
    let thirteen = format!("{{ {} }}", nested("me", 12, "id"));
    let body = assert_refused(&app, &thirteen, "DEPTH").await;
    assert_eq!(body["errors"][0]["extensions"]["max"], 12, "{body}");
    // The same depth through fragments and inline fragments.
    let spread = format!(
        "{{ ...A }} fragment A on Query {{ {} }} fragment B on User {{ {} }}",
        nested("me", 6, "... on User { ...B }"),
        nested("me", 7, "id")
    );
    assert_refused(&app, &spread, "DEPTH").await;
    // Twelve levels are not refused by depth (the unknown fields are).
    let twelve = format!("{{ {} }}", nested("me", 11, "id"));
    let (status, body) = send(&app, &twelve).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"][0]["extensions"]["limit"].is_null(), "{body}");
    // `__typename` adds no level, as before.
    let typename = format!("{{ {} }}", nested("me", 12, "__typename"));
    let (_, body) = send(&app, &typename).await;
    assert!(body["errors"][0]["extensions"]["limit"].is_null(), "{body}");
}

#[tokio::test]
async fn complexity_still_bounds_ordinary_fields_to_twelve_logins() {
    let app = spawn_app().await;
    let logins = |n: usize| {
        format!(
            "mutation {{ {} }}",
            fields(n, |i| {
                format!(
                "l{i}: login(input: {{ email: \"nobody{i}@example.com\", password: \"not the password\" }}) {{ accessToken }}"
            )
            })
        )
    };
    let body = assert_refused(&app, &logins(13), "COMPLEXITY").await;
    assert_eq!(body["errors"][0]["extensions"]["max"], 500, "{body}");
    // Twelve run (and fail one by one, as logins with wrong passwords do).
    let (status, body) = send(&app, &logins(12)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_CREDENTIALS",
        "{body}"
    );
}

#[tokio::test]
async fn introspection_past_the_standard_querys_shape_is_refused_before_it_runs() {
    let app = spawn_app().await;
    // `ofType` nested deeper than graphql-js's nine levels.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ args {{ type {{ {} }} }} }} }} }} }}",
        nested("ofType", 10, "name")
    );
    let body = assert_refused(&app, &deep, "INTROSPECTION_DEPTH").await;
    assert_eq!(body["errors"][0]["extensions"]["max"], 15, "{body}");
    // The standard query's own depth passes.
    let nine = format!(
        "{{ __schema {{ types {{ fields {{ args {{ type {{ {} }} }} }} }} }} }}",
        nested("ofType", 9, "name")
    );
    let (status, body) = send(&app, &nine).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Deep `ofType` through fragments.
    let through = format!(
        "{{ __type(name: \"User\") {{ ...R }} }} fragment R on __Type {{ {} }}",
        nested("ofType", 15, "name")
    );
    assert_refused(&app, &through, "INTROSPECTION_DEPTH").await;
    // Aliased copies of `__schema`.
    let copies = format!(
        "{{ {} }}",
        fields(3, |i| format!("s{i}: __schema {{ types {{ name }} }}"))
    );
    assert_refused(&app, &copies, "INTROSPECTION_FIELDS").await;
    // The standard query's `__schema` twice (two roots are allowed).
    assert_refused(&app, &schema_twice(), "INTROSPECTION_SIZE").await;
    // Fragment fan-out inside `__type`: 10 × 10 spreads of a few fields.
    let fan_out =
        "{ __type(name: \"Mutation\") { ...A ...A ...A ...A ...A ...A ...A ...A ...A ...A } }
        fragment A on __Type { fields { ...B ...B ...B ...B ...B ...B ...B ...B ...B ...B } }
        fragment B on __Field { name description args { name } type { name kind } }";
    assert_refused(&app, fan_out, "INTROSPECTION_SIZE").await;
}

/// The standard query with its `__schema { … }` selection repeated under
/// an alias.
fn schema_twice() -> String {
    let start = INTROSPECTION.find("__schema").unwrap();
    let mut open = 0usize;
    let mut end = start;
    for (i, c) in INTROSPECTION[start..].char_indices() {
        match c {
            '{' => open += 1,
            '}' => {
                open -= 1;
                if open == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let block = &INTROSPECTION[start..end];
    format!(
        "{} again: {block}{}",
        &INTROSPECTION[..end],
        &INTROSPECTION[end..]
    )
}
