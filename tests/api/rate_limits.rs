//! Rate limits: per executed field, keyed by the real client IP.

use reqwest::StatusCode;
use serde_json::{json, Value};
use warden::config::RateQuota;

use crate::helpers::{code, email, spawn_app_with, TestApp, PASSWORD};

fn quota(q: &str) -> RateQuota {
    q.parse().unwrap()
}

/// `n` aliased logins for `who`, the last with `last_password`.
fn aliased_logins(n: usize, who: &str, last_password: &str) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| {
            let password = if i + 1 == n { last_password } else { "wrong password guess" };
            format!("a{i}: login(input: {{ email: \"{who}\", password: \"{password}\" }}) {{ accessToken }}")
        })
        .collect();
    format!("mutation {{ {} }}", fields.join(" "))
}

async fn login_with_headers(app: &TestApp, who: &str, headers: &[(&str, String)]) -> Value {
    app.login_with_headers(who, "wrong password guess", headers)
        .await
}

#[tokio::test]
async fn ten_aliased_logins_against_a_limit_of_three_stop_at_three() {
    let app = spawn_app_with(|c| c.rates.rate_login_email = quota("3/min")).await;
    let who = email();
    app.register(&who).await;
    let response = app
        .post(None, &aliased_logins(10, &who, PASSWORD), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("retry-after").is_some(),
        "Retry-After is set"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["data"].is_null() || body["data"]["a9"].is_null(),
        "the right password in the tenth does not get through: {body}"
    );
    let errors = body["errors"].as_array().unwrap();
    let limited = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .count();
    let invalid = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "INVALID_CREDENTIALS")
        .count();
    assert_eq!(invalid, 3, "{body}");
    assert_eq!(limited, 7, "{body}");
    let retry = errors
        .iter()
        .find(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .unwrap()["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=60).contains(&retry),
        "retryAfter in whole seconds: {retry}"
    );
}

#[tokio::test]
async fn each_operation_of_a_batch_spends_the_same_limit() {
    let app = spawn_app_with(|c| {
        c.max_batch = 10;
        c.rates.rate_register_ip = quota("2/min");
    })
    .await;
    let ops: Vec<Value> = (0..4)
        .map(|i| json!({ "query": format!("mutation {{ register(input: {{ email: \"batch{i}@example.com\", password: \"{PASSWORD}\" }}) {{ accessToken }} }}") }))
        .collect();
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bodies: Vec<Value> = response.json().await.unwrap();
    let codes: Vec<Option<&str>> = bodies.iter().map(code).collect();
    assert_eq!(
        codes,
        [None, None, Some("RATE_LIMITED"), Some("RATE_LIMITED")]
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_do_not_reset_the_bucket() {
    let app = spawn_app_with(|c| c.rates.rate_login_ip = quota("3/min")).await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let spoof = format!("198.51.100.{i}");
        let headers = [
            ("x-forwarded-for", spoof.clone()),
            ("x-real-ip", spoof.clone()),
            ("forwarded", format!("for={spoof}")),
        ];
        let body = login_with_headers(&app, &email(), &headers).await;
        codes.push(code(&body).map(str::to_owned));
    }
    let limited = codes
        .iter()
        .filter(|c| c.as_deref() == Some("RATE_LIMITED"))
        .count();
    assert_eq!(limited, 3, "{codes:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_ip_is_the_client() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rates.rate_login_ip = quota("2/min");
    })
    .await;
    let who = email();
    let headers = [("x-forwarded-for", "6.6.6.6, 203.0.113.7".to_owned())];
    login_with_headers(&app, &who, &headers).await;
    // Another client behind the same proxy has its own bucket.
    for i in 0..2 {
        let other = [("x-forwarded-for", format!("203.0.113.{}", 50 + i))];
        assert_eq!(
            code(&login_with_headers(&app, &email(), &other).await),
            Some("INVALID_CREDENTIALS")
        );
    }
    let token = app.admin_token().await;
    let log = app
        .gql(Some(&token), "{ auditLog(filter: { kinds: [LOGIN_FAILED] }, first: 200) { edges { node { ip detail } } } }", json!({}))
        .await;
    let edges = log["data"]["auditLog"]["edges"].as_array().unwrap();
    let mine = edges
        .iter()
        .find(|e| e["node"]["detail"]["email"] == who.as_str())
        .unwrap();
    assert_eq!(mine["node"]["ip"], "203.0.113.7", "{log}");
}

#[tokio::test]
async fn refusals_are_audited_as_rate_limited() {
    let app = spawn_app_with(|c| c.rates.rate_refresh_ip = quota("1/min")).await;
    for _ in 0..3 {
        app.refresh("x").await;
    }
    let body = app.refresh("x").await;
    assert_eq!(code(&body), Some("RATE_LIMITED"));
    let token = app.admin_token().await;
    let log = app
        .gql(Some(&token), "{ auditLog(filter: { kinds: [RATE_LIMITED] }) { edges { node { severity detail ip } } } }", json!({}))
        .await;
    let edges = log["data"]["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(
        edges.len(),
        1,
        "one audit row per rule, key and minute: {log}"
    );
    assert_eq!(edges[0]["node"]["detail"]["rule"], "refresh_ip");
    assert_eq!(edges[0]["node"]["severity"], "WARNING");
}

#[tokio::test]
async fn rate_limits_off_turns_them_off() {
    let app = spawn_app_with(|c| {
        c.rate_limits = false;
        c.rates.rate_login_ip = quota("1/h");
    })
    .await;
    for _ in 0..4 {
        let body = login_with_headers(&app, &email(), &[]).await;
        assert_eq!(code(&body), Some("INVALID_CREDENTIALS"));
    }
}
