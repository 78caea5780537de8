//! Device tokens: the lockout that a stranger cannot turn against the account's owner.
//!
//! Each test closes an email the way a distributed attack would: wrong
//! guesses from several addresses (through a trusted proxy at 127.0.0.1
//! that reports them in `X-Forwarded-For`) until the email's count reaches
//! `WARDEN_LOCKOUT_GLOBAL_THRESHOLD`.

use std::time::Duration;

use serde_json::{json, Value};
use warden::config::{Config, RefreshCookieMode};

use crate::helpers::{code, email, spawn_app_with, TestApp, PASSWORD};

/// Per client and email.
const THRESHOLD: u32 = 3;
/// Per email from every client.
const GLOBAL: u32 = 6;

const LOGIN: &str =
    "mutation($i: LoginInput!) { login(input: $i) { accessToken deviceToken user { id } } }";

fn small_thresholds(c: &mut Config) {
    c.lockout_threshold = THRESHOLD;
    c.lockout_global_threshold = GLOBAL;
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn login_from(
    app: &TestApp,
    ip: &str,
    who: &str,
    password: &str,
    device: Option<&str>,
) -> Value {
    app.gql_with_headers(
        None,
        LOGIN,
        json!({ "i": { "email": who, "password": password, "deviceToken": device } }),
        &[("x-forwarded-for", ip.to_owned())],
    )
    .await
}

/// The device token of a successful login.
fn device_token(body: &Value) -> String {
    assert!(body["errors"].is_null(), "login failed: {body}");
    body["data"]["login"]["deviceToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no deviceToken in {body}"))
        .to_owned()
}

/// A distributed attack: `THRESHOLD` wrong guesses from each of many
/// addresses in 198.51.100.0/24, until refused. Returns how many passwords
/// were checked (answers `INVALID_CREDENTIALS`).
async fn attack(app: &TestApp, who: &str) -> usize {
    let mut checked = 0;
    for client in 1..=10 {
        let ip = format!("198.51.100.{client}");
        for _ in 0..THRESHOLD {
            let body = login_from(app, &ip, who, "wrong password guess", None).await;
            match code(&body) {
                Some("INVALID_CREDENTIALS") => checked += 1,
                Some("ACCOUNT_LOCKED") => {}
                other => panic!("unexpected {other:?}: {body}"),
            }
        }
    }
    checked
}

async fn graphql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let body = app.gql(Some(token), query, variables).await;
    assert!(body["errors"].is_null(), "{query}: {body}");
    body["data"].clone()
}

#[tokio::test]
async fn the_owner_with_a_device_token_logs_in_during_a_distributed_attack() {
    let app = spawn_app_with(small_thresholds).await;
    let who = email();
    app.register(&who).await;
    let home = login_from(&app, "203.0.113.7", &who, PASSWORD, None).await;
    let token = device_token(&home);

    let checked = attack(&app, &who).await;
    assert_eq!(
        checked, GLOBAL as usize,
        "30 guesses from 10 addresses, at most the global threshold checked"
    );

    // Travelling: a new address, but the device it logged in from before.
    let away = login_from(&app, "192.0.2.50", &who, PASSWORD, Some(&token)).await;
    let renewed = device_token(&away);
    assert_ne!(renewed, token, "each login renews the device token");
    // The renewed token works; the one it replaced no longer does.
    let again = login_from(&app, "192.0.2.50", &who, PASSWORD, Some(&renewed)).await;
    assert!(again["errors"].is_null(), "{again}");
    let stale = login_from(&app, "192.0.2.50", &who, PASSWORD, Some(&token)).await;
    assert_eq!(code(&stale), Some("ACCOUNT_LOCKED"), "{stale}");
}

#[tokio::test]
async fn without_a_device_token_the_owner_is_refused_exactly_like_the_attacker() {
    let app = spawn_app_with(small_thresholds).await;
    let (who, ghost) = (email(), email());
    app.register(&who).await;
    let token = device_token(&login_from(&app, "203.0.113.7", &who, PASSWORD, None).await);
    attack(&app, &who).await;
    attack(&app, &ghost).await;

    let refusal = |ip: &'static str,
                   target: String,
                   password: &'static str,
                   device: Option<String>| {
        let app = &app;
        async move {
            let response = app
                .post_with_headers(
                    None,
                    LOGIN,
                    json!({ "i": { "email": target, "password": password, "deviceToken": device } }),
                    &[("x-forwarded-for", ip.to_owned())],
                )
                .await;
            let text = response.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap();
            let wait = body["errors"][0]["extensions"]["retryAfter"].as_u64();
            // The locks began moments apart: only `retryAfter` may differ, by a second.
            (
                text.replace(
                    &format!("\"retryAfter\":{}", wait.unwrap_or(0)),
                    "\"retryAfter\":_",
                ),
                wait,
            )
        }
    };
    let (owner, owner_wait) = refusal("192.0.2.50", who.clone(), PASSWORD, None).await;
    let (attacker, attacker_wait) =
        refusal("198.51.100.99", who.clone(), "wrong password guess", None).await;
    // An unknown email, with a real device token of another account.
    let (unknown, unknown_wait) =
        refusal("192.0.2.50", ghost.clone(), PASSWORD, Some(token.clone())).await;
    assert!(owner.contains("ACCOUNT_LOCKED"), "{owner}");
    assert_eq!(
        owner, attacker,
        "the owner without a token is just another client"
    );
    assert_eq!(owner, unknown, "an unknown email answers the same");
    for wait in [owner_wait, attacker_wait, unknown_wait] {
        let wait = wait.unwrap();
        assert!(
            (899..=900).contains(&wait),
            "the lock lasts the window: {wait}"
        );
    }
}

#[tokio::test]
async fn a_stolen_device_token_of_another_account_is_useless() {
    let app = spawn_app_with(small_thresholds).await;
    let (alice, bob) = (email(), email());
    app.register(&alice).await;
    app.register(&bob).await;
    let bobs = device_token(&login_from(&app, "203.0.113.8", &bob, PASSWORD, None).await);
    let bobs_laptop = device_token(&login_from(&app, "203.0.113.9", &bob, PASSWORD, None).await);
    attack(&app, &alice).await;

    let body = login_from(&app, "192.0.2.50", &alice, PASSWORD, Some(&bobs)).await;
    assert_eq!(code(&body), Some("ACCOUNT_LOCKED"), "{body}");
    // ...and a device token is no licence to guess: a trusted device gets
    // the same per-client allowance as any client.
    attack(&app, &bob).await;
    for _ in 0..THRESHOLD {
        let body = login_from(
            &app,
            "192.0.2.66",
            &bob,
            "wrong password guess",
            Some(&bobs),
        )
        .await;
        assert_eq!(code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    let body = login_from(&app, "192.0.2.66", &bob, PASSWORD, Some(&bobs)).await;
    assert_eq!(code(&body), Some("ACCOUNT_LOCKED"), "{body}");
    // The lock is that device's own: Bob's other device still gets in.
    let body = login_from(&app, "192.0.2.66", &bob, PASSWORD, Some(&bobs_laptop)).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_revoked_an_expired_or_a_logged_out_device_token_is_useless() {
    let app = spawn_app_with(|c| {
        small_thresholds(c);
        c.device_token_ttl = Duration::from_secs(5 * 60);
    })
    .await;
    let [revoked, expired, logged_out, changed] = [email(), email(), email(), email()];
    let mut tokens = Vec::new();
    for who in [&revoked, &expired, &logged_out, &changed] {
        app.register(who).await;
        let body = login_from(&app, "203.0.113.7", who, PASSWORD, None).await;
        let access = body["data"]["login"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        tokens.push((device_token(&body), access));
    }

    // Revoked from the device list.
    let (token, access) = &tokens[0];
    let list = graphql(
        &app,
        access,
        "{ trustedDevices { id expiresAt } }",
        json!({}),
    )
    .await;
    let devices = list["trustedDevices"].as_array().unwrap();
    assert_eq!(
        devices.len(),
        2,
        "registration and login each trusted this client: {list}"
    );
    let newest = devices[0]["id"].as_str().unwrap().to_owned();
    let m = "mutation($id: ID!) { revokeTrustedDevice(id: $id) }";
    let done = graphql(&app, access, m, json!({ "id": newest })).await;
    assert_eq!(done["revokeTrustedDevice"], json!(true));
    let again = graphql(&app, access, m, json!({ "id": newest })).await;
    assert_eq!(again["revokeTrustedDevice"], json!(false), "only once");
    let list = graphql(&app, access, "{ trustedDevices { id } }", json!({})).await;
    assert_eq!(list["trustedDevices"].as_array().unwrap().len(), 1);
    attack(&app, &revoked).await;
    let body = login_from(&app, "192.0.2.50", &revoked, PASSWORD, Some(token)).await;
    assert_eq!(code(&body), Some("ACCOUNT_LOCKED"), "revoked: {body}");

    // Logged out everywhere.
    let (token, access) = &tokens[2];
    graphql(&app, access, "mutation { logoutAllDevices }", json!({})).await;
    attack(&app, &logged_out).await;
    let body = login_from(&app, "192.0.2.50", &logged_out, PASSWORD, Some(token)).await;
    assert_eq!(code(&body), Some("ACCOUNT_LOCKED"), "logged out: {body}");

    // A password change.
    let (token, access) = &tokens[3];
    let m = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";
    let new_password = "a brand new passphrase 42";
    graphql(&app, access, m, json!({ "c": PASSWORD, "n": new_password })).await;
    attack(&app, &changed).await;
    let body = login_from(&app, "192.0.2.50", &changed, new_password, Some(token)).await;
    assert_eq!(
        code(&body),
        Some("ACCOUNT_LOCKED"),
        "password changed: {body}"
    );

    // Expired: the token lives 5 minutes, the lock 15.
    let (token, _) = &tokens[1];
    attack(&app, &expired).await;
    app.clock.advance(Duration::from_secs(6 * 60));
    let body = login_from(&app, "192.0.2.50", &expired, PASSWORD, Some(token)).await;
    assert_eq!(code(&body), Some("ACCOUNT_LOCKED"), "expired: {body}");
}

#[tokio::test]
async fn fifty_concurrent_tries_from_fifty_addresses_check_at_most_the_global_threshold() {
    let app = spawn_app_with(|c| {
        small_thresholds(c);
        c.lockout_global_threshold = 10;
    })
    .await;
    let who = email();
    app.register(&who).await;
    let bodies = futures::future::join_all((0..50).map(|i| {
        let ip = format!("198.51.100.{}", i + 1);
        let app = &app;
        let who = &who;
        async move { login_from(app, &ip, who, "wrong password guess", None).await }
    }))
    .await;
    let count = |c: &str| bodies.iter().filter(|b| code(b) == Some(c)).count();
    let codes: Vec<Option<&str>> = bodies.iter().map(code).collect();
    assert_eq!(
        (count("INVALID_CREDENTIALS"), count("ACCOUNT_LOCKED")),
        (10, 40),
        "exactly 10 passwords checked; answers: {codes:?}"
    );
    let log = app
        .gql(Some(&app.admin_token().await), "{ auditLog(filter: { kinds: [LOGIN_FAILED, ACCOUNT_LOCKED] }, first: 200) { edges { node { kind detail } } } }", json!({}))
        .await;
    let nodes: Vec<&Value> = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let failed = nodes.iter().filter(|n| n["kind"] == "LOGIN_FAILED").count();
    let locks: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["kind"] == "ACCOUNT_LOCKED")
        .map(|n| &n["detail"]["scope"])
        .collect();
    assert_eq!(failed, 10, "one audited verification per checked password");
    assert_eq!(locks, [&json!("email")], "one email lock armed");
}

#[tokio::test]
async fn the_attackers_refused_tries_do_not_extend_either_lock() {
    let app = spawn_app_with(small_thresholds).await;
    let who = email();
    app.register(&who).await;
    // The client's lock: an attacker at 198.51.100.1 (once also the owner's
    // café) spends its allowance, then keeps trying for 14 minutes.
    for _ in 0..THRESHOLD {
        login_from(&app, "198.51.100.1", &who, "wrong password guess", None).await;
    }
    // The email's lock: enough other addresses to close it.
    attack(&app, &who).await;
    for minute in 1..=14u64 {
        app.clock.advance(Duration::from_secs(60));
        for client in [1, 200 + minute] {
            let ip = format!("198.51.100.{client}");
            let body = login_from(&app, &ip, &who, "wrong password guess", None).await;
            assert_eq!(
                code(&body),
                Some("ACCOUNT_LOCKED"),
                "minute {minute}: {body}"
            );
            let wait = body["errors"][0]["extensions"]["retryAfter"]
                .as_u64()
                .unwrap();
            assert!(wait <= 900 - 60 * minute, "minute {minute}: {wait}");
        }
    }
    app.clock.advance(Duration::from_secs(61));
    let owner = login_from(&app, "198.51.100.1", &who, PASSWORD, None).await;
    assert!(
        owner["errors"].is_null(),
        "both locks ended on time: {owner}"
    );
}

#[tokio::test]
async fn a_trusted_device_keeps_its_own_count_behind_an_address_it_shares_with_an_attacker() {
    let app = spawn_app_with(small_thresholds).await;
    let who = email();
    app.register(&who).await;
    let nat = "203.0.113.99";
    let token = device_token(&login_from(&app, nat, &who, PASSWORD, None).await);
    for _ in 0..THRESHOLD {
        login_from(&app, nat, &who, "wrong password guess", None).await;
    }
    let untrusted = login_from(&app, nat, &who, PASSWORD, None).await;
    assert_eq!(code(&untrusted), Some("ACCOUNT_LOCKED"), "{untrusted}");
    let trusted = login_from(&app, nat, &who, PASSWORD, Some(&token)).await;
    assert!(trusted["errors"].is_null(), "{trusted}");
}

#[tokio::test]
async fn in_cookie_mode_the_device_token_travels_in_an_httponly_cookie() {
    for mode in [RefreshCookieMode::On, RefreshCookieMode::Only] {
        let app = spawn_app_with(|c| {
            small_thresholds(c);
            c.refresh_cookie = mode;
            c.cookie_secure = false;
        })
        .await;
        let who = email();
        app.register(&who).await;
        let vars = json!({ "i": { "email": who, "password": PASSWORD } });
        let response = app
            .post_with_headers(
                None,
                LOGIN,
                vars.clone(),
                &[("x-forwarded-for", "203.0.113.7".into())],
            )
            .await;
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("warden_device="))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no device cookie in {mode:?}"));
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/graphql",
            "Max-Age=7776000",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        let body: Value = response.json().await.unwrap();
        let in_body = body["data"]["login"]["deviceToken"].as_str();
        match mode {
            RefreshCookieMode::Only => assert_eq!(in_body, None, "no script sees it"),
            _ => assert!(in_body.is_some_and(|t| cookie.contains(t)), "{body}"),
        }
        let pair = cookie.split(';').next().unwrap().to_owned();

        attack(&app, &who).await;
        let headers = [("x-forwarded-for", "192.0.2.50".to_owned())];
        let without = app
            .post_with_headers(None, LOGIN, vars.clone(), &headers)
            .await;
        let without: Value = without.json().await.unwrap();
        assert_eq!(code(&without), Some("ACCOUNT_LOCKED"), "{without}");
        let headers = [
            ("x-forwarded-for", "192.0.2.50".to_owned()),
            ("cookie", pair),
        ];
        let with = app
            .post_with_headers(None, LOGIN, vars.clone(), &headers)
            .await;
        let with: Value = with.json().await.unwrap();
        assert!(
            with["errors"].is_null(),
            "{mode:?}: the cookie proves the device: {with}"
        );
    }
}

#[tokio::test]
async fn an_unlock_clears_the_email_and_every_client_count_of_that_email_only() {
    use warden::{auth::email::Email, services::lockout};

    let app = spawn_app_with(small_thresholds).await;
    let (who, other) = (email(), email());
    app.register(&who).await;
    attack(&app, &who).await;
    attack(&app, &other).await;
    let pseudonym = app.state.pseudonyms.of(&Email::parse(&who).unwrap());
    // The email's row and the two clients that were counted: the eight
    // refused after the email locked left no row.
    let removed = lockout::unlock(app.state.db.write(), &pseudonym)
        .await
        .unwrap();
    assert_eq!(removed, 3, "the email's row and two clients' rows");
    let body = login_from(&app, "198.51.100.1", &who, PASSWORD, None).await;
    assert!(body["errors"].is_null(), "{body}");
    let body = login_from(&app, "192.0.2.50", &other, PASSWORD, None).await;
    assert_eq!(
        code(&body),
        Some("ACCOUNT_LOCKED"),
        "other emails stay locked"
    );
}

/// `changePassword` checks the current password too. Keyed by address, a
/// stolen session could check it from one address after another while the
/// email is closed to everyone else (8 addresses: 24 checks); counted per
/// session, it gets the client threshold in all.
#[tokio::test]
async fn a_session_gets_the_threshold_of_change_password_checks_from_any_number_of_addresses() {
    let app = spawn_app_with(small_thresholds).await;
    let who = email();
    let token = app.register(&who).await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    attack(&app, &who).await;
    let mut checked = 0;
    let mut locked = 0;
    for client in 1..=8 {
        let body = app
            .gql_with_headers(
                Some(&token),
                "mutation { changePassword(currentPassword: \"not it at all 5\", newPassword: \"a fresh long passphrase 9\") }",
                json!({}),
                &[("x-forwarded-for", format!("203.0.113.{client}"))],
            )
            .await;
        match code(&body) {
            Some("INVALID_CREDENTIALS") => checked += 1,
            Some("ACCOUNT_LOCKED") => locked += 1,
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    assert_eq!(
        (checked, locked),
        (THRESHOLD as usize, 8 - THRESHOLD as usize)
    );
}
