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
        let response = app.post(None, &login_mutation(&email()), json!({})).await;
        assert_eq!(
            header(&response, "ratelimit-policy"),
            None,
            "no limits, no headers"
        );
        assert_eq!(header(&response, "ratelimit"), None);
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), Some("INVALID_CREDENTIALS"));
    }
}

// RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers-10).

/// A response header; for `RateLimit` and `RateLimit-Policy`, only the
/// items of the operations' own rules (None if there are none): every
/// request also spends its caller's quota, which
/// [`quotas_by_caller_are_separate_and_sized_by_role`] checks.
fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    let value = raw_header(response, name)?;
    if !name.starts_with("ratelimit") {
        return Some(value);
    }
    let items: Vec<&str> = value
        .split(", ")
        .filter(|item| {
            !["\"anonymous_ip\";", "\"user\";", "\"admin\";"]
                .iter()
                .any(|quota| item.starts_with(quota))
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}

fn raw_header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn register_mutation(who: &str) -> String {
    format!("mutation {{ register(input: {{ email: \"{who}\", password: \"{PASSWORD}\" }}) {{ accessToken }} }}")
}

fn login_mutation(who: &str) -> String {
    format!("mutation {{ login(input: {{ email: \"{who}\", password: \"wrong password guess\" }}) {{ accessToken }} }}")
}

/// `t` of a `RateLimit` item.
fn reset_of(limit: &str) -> u64 {
    limit
        .rsplit_once(";t=")
        .and_then(|(_, t)| t.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn remaining_counts_down_under_the_configured_policy_and_a_refusal_says_when() {
    let app = spawn_app_with(|c| c.rates.rate_register_ip = quota("3/min")).await;
    let mut limits = Vec::new();
    for _ in 0..3 {
        let response = app
            .post(None, &register_mutation(&email()), json!({}))
            .await;
        assert_eq!(
            header(&response, "ratelimit-policy").as_deref(),
            Some("\"register_ip\";q=3;w=60"),
            "the policy is the configured quota"
        );
        assert_eq!(header(&response, "retry-after"), None, "allowed");
        limits.push(header(&response, "ratelimit").unwrap());
    }
    let remaining: Vec<&str> = limits
        .iter()
        .map(|l| l.split(";t=").next().unwrap())
        .collect();
    assert_eq!(
        remaining,
        [
            "\"register_ip\";r=2",
            "\"register_ip\";r=1",
            "\"register_ip\";r=0"
        ]
    );
    // Full again once every spent unit is back: at most a minute.
    assert!((1..=60).contains(&reset_of(&limits[0])), "{limits:?}");
    let refused = app
        .post(None, &register_mutation(&email()), json!({}))
        .await;
    let limit = header(&refused, "ratelimit").unwrap();
    let retry_after = header(&refused, "retry-after").unwrap();
    assert!(limit.starts_with("\"register_ip\";r=0;t="), "{limit}");
    assert_eq!(
        reset_of(&limit).to_string(),
        retry_after,
        "t is the instant of Retry-After"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), Some("RATE_LIMITED"));
}

#[tokio::test]
async fn a_login_announces_both_of_its_rules_and_never_a_key() {
    let app = spawn_app_with(|c| {
        c.rates.rate_login_ip = quota("10/min");
        c.rates.rate_login_email = quota("5/min");
    })
    .await;
    let who = email();
    let response = app.post(None, &login_mutation(&who), json!({})).await;
    let policy = header(&response, "ratelimit-policy").unwrap();
    let limit = header(&response, "ratelimit").unwrap();
    assert_eq!(policy, "\"login_ip\";q=10;w=60, \"login_email\";q=5;w=60");
    assert!(
        limit.starts_with("\"login_ip\";r=9;t=") && limit.contains(", \"login_email\";r=4;t="),
        "{limit}"
    );
    for value in [&policy, &limit] {
        let lower = value.to_lowercase();
        let local = who.split('@').next().unwrap();
        assert!(
            !value.contains("127.0.0.1") && !lower.contains(local) && !value.contains('|'),
            "no IP, email or key in {value}"
        );
    }
}

#[tokio::test]
async fn aliases_and_batches_report_the_state_after_the_last_spend() {
    let app = spawn_app_with(|c| {
        c.max_batch = 10;
        // Hourly quotas: nothing refills between the two requests, however
        // slowly a loaded machine serves them (a unit a minute did).
        c.rates.rate_login_ip = quota("10/h");
        c.rates.rate_login_email = quota("5/h");
    })
    .await;
    let who = email();
    let aliased = app
        .post(
            None,
            &aliased_logins(3, &who, "another wrong guess"),
            json!({}),
        )
        .await;
    let limit = header(&aliased, "ratelimit").unwrap();
    assert!(
        limit.starts_with("\"login_ip\";r=7;t=") && limit.contains("\"login_email\";r=2;t="),
        "three spends each: {limit}"
    );
    let ops: Vec<Value> = (0..2)
        .map(|_| json!({ "query": login_mutation(&who) }))
        .collect();
    let batch = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&ops)
        .send()
        .await
        .unwrap();
    let limit = header(&batch, "ratelimit").unwrap();
    assert!(
        limit.starts_with("\"login_ip\";r=5;t=") && limit.contains("\"login_email\";r=0;t="),
        "two more: {limit}"
    );
}

#[tokio::test]
async fn an_operation_without_a_limit_carries_only_its_callers_quota() {
    let app = spawn_app_with(|c| c.rates.rate_register_ip = quota("3/min")).await;
    let registered = app.register(&email()).await;
    let token = registered["accessToken"].as_str().unwrap();
    let response = app.post(Some(token), "{ me { id } }", json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        raw_header(&response, "ratelimit-policy").as_deref(),
        Some("\"user\";q=100000;w=1")
    );
    assert_eq!(header(&response, "ratelimit-policy"), None);
    assert_eq!(header(&response, "ratelimit"), None);
    assert_eq!(header(&response, "retry-after"), None);
}

#[tokio::test]
async fn quotas_by_caller_are_separate_and_sized_by_role() {
    let app = spawn_app_with(|c| {
        c.max_batch = 10;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rates.rate_anonymous = quota("3/h");
        c.rates.rate_user = quota("4/h");
        c.rates.rate_admin = quota("8/h");
    })
    .await;
    let from = |ip: &str| vec![("X-Forwarded-For", ip.to_owned())];
    // Accounts made from addresses of their own (each spends one
    // anonymous unit there).
    let account_from = |ip: &'static str| {
        let app = &app;
        async move {
            let who = email();
            let body = app
                .gql_with_headers(None, &register_mutation(&who), json!({}), &from(ip))
                .await;
            let token = body["data"]["register"]["accessToken"].as_str().unwrap();
            (token.to_owned(), who)
        }
    };
    let (alice, alice_email) = account_from("198.51.100.1").await;
    let (bob, _) = account_from("198.51.100.2").await;
    let admin = app.admin_token().await;

    // Anonymous: three operations from one address, a batch of two
    // counting two; the fourth is refused with 429 before it runs.
    let stranger = from("203.0.113.50");
    let one = app
        .post_with_headers(None, "{ __typename }", json!({}), &stranger)
        .await;
    assert_eq!(one.status(), StatusCode::OK);
    let batch = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("X-Forwarded-For", "203.0.113.50")
        .json(&json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), StatusCode::OK);
    let refused = app
        .post_with_headers(None, "{ __typename }", json!({}), &stranger)
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = raw_header(&refused, "retry-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), Some("RATE_LIMITED"), "{body}");
    assert!(body.get("data").is_none(), "nothing executed: {body}");
    // A refused batch answers each of its operations.
    let batch = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("X-Forwarded-For", "203.0.113.50")
        .json(&json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), StatusCode::TOO_MANY_REQUESTS);
    let bodies: Vec<Value> = batch.json().await.unwrap();
    assert_eq!(
        bodies.iter().map(code).collect::<Vec<_>>(),
        [Some("RATE_LIMITED"); 2]
    );
    // An invalid token is no way around it: it counts as anonymous.
    let forged = app
        .post_with_headers(Some("not.a.token"), "{ __typename }", json!({}), &stranger)
        .await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);

    // Signed in from that same address: each session has its own budget,
    // untouched by the address's anonymous one.
    let me = |token: String| {
        let app = &app;
        let stranger = stranger.clone();
        async move {
            app.post_with_headers(Some(&token), "{ me { id } }", json!({}), &stranger)
                .await
                .status()
        }
    };
    for _ in 0..4 {
        assert_eq!(me(alice.clone()).await, StatusCode::OK);
    }
    assert_eq!(me(alice.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        me(bob.clone()).await,
        StatusCode::OK,
        "Bob's budget is his own"
    );
    // The budget is the session's: a token of another session (one a
    // thief keeps spending, say) never empties the owner's.
    let again = app
        .login_with_headers(&alice_email, PASSWORD, &from("198.51.100.1"))
        .await;
    let alice_again = again["data"]["login"]["accessToken"].as_str().unwrap();
    assert_eq!(me(alice_again.to_owned()).await, StatusCode::OK);
    // An administrator's budget is larger (the admin's login was one
    // anonymous operation, from 127.0.0.1).
    for _ in 0..8 {
        assert_eq!(me(admin.clone()).await, StatusCode::OK);
    }
    assert_eq!(me(admin.clone()).await, StatusCode::TOO_MANY_REQUESTS);
    // Refusals are counted per rule.
    let metrics = app.metrics().await;
    for rule in ["anonymous_ip", "user", "admin"] {
        assert!(
            metrics.contains(&format!("warden_rate_limited_total{{rule=\"{rule}\"}}")),
            "{rule}"
        );
    }
}
