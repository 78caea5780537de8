//! The exact `Set-Cookie` headers of cookie mode, pinned: names, values,
//! attributes, their order, and the headers a batch carries. The other
//! cookie tests check parts of a header; these compare whole headers, so a
//! change in how they are built (not only in what they hold) shows here.

use reqwest::header;
use serde_json::{json, Value};
use warden::config::{Config, RefreshCookieMode, SameSite};

use crate::helpers::{email, spawn_app_with, TestApp, PASSWORD};

const REGISTER: &str =
    "mutation($i: RegisterInput!) { register(input: $i) { refreshToken deviceToken } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { refreshToken deviceToken } }";
const REFRESH: &str = "mutation { refresh { refreshToken deviceToken } }";
const LOGOUT: &str = "mutation { logout }";

/// The refresh token's and the device token's lifetimes, in seconds.
const REFRESH_TTL: u64 = 604_800;
const DEVICE_TTL: u64 = 7_776_000;

/// What one request sent back: its `Set-Cookie` values in order, and its body.
struct Answer {
    set_cookies: Vec<String>,
    body: Value,
}

async fn send(app: &TestApp, body: Value, cookie: Option<&str>) -> Answer {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&body);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    let response = req.send().await.unwrap();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    Answer {
        set_cookies,
        body: response.json().await.unwrap(),
    }
}

async fn post(app: &TestApp, query: &str, variables: Value, cookie: Option<&str>) -> Answer {
    send(
        app,
        json!({ "query": query, "variables": variables }),
        cookie,
    )
    .await
}

/// The attributes every Warden cookie carries after its `Max-Age`.
fn attributes(secure: bool) -> String {
    format!(
        "Path=/graphql; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Checks that `header` is exactly `{name}={token}; Max-Age={max_age};
/// {attributes}` with a non-empty token, and returns the token. A refresh
/// cookie lives as long as its token, counted from the moment of the
/// answer, so its `Max-Age` may be a second or two short of the lifetime
/// on a busy machine.
fn token_of(header: &str, name: &str, ttl: u64, secure: bool) -> String {
    let (pair, rest) = header.split_once("; ").unwrap();
    let (found, token) = pair.split_once('=').unwrap();
    assert_eq!(found, name, "{header}");
    assert!(!token.is_empty(), "{header}");
    let (max_age, tail) = rest.split_once("; ").unwrap();
    let secs: u64 = max_age.strip_prefix("Max-Age=").unwrap().parse().unwrap();
    assert!((ttl - 3..=ttl).contains(&secs), "{header}");
    assert_eq!(
        header,
        format!("{name}={token}; Max-Age={secs}; {}", attributes(secure))
    );
    assert_eq!(tail, attributes(secure), "{header}");
    token.to_owned()
}

/// The header that deletes the refresh cookie.
fn cleared(secure: bool) -> String {
    format!("warden_refresh=; Max-Age=0; {}", attributes(secure))
}

fn cookie_mode(mode: RefreshCookieMode, secure: bool) -> impl FnOnce(&mut Config) {
    move |c| {
        c.refresh_cookie = mode;
        c.cookie_secure = secure;
        c.max_batch = 4;
    }
}

/// The refresh then the device cookie of a `register` or `login`, checked
/// against the body; returns (refresh token, device token).
fn signed_in(
    answer: &Answer,
    field: &str,
    mode: RefreshCookieMode,
    secure: bool,
) -> (String, String) {
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    assert_eq!(answer.set_cookies.len(), 2, "{:?}", answer.set_cookies);
    let refresh = token_of(
        &answer.set_cookies[0],
        "warden_refresh",
        REFRESH_TTL,
        secure,
    );
    let device = token_of(&answer.set_cookies[1], "warden_device", DEVICE_TTL, secure);
    let payload = &answer.body["data"][field];
    match mode {
        RefreshCookieMode::Only => {
            assert_eq!(payload["refreshToken"], "", "{payload}");
            assert_eq!(payload["deviceToken"], Value::Null, "{payload}");
        }
        _ => {
            assert_eq!(payload["refreshToken"], refresh.as_str(), "{payload}");
            assert_eq!(payload["deviceToken"], device.as_str(), "{payload}");
        }
    }
    (refresh, device)
}

#[tokio::test]
async fn cookie_mode_sets_exactly_these_headers_on_register_login_refresh_and_logout() {
    for mode in [RefreshCookieMode::On, RefreshCookieMode::Only] {
        for secure in [true, false] {
            let app = spawn_app_with(cookie_mode(mode, secure)).await;
            let who = email();
            let vars = json!({ "i": { "email": who, "password": PASSWORD } });

            let registered = post(&app, REGISTER, vars.clone(), None).await;
            signed_in(&registered, "register", mode, secure);
            let logged_in = post(&app, LOGIN, vars.clone(), None).await;
            let (refresh, device) = signed_in(&logged_in, "login", mode, secure);

            // A refresh sets the successor alone: the device cookie stays.
            let jar = format!("warden_refresh={refresh}; warden_device={device}");
            let refreshed = post(&app, REFRESH, json!({}), Some(&jar)).await;
            assert!(refreshed.body["errors"].is_null(), "{}", refreshed.body);
            assert_eq!(
                refreshed.set_cookies.len(),
                1,
                "{:?}",
                refreshed.set_cookies
            );
            let next = token_of(
                &refreshed.set_cookies[0],
                "warden_refresh",
                REFRESH_TTL,
                secure,
            );
            assert_ne!(next, refresh);

            // A refresh that fails on the cookie clears it.
            let unknown = post(&app, REFRESH, json!({}), Some("warden_refresh=unknown")).await;
            assert!(!unknown.body["errors"].is_null(), "{}", unknown.body);
            assert_eq!(unknown.set_cookies, [cleared(secure)]);

            // A logout clears the refresh cookie only: the device stays trusted.
            let jar = format!("warden_refresh={next}; warden_device={device}");
            let logged_out = post(&app, LOGOUT, json!({}), Some(&jar)).await;
            assert_eq!(
                logged_out.body["data"]["logout"], true,
                "{}",
                logged_out.body
            );
            assert_eq!(logged_out.set_cookies, [cleared(secure)]);
            // Even with no cookie at all.
            let bare = post(&app, LOGOUT, json!({}), None).await;
            assert_eq!(bare.set_cookies, [cleared(secure)], "{}", bare.body);
        }
    }
}

#[tokio::test]
async fn a_batch_carries_the_cookies_of_each_operation_in_operation_order() {
    for mode in [RefreshCookieMode::On, RefreshCookieMode::Only] {
        let app = spawn_app_with(cookie_mode(mode, true)).await;
        let who = email();
        let vars = json!({ "i": { "email": who, "password": PASSWORD } });
        post(&app, REGISTER, vars.clone(), None).await;
        let batch = json!([
            { "query": LOGOUT },
            { "query": LOGIN, "variables": vars },
            { "query": LOGOUT },
        ]);
        let answer = send(&app, batch, None).await;
        let bodies = answer.body.as_array().unwrap();
        assert_eq!(bodies.len(), 3, "{}", answer.body);
        assert_eq!(answer.set_cookies.len(), 4, "{:?}", answer.set_cookies);
        assert_eq!(answer.set_cookies[0], cleared(true));
        let one = Answer {
            set_cookies: answer.set_cookies[1..3].to_vec(),
            body: bodies[1].clone(),
        };
        signed_in(&one, "login", mode, true);
        assert_eq!(answer.set_cookies[3], cleared(true));
    }
}

#[tokio::test]
async fn without_cookie_mode_no_operation_sets_a_cookie() {
    let app = spawn_app_with(cookie_mode(RefreshCookieMode::Off, true)).await;
    let who = email();
    let vars = json!({ "i": { "email": who, "password": PASSWORD } });
    let registered = post(&app, REGISTER, vars.clone(), None).await;
    let logged_in = post(&app, LOGIN, vars, None).await;
    let token = logged_in.body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let jar = format!("warden_refresh={token}");
    let refreshed = post(&app, REFRESH, json!({}), Some(&jar)).await;
    let logged_out = post(&app, LOGOUT, json!({}), Some(&jar)).await;
    for answer in [registered, logged_in, refreshed, logged_out] {
        assert!(answer.set_cookies.is_empty(), "{:?}", answer.set_cookies);
    }
}

/// The attributes after `Max-Age` for `SameSite=same_site` and `domain`.
fn attributes_with(same_site: &str, domain: Option<&str>, secure: bool) -> String {
    let domain = domain.map(|d| format!("; Domain={d}")).unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    let partitioned = if same_site == "None" {
        "; Partitioned"
    } else {
        ""
    };
    format!("Path=/graphql{domain}; HttpOnly; SameSite={same_site}{secure}{partitioned}")
}

#[tokio::test]
async fn same_site_and_domain_settings_shape_every_cookie_set_and_cleared() {
    for (same_site, domain, secure) in [
        (SameSite::Lax, None, false),
        (SameSite::Strict, Some("example.test"), true),
        (SameSite::None, None, true),
        (SameSite::None, Some("example.test"), true),
    ] {
        let app = spawn_app_with(|c| {
            c.refresh_cookie = RefreshCookieMode::On;
            c.cookie_secure = secure;
            c.cookie_same_site = same_site;
            c.cookie_domain = domain.map(str::to_owned);
        })
        .await;
        let tail = attributes_with(same_site.as_str(), domain, secure);
        let who = email();
        let vars = json!({ "i": { "email": who, "password": PASSWORD } });
        post(&app, REGISTER, vars.clone(), None).await;
        let login = post(&app, LOGIN, vars, None).await;
        assert_eq!(login.set_cookies.len(), 2, "{:?}", login.set_cookies);
        for (header, name) in login
            .set_cookies
            .iter()
            .zip(["warden_refresh", "warden_device"])
        {
            let (pair, rest) = header.split_once("; ").unwrap();
            assert!(pair.starts_with(&format!("{name}=")), "{header}");
            let (max_age, found) = rest.split_once("; ").unwrap();
            assert!(max_age.starts_with("Max-Age="), "{header}");
            assert_eq!(found, tail, "{header}");
        }
        let refresh = login.set_cookies[0].split_once(';').unwrap().0.to_owned();
        let refreshed = post(&app, REFRESH, json!({}), Some(&refresh)).await;
        assert!(refreshed.body["errors"].is_null(), "{}", refreshed.body);
        assert!(
            refreshed.set_cookies[0].ends_with(&format!("; {tail}")),
            "{:?}",
            refreshed.set_cookies
        );
        // Cleared with the same attributes, or the browser keeps it.
        let out = post(&app, LOGOUT, json!({}), None).await;
        assert_eq!(
            out.set_cookies,
            [format!("warden_refresh=; Max-Age=0; {tail}")]
        );
    }
}
