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

/// POSTs `query` with a raw `Cookie` header; returns (Set-Cookie, body).
async fn post_cookies(app: &TestApp, query: &str, cookies: &str) -> (Option<String>, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header(header::COOKIE, cookies)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (set_cookie, response.json().await.unwrap())
}

#[tokio::test]
async fn with_several_refresh_cookies_the_good_one_is_found_and_kept() {
    let app = spawn_app_with(cookie_mode).await;
    let mine = app.register(&email()).await;
    let good = s(&mine, "refreshToken");
    // A stale cookie at another path, garbage, and an unknown token come
    // first, as a browser may send them.
    let unknown = warden::auth::opaque_token::generate();
    use secrecy::ExposeSecret;
    let cookies = format!(
        "warden_refresh=short; warden_refresh={}; theme=dark; warden_refresh={good}",
        unknown.expose_secret()
    );
    let (set, body) = post_cookies(&app, REFRESH, &cookies).await;
    assert!(body["errors"].is_null(), "{body}");
    let set = set.expect("the successor is set");
    assert_eq!(
        cookie_value(&set),
        s(&body["data"]["refresh"], "refreshToken")
    );
    assert!(!set.contains("Max-Age=0"), "the good cookie is not cleared");
}

#[tokio::test]
async fn a_planted_spent_token_riding_along_does_not_revoke_the_session() {
    let app = spawn_app_with(cookie_mode).await;
    let mine = app.register(&email()).await;
    let spent = s(&mine, "refreshToken").to_owned();
    app.clock.advance(std::time::Duration::from_secs(60));
    let current = s(
        &app.refresh(&spent).await["data"]["refresh"],
        "refreshToken",
    )
    .to_owned();
    app.clock.advance(std::time::Duration::from_secs(60));
    // Past the grace interval, the spent token alone would be reuse; sent
    // first, beside the current one, it must not end the session.
    let (_, body) = post_cookies(
        &app,
        REFRESH,
        &format!("warden_refresh={spent}; warden_refresh={current}"),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let next = s(&body["data"]["refresh"], "refreshToken");
    assert!(app.refresh(next).await["errors"].is_null(), "session alive");
    // Alone, it is still reuse, and ends the session.
    let (set, body) = post_cookies(&app, REFRESH, &format!("warden_refresh={spent}")).await;
    assert_eq!(code(&body), Some("REFRESH_TOKEN_REUSED"), "{body}");
    assert!(set.is_some_and(|c| c.contains("Max-Age=0")));
}

#[tokio::test]
async fn at_most_four_refresh_cookies_are_tried() {
    let app = spawn_app_with(cookie_mode).await;
    let mine = app.register(&email()).await;
    let good = s(&mine, "refreshToken");
    let junk: Vec<String> = (0..4)
        .map(|_| {
            use secrecy::ExposeSecret;
            format!(
                "warden_refresh={}",
                warden::auth::opaque_token::generate().expose_secret()
            )
        })
        .collect();
    let cookies = format!("{}; warden_refresh={good}", junk.join("; "));
    let (_, body) = post_cookies(&app, REFRESH, &cookies).await;
    assert_eq!(code(&body), Some("INVALID_REFRESH_TOKEN"), "{body}");
}

#[tokio::test]
async fn logout_with_several_refresh_cookies_ends_each_of_their_sessions() {
    let app = spawn_app_with(cookie_mode).await;
    let a = app.register(&email()).await;
    let b = app.register(&email()).await;
    let cookies = format!(
        "warden_refresh={}; warden_refresh={}",
        s(&a, "refreshToken"),
        s(&b, "refreshToken")
    );
    let (_, body) = post_cookies(&app, "mutation { logout }", &cookies).await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    for payload in [&a, &b] {
        let me = app.me(Some(s(payload, "accessToken"))).await;
        assert_eq!(reason(&me), Some("REVOKED"), "{me}");
    }
}

#[tokio::test]
async fn in_cookie_only_mode_no_body_carries_the_refresh_token() {
    let app = spawn_app_with(|c| c.refresh_cookie = warden::config::RefreshCookieMode::Only).await;
    let who = email();
    let (set, body) = post(
        &app,
        "mutation($i: RegisterInput!) { register(input: $i) { refreshToken } }",
        json!({ "i": { "email": who, "password": PASSWORD } }),
        None,
        None,
    )
    .await;
    assert_eq!(body["data"]["register"]["refreshToken"], "", "{body}");
    let token = cookie_value(set.as_deref().expect("cookie on register")).to_owned();
    let (set, body) = post(
        &app,
        "mutation($i: LoginInput!) { login(input: $i) { refreshToken } }",
        json!({ "i": { "email": who, "password": PASSWORD } }),
        None,
        None,
    )
    .await;
    assert_eq!(body["data"]["login"]["refreshToken"], "", "{body}");
    assert!(!cookie_value(set.as_deref().expect("cookie on login")).is_empty());
    let (set, body) = post(&app, REFRESH, json!({}), Some(&token), None).await;
    assert_eq!(body["data"]["refresh"]["refreshToken"], "", "{body}");
    let next = cookie_value(set.as_deref().expect("cookie on refresh")).to_owned();
    assert!(!next.is_empty() && next != token);
    // The token from the cookie still works.
    let (_, body) = post(&app, REFRESH, json!({}), Some(&next), None).await;
    assert!(body["errors"].is_null(), "{body}");
}

/// A preflight from `origin` for a POST with `request_headers`.
async fn preflight(app: &TestApp, origin: &str, request_headers: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, format!("{}/graphql", app.address))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, request_headers)
        .send()
        .await
        .unwrap()
}

fn header_of(response: &reqwest::Response, name: header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn a_preflight_allows_exactly_the_configured_headers_for_the_max_age() {
    const APP: &str = "https://app.example.com";
    let app = spawn_app_with(|c| c.cors_origins = vec![APP.into()]).await;
    let default_list = warden::config::DEFAULT_CORS_ALLOW_HEADERS.replace(',', ", ");
    // What Apollo Client and a traced fetch ask for: all of it allowed.
    let asked = "content-type, apollo-require-preflight, x-apollo-operation-name, \
                 apollographql-client-name, apollographql-client-version, traceparent, \
                 tracestate, baggage, sentry-trace, x-request-id, authorization";
    let answer = preflight(&app, APP, asked).await;
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let allowed = header_of(&answer, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
    assert_eq!(allowed, default_list);
    for name in asked.split(", ") {
        assert!(
            allowed.split(", ").any(|a| a == name),
            "{name} in {allowed}"
        );
    }
    assert_eq!(
        header_of(&answer, header::ACCESS_CONTROL_MAX_AGE).as_deref(),
        Some("600")
    );
    // A header outside the list is not echoed back: no allow for it.
    let answer = preflight(&app, APP, "content-type, x-evil").await;
    let allowed = header_of(&answer, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
    assert_eq!(allowed, default_list);
    assert!(!allowed.contains("x-evil"), "{allowed}");
    // An unlisted origin gets nothing, whatever it asks.
    let answer = preflight(&app, "https://evil.example", "content-type").await;
    assert_eq!(
        header_of(&answer, header::ACCESS_CONTROL_ALLOW_HEADERS),
        None
    );
    assert_eq!(header_of(&answer, header::ACCESS_CONTROL_MAX_AGE), None);

    let custom = spawn_app_with(|c| {
        c.cors_origins = vec![APP.into()];
        c.cors_allow_headers = vec!["content-type".into(), "x-tenant".into()];
        c.cors_max_age = std::time::Duration::from_secs(7200);
    })
    .await;
    let answer = preflight(&custom, APP, "content-type, traceparent").await;
    assert_eq!(
        header_of(&answer, header::ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
        Some("content-type, x-tenant")
    );
    assert_eq!(
        header_of(&answer, header::ACCESS_CONTROL_MAX_AGE).as_deref(),
        Some("7200")
    );
}

#[tokio::test]
async fn a_granted_origin_may_read_the_retry_rate_limit_and_request_id_headers() {
    const APP: &str = "https://app.example.com";
    let app = spawn_app_with(|c| c.cors_origins = vec![APP.into()]).await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header(header::ORIGIN, APP)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let exposed = header_of(&response, header::ACCESS_CONTROL_EXPOSE_HEADERS).unwrap();
    let exposed: Vec<&str> = exposed.split(", ").collect();
    assert_eq!(
        exposed,
        [
            "retry-after",
            "ratelimit",
            "ratelimit-policy",
            "x-request-id"
        ]
    );
}

#[test]
fn cors_allow_headers_are_validated_at_start_up() {
    use warden::config::Config;
    for bad in ["x-a b", "x:y", "content-type,x\u{e9}"] {
        assert!(
            Config::from_vars([("WARDEN_CORS_ALLOW_HEADERS", bad)]).is_err(),
            "{bad}"
        );
    }
    let custom =
        Config::from_vars([("WARDEN_CORS_ALLOW_HEADERS", "Content-Type, X-Tenant")]).unwrap();
    assert_eq!(custom.cors_allow_headers, ["content-type", "x-tenant"]);
    assert!(Config::from_vars([("WARDEN_CORS_MAX_AGE", "soon")]).is_err());
}

/// Runs `warden serve` with `env`; returns its exit status and standard
/// error, or fails the test when it is still running after 30 s (it did
/// not refuse to start).
fn serve_refused(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WARDEN_") {
            cmd.env_remove(key);
        }
    }
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let mut child = cmd
        .arg("serve")
        .env("WARDEN_DATABASE_URL", db)
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("warden started with {env:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn same_site_none_without_secure_refuses_to_start_naming_the_variable() {
    let (status, stderr) = serve_refused(&[
        ("WARDEN_COOKIE_SAME_SITE", "none"),
        ("WARDEN_COOKIE_SECURE", "false"),
    ]);
    assert!(!status.success());
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("WARDEN_COOKIE_SAME_SITE"), "{stderr}");
    assert!(lines[0].contains("WARDEN_COOKIE_SECURE"), "{stderr}");
}

#[test]
fn a_public_suffix_cookie_domain_refuses_to_start_naming_the_variable() {
    for bad in ["com", "co.uk", "https://example.com"] {
        let (status, stderr) = serve_refused(&[("WARDEN_COOKIE_DOMAIN", bad)]);
        assert!(!status.success());
        assert!(stderr.contains("WARDEN_COOKIE_DOMAIN"), "{stderr}");
    }
}
