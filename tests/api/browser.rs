//! Browser apps: the refresh cookie and CORS.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with, TestApp, PASSWORD};

const REFRESH: &str = "mutation { refresh { accessToken refreshToken } }";

fn cookie_mode(app: &mut warden::config::Config) {
    app.refresh_cookie = warden::config::RefreshCookieMode::On;
}

/// POSTs `query` with an optional cookie; returns (Set-Cookie, body).
async fn post(
    app: &TestApp,
    query: &str,
    variables: Value,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> (Option<String>, Value) {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = cookie {
        req = req.header(
            header::COOKIE,
            format!("theme=dark; warden_refresh={token}"),
        );
    }
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let response = req.send().await.unwrap();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (set_cookie, response.json().await.unwrap())
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim()
        .strip_prefix("warden_refresh=")
        .unwrap()
}

#[tokio::test]
async fn in_cookie_mode_login_sets_a_strict_http_only_cookie_that_refresh_reads() {
    let app = spawn_app_with(cookie_mode).await;
    let who = email();
    app.register(&who).await;
    let (set, body) = post(
        &app,
        "mutation($i: LoginInput!) { login(input: $i) { refreshToken } }",
        json!({ "i": { "email": who, "password": PASSWORD } }),
        None,
        None,
    )
    .await;
    let set = set.expect("Set-Cookie on login");
    for part in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/graphql",
        "Max-Age=604800",
    ] {
        assert!(set.contains(part), "{set} lacks {part}");
    }
    assert_eq!(
        cookie_value(&set),
        s(&body["data"]["login"], "refreshToken")
    );

    let (rotated, refreshed) = post(&app, REFRESH, json!({}), Some(cookie_value(&set)), None).await;
    assert!(refreshed["errors"].is_null(), "{refreshed}");
    let rotated = rotated.expect("refresh sets the new cookie");
    assert_ne!(cookie_value(&rotated), cookie_value(&set));
    assert_eq!(
        cookie_value(&rotated),
        s(&refreshed["data"]["refresh"], "refreshToken")
    );
}

#[tokio::test]
async fn in_cookie_mode_a_request_without_the_cookie_cannot_refresh() {
    let app = spawn_app_with(cookie_mode).await;
    app.register(&email()).await;
    let (_, body) = post(&app, REFRESH, json!({}), None, None).await;
    assert_eq!(code(&body), Some("INVALID_REFRESH_TOKEN"));
}

#[tokio::test]
async fn without_cookie_mode_the_cookie_is_ignored() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    let (set, body) = post(
        &app,
        REFRESH,
        json!({}),
        Some(s(&payload, "refreshToken")),
        None,
    )
    .await;
    assert!(set.is_none(), "no cookie outside cookie mode");
    assert_eq!(code(&body), Some("INVALID_REFRESH_TOKEN"));
}

#[tokio::test]
async fn in_cookie_mode_logout_ends_the_cookies_session_and_clears_it() {
    let app = spawn_app_with(|c| {
        c.refresh_cookie = warden::config::RefreshCookieMode::On;
        c.cookie_secure = false;
    })
    .await;
    let payload = app.register(&email()).await;
    let (set, body) = post(
        &app,
        "mutation { logout }",
        json!({}),
        Some(s(&payload, "refreshToken")),
        None,
    )
    .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    let set = set.expect("logout clears the cookie");
    assert!(
        set.contains("Max-Age=0") && !set.contains("Secure"),
        "{set}"
    );
    assert_eq!(
        reason(&app.me(Some(s(&payload, "accessToken"))).await),
        Some("REVOKED")
    );
}

#[tokio::test]
async fn cors_grants_only_listed_origins_with_credentials() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    for (origin, granted) in [
        ("https://app.example.com", true),
        ("https://evil.example", false),
        ("https://app.example.com.evil.example", false),
    ] {
        let preflight = app
            .client
            .request(Method::OPTIONS, format!("{}/graphql", app.address))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type, authorization",
            )
            .send()
            .await
            .unwrap();
        let allow = preflight
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let post = app
            .client
            .post(format!("{}/graphql", app.address))
            .header(header::ORIGIN, origin)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::OK);
        let post_allow = post
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if granted {
            assert_eq!(allow.as_deref(), Some(origin));
            assert_eq!(post_allow.as_deref(), Some(origin));
            assert_eq!(
                post.headers()
                    .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                    .unwrap(),
                "true"
            );
        } else {
            assert_eq!(allow, None, "no grant for {origin}");
            assert_eq!(post_allow, None, "no grant for {origin}");
        }
    }
}

#[test]
fn a_wildcard_origin_is_refused_at_start_up() {
    assert!(warden::config::Config::from_vars([("WARDEN_CORS_ORIGINS", "*")]).is_err());
    assert!(
        warden::config::Config::from_vars([("WARDEN_CORS_ORIGINS", "https://*.example.com")])
            .is_err()
    );
    assert!(warden::config::Config::from_vars([(
        "WARDEN_CORS_ORIGINS",
        "https://a.example.com,http://localhost:5173"
    )])
    .is_ok());
}
