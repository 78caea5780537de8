//! Automatic persisted queries (Apollo's protocol) over HTTP: a hash alone
//! runs a kept document or answers `PERSISTED_QUERY_NOT_FOUND`; a hash with
//! its text is checked and registered; mutations never run over GET; the
//! cache is bounded and never keeps a refused document.

use reqwest::{header, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{email, spawn_app, spawn_app_with, TestApp, PASSWORD};

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

/// POSTs `body` as JSON with `Accept: accept` (none when empty).
async fn post(app: &TestApp, accept: &str, body: Value) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&body);
    if !accept.is_empty() {
        req = req.header(header::ACCEPT, accept);
    }
    let response = req.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The hash alone, over POST.
async fn by_hash(app: &TestApp, hash: &str) -> (StatusCode, Value) {
    post(app, "", json!({ "extensions": persisted(hash) })).await
}

/// The hash with its text, over POST: registers it.
async fn register(app: &TestApp, query: &str) -> (StatusCode, Value) {
    let body = json!({ "query": query, "extensions": persisted(&sha256(query)) });
    post(app, "", body).await
}

/// The hash alone (and `variables`), over GET.
async fn get_by_hash(app: &TestApp, hash: &str, variables: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[
            ("extensions", persisted(hash).to_string()),
            ("variables", variables.to_string()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_unknown_hash_answers_persisted_query_not_found_as_apollo_expects() {
    let app = spawn_app().await;
    let hash = sha256("{ __typename }");
    let (status, body) = by_hash(&app, &hash).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(body.get("data").is_none(), "{body}");
    // Under graphql-response+json nothing executed, so it is a 400.
    let (status, body) = post(
        &app,
        "application/graphql-response+json",
        json!({ "extensions": persisted(&hash) }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    let (status, body) = get_by_hash(&app, &hash, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
}

#[tokio::test]
async fn a_registered_query_runs_by_hash_alone_over_post_and_get() {
    let app = spawn_app().await;
    let query = "query Type($n: String!) { t: __type(name: $n) { name } }";
    let body = json!({
        "query": query,
        "variables": { "n": "User" },
        "extensions": persisted(&sha256(query)),
    });
    let (status, answer) = post(&app, "", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["t"]["name"], "User", "{answer}");

    let hash = sha256(query);
    let (status, answer) = post(
        &app,
        "",
        json!({ "extensions": persisted(&hash), "variables": { "n": "User" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["t"]["name"], "User", "{answer}");
    let (status, answer) = get_by_hash(&app, &hash, json!({ "n": "Role" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["t"]["name"], "Role", "{answer}");
}

#[tokio::test]
async fn a_hash_that_is_not_its_text_is_refused_and_registers_nothing() {
    let app = spawn_app().await;
    let wrong = sha256("{ me { id } }");
    let body = json!({ "query": "{ __typename }", "extensions": persisted(&wrong) });
    let (status, answer) = post(&app, "", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(code(&answer), "PERSISTED_QUERY_HASH_MISMATCH", "{answer}");
    assert!(answer.get("data").is_none(), "{answer}");
    let (_, answer) = by_hash(&app, &wrong).await;
    assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");
}

#[tokio::test]
async fn another_version_or_a_malformed_hash_is_not_supported() {
    let app = spawn_app().await;
    let hash = sha256("{ __typename }");
    for persisted in [
        json!({ "version": 2, "sha256Hash": hash }),
        json!({ "version": 1, "sha256Hash": "abc" }),
        json!({ "version": 1 }),
    ] {
        let body =
            json!({ "query": "{ __typename }", "extensions": { "persistedQuery": persisted } });
        let (status, answer) = post(&app, "", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_SUPPORTED", "{answer}");
    }
}

#[tokio::test]
async fn a_persisted_mutation_sent_by_hash_over_get_is_refused_and_does_not_run() {
    let app = spawn_app().await;
    let mutation = "mutation Register($i: RegisterInput!) { register(input: $i) { accessToken } }";
    let first = email();
    let body = json!({
        "query": mutation,
        "variables": { "i": { "email": first, "password": PASSWORD } },
        "extensions": persisted(&sha256(mutation)),
    });
    let (status, answer) = post(&app, "", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["data"]["register"]["accessToken"].is_string(),
        "{answer}"
    );
    // Kept now: the hash alone over POST runs it.
    let second = email();
    let (_, answer) = post(
        &app,
        "",
        json!({
            "extensions": persisted(&sha256(mutation)),
            "variables": { "i": { "email": second, "password": PASSWORD } },
        }),
    )
    .await;
    assert!(
        answer["data"]["register"]["accessToken"].is_string(),
        "{answer}"
    );

    let third = email();
    let variables = json!({ "i": { "email": third, "password": PASSWORD } });
    let (status, _) = get_by_hash(&app, &sha256(mutation), variables).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let users = entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    let emails: Vec<_> = users.iter().map(|u| u.email.clone()).collect();
    assert_eq!(emails.len(), 2, "{emails:?}");
    assert!(!emails.contains(&third), "the GET ran the mutation");
}

#[tokio::test]
async fn a_document_the_gate_or_validation_refuses_is_never_kept() {
    let app = spawn_app().await;
    let aliases = (0..40)
        .map(|i| format!("a{i}: __typename"))
        .collect::<Vec<_>>()
        .join(" ");
    for query in [format!("{{ {aliases} }}"), "{ nope }".to_owned()] {
        for _ in 0..3 {
            let (_, answer) = register(&app, &query).await;
            assert!(
                code(&answer) == "GRAPHQL_VALIDATION_FAILED",
                "{query}: {answer}"
            );
        }
        let (_, answer) = by_hash(&app, &sha256(&query)).await;
        assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");
    }
}

#[tokio::test]
async fn the_cache_bound_covers_persisted_queries_and_a_later_hash_misses_after_eviction() {
    let app = spawn_app_with(|config| config.document_cache_size = 1).await;
    let a = "query A { __typename }";
    let b = "query B { __typename }";
    register(&app, a).await;
    let (_, answer) = by_hash(&app, &sha256(a)).await;
    assert_eq!(answer["data"]["__typename"], "Query", "{answer}");
    register(&app, b).await;
    let (_, answer) = by_hash(&app, &sha256(a)).await;
    assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");
    let (_, answer) = by_hash(&app, &sha256(b)).await;
    assert_eq!(answer["data"]["__typename"], "Query", "{answer}");

    // A flood of distinct registrations leaves at most the bound behind.
    let app = spawn_app_with(|config| config.document_cache_size = 4).await;
    let flood: Vec<String> = (0..40)
        .map(|i| format!("query Flood{i} {{ __typename }}"))
        .collect();
    for query in &flood {
        let (_, answer) = register(&app, query).await;
        assert_eq!(answer["data"]["__typename"], "Query", "{answer}");
    }
    let mut kept = 0;
    for query in &flood {
        let (_, answer) = by_hash(&app, &sha256(query)).await;
        kept += usize::from(answer["data"]["__typename"] == "Query");
    }
    assert!((1..=4).contains(&kept), "{kept} kept");
}

#[tokio::test]
async fn apollo_persisted_query_link_misses_registers_then_hits_over_get() {
    let app = spawn_app().await;
    let Some(report) = crate::node::run("apq.mjs", &[&app.address], false).await else {
        return;
    };
    eprintln!("apq: {report}");
    assert_eq!(report["first"]["__typename"], "Query", "{report}");
    assert_eq!(report["second"]["__typename"], "Query", "{report}");
    let requests = report["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3, "{report}");
    // 1: the hash alone, over GET: not found (a 400 under Apollo's
    // graphql-response+json, since nothing ran).
    assert_eq!(requests[0]["method"], "GET", "{report}");
    assert_eq!(requests[0]["withQuery"], false, "{report}");
    assert_eq!(requests[0]["withHash"], true, "{report}");
    assert_eq!(requests[0]["codes"], json!(["PERSISTED_QUERY_NOT_FOUND"]));
    assert_eq!(requests[0]["status"], 400, "{report}");
    // 2: hash and text, over POST: registered and run.
    assert_eq!(requests[1]["method"], "POST", "{report}");
    assert_eq!(requests[1]["withQuery"], true, "{report}");
    assert_eq!(requests[1]["withHash"], true, "{report}");
    assert_eq!(requests[1]["status"], 200, "{report}");
    // 3: the hash alone, over GET: a hit.
    assert_eq!(requests[2]["method"], "GET", "{report}");
    assert_eq!(requests[2]["withQuery"], false, "{report}");
    assert_eq!(requests[2]["status"], 200, "{report}");
    assert_eq!(requests[2]["data"]["__typename"], "Query", "{report}");
}

#[tokio::test]
async fn a_text_with_a_string_literal_runs_but_is_never_kept_under_its_hash() {
    let app = spawn_app().await;
    let query = "{ __type(name: \"User\") { name } }";
    for _ in 0..3 {
        let (status, answer) = register(&app, query).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["data"]["__type"]["name"], "User", "{answer}");
    }
    let (_, answer) = by_hash(&app, &sha256(query)).await;
    assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");
}

/// The attack: GETs name a mutation's hash while it is being registered by
/// POST. Each GET must answer "not found" (before) or 405 (after), and the
/// mutation must never run: a lookup for the method check and a second one
/// at execution could disagree, and a GET carrying the refresh cookie could
/// then log its owner out. `logout` without a session answers with its
/// `path` when its resolver runs, so a run is visible in the answer.
#[tokio::test]
async fn a_mutation_registered_while_gets_name_its_hash_never_runs_over_get() {
    let app = spawn_app().await;
    let mut answers = 0;
    for round in 0..40 {
        let mutation = format!("mutation Race{round} {{ logout }}");
        let hash = sha256(&mutation);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut gets = Vec::new();
        for _ in 0..8 {
            let client = app.client.clone();
            let url = format!("{}/graphql", app.address);
            let extensions = persisted(&hash).to_string();
            let stop = stop.clone();
            gets.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::Relaxed);
                    let response = client
                        .get(&url)
                        .query(&[("extensions", extensions.as_str())])
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    seen.push((status, body));
                    if done {
                        return seen;
                    }
                }
            }));
        }
        let (status, body) = register(&app, &mutation).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for get in gets {
            for (status, body) in get.await.unwrap() {
                answers += 1;
                let ran = body["errors"]
                    .as_array()
                    .is_some_and(|errors| errors.iter().any(|e| e.get("path").is_some()))
                    || body.get("data").is_some_and(|d| !d.is_null());
                assert!(!ran, "a GET ran the mutation ({status}): {body}");
                match status {
                    StatusCode::METHOD_NOT_ALLOWED => {}
                    StatusCode::OK => {
                        assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}")
                    }
                    other => panic!("{other}: {body}"),
                }
            }
        }
    }
    assert!(answers >= 320, "{answers}");
}
