//! API keys: created once by a session, sent as `Authorization: Bearer
//! wdn_…`, acting as their owner within their scopes, never changing a
//! password, a factor, an email or a key; and `POST /oauth/introspect`.

use std::time::Duration;

use entity::api_key;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{json, Value};
use warden::cleanup::run_once;

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with, TestApp, PASSWORD};

const CREATE: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id name prefix scopes createdAt lastUsedAt expiresAt } } }";

/// Creates a key with `scopes` from `token`'s session; the whole payload.
async fn create_key(app: &TestApp, token: &str, scopes: &[&str], expires_at: Value) -> Value {
    let body = app
        .gql(
            Some(token),
            CREATE,
            json!({ "i": { "name": "ci", "scopes": scopes, "expiresAt": expires_at } }),
        )
        .await;
    assert!(body["errors"].is_null(), "createApiKey failed: {body}");
    body["data"]["createApiKey"].clone()
}

async fn user_with_key(app: &TestApp, scopes: &[&str]) -> (Value, String) {
    let account = app.register(&email()).await;
    let created = create_key(app, s(&account, "accessToken"), scopes, Value::Null).await;
    (account, s(&created, "secret").to_owned())
}

async fn introspect(app: &TestApp, key: Option<&str>, token: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/oauth/introspect", app.address))
        .form(&[("token", token)]);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

async fn audit_kinds(app: &TestApp, token: &str) -> Vec<String> {
    let body = app
        .gql(
            Some(token),
            "{ auditLog(first: 200) { edges { node { kind } } } }",
            json!({}),
        )
        .await;
    body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_key_acts_as_its_owner_and_its_secret_is_shown_once() {
    let app = spawn_app().await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let created = create_key(&app, token, &["USER"], Value::Null).await;
    let secret = s(&created, "secret");
    assert!(secret.starts_with("wdn_") && secret.len() == 53, "{secret}");
    assert_eq!(created["apiKey"]["prefix"], json!(&secret[..12]));
    assert_eq!(created["apiKey"]["scopes"], json!(["USER"]));

    let me = app.me(Some(secret)).await;
    assert!(me["errors"].is_null(), "{me}");
    assert_eq!(me["data"]["me"]["id"], account["user"]["id"]);

    let listed = app
        .gql(
            Some(token),
            "{ apiKeys { id prefix name scopes lastUsedAt } }",
            json!({}),
        )
        .await;
    let keys = listed["data"]["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], created["apiKey"]["id"]);
    assert!(!keys[0]["lastUsedAt"].is_null(), "{listed}");
    assert!(
        !listed.to_string().contains(&secret[12..]),
        "the secret is never listed"
    );

    // Used again within the hour: one API_KEY_USED row, not one per request.
    app.me(Some(secret)).await;
    let kinds = audit_kinds(&app, token).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "API_KEY_CREATED").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "API_KEY_USED").count(),
        1,
        "{kinds:?}"
    );
    let rows: Vec<String> = app
        .gql(
            Some(token),
            "{ auditLog { edges { node { detail } } } }",
            json!({}),
        )
        .await["data"]
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        !rows.concat().contains(&secret[12..]),
        "no secret in audit rows"
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    let app = spawn_app().await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let created = create_key(&app, token, &["USER"], Value::Null).await;
    let secret = s(&created, "secret");
    assert!(app.me(Some(secret)).await["errors"].is_null());

    let revoked = app
        .gql(
            Some(token),
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": created["apiKey"]["id"] }),
        )
        .await;
    assert_eq!(revoked["data"]["revokeApiKey"], json!(true), "{revoked}");
    let me = app.me(Some(secret)).await;
    assert_eq!(code(&me), Some("UNAUTHENTICATED"), "{me}");
    assert_eq!(reason(&me), Some("REVOKED"), "{me}");
    let listed = app.gql(Some(token), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(listed["data"]["apiKeys"], json!([]));
    assert!(audit_kinds(&app, token)
        .await
        .contains(&"API_KEY_REVOKED".to_owned()));
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let expires = app.clock.now() + chrono::Duration::hours(1);
    let created = create_key(&app, token, &["USER"], json!(expires.to_rfc3339())).await;
    let secret = s(&created, "secret");
    assert!(app.me(Some(secret)).await["errors"].is_null());

    // A key that expired before it was made is refused up front.
    let past = app
        .gql(
            Some(token),
            CREATE,
            json!({ "i": { "name": "old", "scopes": ["USER"], "expiresAt": "2020-01-01T00:00:00Z" } }),
        )
        .await;
    assert_eq!(code(&past), Some("BAD_USER_INPUT"), "{past}");

    app.clock.advance(Duration::from_secs(3601));
    let me = app.me(Some(secret)).await;
    assert_eq!(code(&me), Some("UNAUTHENTICATED"), "{me}");
}

#[tokio::test]
async fn cleanup_removes_ended_keys_after_a_month_and_keeps_live_ones() {
    let app = spawn_app().await;
    let t0 = app.clock.now();
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let live = create_key(&app, token, &["USER"], Value::Null).await;
    let expiring = create_key(
        &app,
        token,
        &["USER"],
        json!((t0 + chrono::Duration::days(1)).to_rfc3339()),
    )
    .await;
    let revoked = create_key(&app, token, &["USER"], Value::Null).await;
    app.gql(
        Some(token),
        "mutation($id: ID!) { revokeApiKey(id: $id) }",
        json!({ "id": revoked["apiKey"]["id"] }),
    )
    .await;
    let soon = run_once(&app.state.db, &app.config, t0 + chrono::Duration::days(29))
        .await
        .unwrap();
    assert_eq!(soon.api_keys, 0);
    let later = run_once(&app.state.db, &app.config, t0 + chrono::Duration::days(32))
        .await
        .unwrap();
    assert_eq!(later.api_keys, 2, "{later}");
    let left = api_key::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(json!(left[0].id.to_string()), live["apiKey"]["id"]);
    assert_ne!(json!(left[0].id.to_string()), expiring["apiKey"]["id"]);
}

#[tokio::test]
async fn a_key_cannot_change_a_password_a_factor_an_email_or_a_key() {
    let app = spawn_app().await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let created = create_key(&app, token, &["USER"], Value::Null).await;
    let secret = s(&created, "secret");
    for (operation, variables) in [
        (
            "mutation($p: String!) { changePassword(currentPassword: $p, newPassword: \"another fine passphrase\") }",
            json!({ "p": PASSWORD }),
        ),
        (
            "mutation($p: String) { startTotpEnrollment(password: $p) { secret } }",
            json!({ "p": PASSWORD }),
        ),
        (
            "mutation($p: String!) { requestEmailChange(newEmail: \"new@example.com\", currentPassword: $p) }",
            json!({ "p": PASSWORD }),
        ),
        (
            "mutation { startPasskeyRegistration(password: null) }",
            json!({}),
        ),
        (CREATE, json!({ "i": { "name": "x", "scopes": ["USER"] } })),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": created["apiKey"]["id"] }),
        ),
    ] {
        let body = app.gql(Some(secret), operation, variables).await;
        assert_eq!(code(&body), Some("FORBIDDEN"), "{operation}: {body}");
    }
    // Nothing changed: the password still logs in, the key still works.
    let login = app.login(s(&account["user"], "email"), PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");
    assert!(app.me(Some(secret)).await["errors"].is_null());
}

#[tokio::test]
async fn with_an_authenticator_app_on_a_key_is_still_forbidden_not_asked_for_a_code() {
    let app = spawn_app().await;
    let (token, _, _) = crate::mfa::enrolled(&app, &email()).await;
    let created = create_key(&app, &token, &["USER"], Value::Null).await;
    for operation in [
        "mutation($p: String!) { changePassword(currentPassword: $p, newPassword: \"another fine passphrase\") }",
        "mutation($p: String!) { requestEmailChange(newEmail: \"new@example.com\", currentPassword: $p) }",
        "mutation($p: String) { disableTotp(password: $p) }",
        "mutation { regenerateRecoveryCodes(code: \"000000\") }",
    ] {
        let body = app
            .gql(Some(s(&created, "secret")), operation, json!({ "p": PASSWORD }))
            .await;
        assert_eq!(code(&body), Some("FORBIDDEN"), "{operation}: {body}");
    }
}

#[tokio::test]
async fn admin_operations_need_the_admin_scope_and_an_admin_owner() {
    let app = spawn_app().await;
    let other = app.register(&email()).await;
    let other_id = other["user"]["id"].clone();
    let read_other =
        "query($u: ID!) { auditLog(filter: { userId: $u }) { edges { node { kind } } } }";

    // A user may not give a key the ADMIN scope.
    let user = app.register(&email()).await;
    let refused = app
        .gql(
            Some(s(&user, "accessToken")),
            CREATE,
            json!({ "i": { "name": "x", "scopes": ["ADMIN"] } }),
        )
        .await;
    assert_eq!(code(&refused), Some("FORBIDDEN"), "{refused}");

    let admin = app.admin_token().await;
    let user_key = create_key(&app, &admin, &["USER"], Value::Null).await;
    let body = app
        .gql(
            Some(s(&user_key, "secret")),
            read_other,
            json!({ "u": other_id }),
        )
        .await;
    assert_eq!(
        code(&body),
        Some("FORBIDDEN"),
        "a USER key of an admin: {body}"
    );

    let admin_key = create_key(&app, &admin, &["USER", "ADMIN"], Value::Null).await;
    let body = app
        .gql(
            Some(s(&admin_key, "secret")),
            read_other,
            json!({ "u": other_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "an ADMIN key of an admin: {body}");
    assert!(!body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .is_empty());

    // An introspection key runs no GraphQL.
    let introspect_key = create_key(&app, &admin, &["INTROSPECT"], Value::Null).await;
    let me = app.me(Some(s(&introspect_key, "secret"))).await;
    assert_eq!(code(&me), Some("FORBIDDEN"), "{me}");
}

#[tokio::test]
async fn a_malformed_key_is_refused_before_its_bucket_or_the_database() {
    // One request per key an hour: a key that reached the limiter would be
    // RATE_LIMITED on its second try.
    let app = spawn_app_with(|c| c.rates.rate_api_key = "1/h".parse().unwrap()).await;
    let (_, secret) = user_with_key(&app, &["USER"]).await;
    let mut typo = secret.clone().into_bytes();
    typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    for bad in [typo.as_str(), "wdn_short", &format!("{secret}0")] {
        for _ in 0..3 {
            let me = app.me(Some(bad)).await;
            assert_eq!(code(&me), Some("UNAUTHENTICATED"), "{bad}: {me}");
            assert_eq!(reason(&me), Some("INVALID"), "{bad}: {me}");
        }
    }
    // A well-formed key is counted before it is looked up, known or not.
    let unknown = "wdn_00000000000000000000000000000000000000000002CZclj";
    let first = app.me(Some(unknown)).await;
    assert_eq!(reason(&first), Some("INVALID"), "{first}");
    // Its bucket empty, the request is refused before anything runs.
    let second = app.post(Some(unknown), "{ me { id } }", json!({})).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let second: Value = second.json().await.unwrap();
    assert_eq!(code(&second), Some("RATE_LIMITED"), "{second}");
    // The real key has its own bucket.
    assert!(app.me(Some(&secret)).await["errors"].is_null());
    let again = app.post(Some(&secret), "{ me { id } }", json!({})).await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn made_up_keys_are_anonymous_and_spend_their_clients_quota() {
    // Each made-up key has a fresh bucket of its own; once it is known to
    // name no key, the request is anonymous and its IP pays.
    let app = spawn_app_with(|c| c.rates.rate_anonymous = "4/h".parse().unwrap()).await;
    // (Registering the owner of a live key spends one unit.)
    let (_, secret) = user_with_key(&app, &["USER"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let made_up = warden::auth::api_key::generate();
        let made_up = secrecy::ExposeSecret::expose_secret(&made_up.secret).to_owned();
        // A field that needs no caller: it must not be a way around.
        let response = app.post(Some(&made_up), "{ __typename }", json!({})).await;
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // A live key is not anonymous: it spends its own bucket, not the IP's.
    let me = app.post(Some(&secret), "{ me { id } }", json!({})).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn introspection_answers_for_live_tokens_and_keys_and_honours_logout_at_once() {
    let app = spawn_app().await;
    let (_, gateway) = user_with_key(&app, &["INTROSPECT"]).await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");

    let response = introspect(&app, Some(&gateway), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["sub"], account["user"]["id"]);
    assert_eq!(answer["sid"], account["sessionId"]);
    assert_eq!(answer["role"], json!("USER"));
    assert_eq!(answer["scope"], json!("user"));
    assert!(answer["exp"].as_i64().unwrap() > app.clock.now().timestamp());

    let logout = app.gql(Some(token), "mutation { logout }", json!({})).await;
    assert!(logout["errors"].is_null(), "{logout}");
    let answer: Value = introspect(&app, Some(&gateway), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer, json!({ "active": false }));

    // An API key: live, then revoked.
    let other = app.register(&email()).await;
    let created = create_key(&app, s(&other, "accessToken"), &["USER"], Value::Null).await;
    let answer: Value = introspect(&app, Some(&gateway), s(&created, "secret"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["active"], json!(true), "{answer}");
    assert_eq!(answer["sub"], other["user"]["id"]);
    assert_eq!(answer["scope"], json!("user"));
    app.gql(
        Some(s(&other, "accessToken")),
        "mutation($id: ID!) { revokeApiKey(id: $id) }",
        json!({ "id": created["apiKey"]["id"] }),
    )
    .await;
    for dead in [s(&created, "secret"), "not a token", "wdn_nope"] {
        let answer: Value = introspect(&app, Some(&gateway), dead)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer, json!({ "active": false }), "{dead}");
    }
}

#[tokio::test]
async fn introspection_needs_a_key_with_the_introspect_scope() {
    let app = spawn_app().await;
    let account = app.register(&email()).await;
    let token = s(&account, "accessToken");
    let (_, user_key) = user_with_key(&app, &["USER"]).await;

    let none = introspect(&app, None, token).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    // An access token is not a caller here, nor is a made-up key.
    for caller in [
        token,
        "wdn_00000000000000000000000000000000000000000002CZclj",
    ] {
        let response = introspect(&app, Some(caller), token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{caller}");
    }
    let forbidden = introspect(&app, Some(&user_key), token).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let body: Value = forbidden.json().await.unwrap();
    assert!(body.get("active").is_none(), "{body}");
}

#[tokio::test]
async fn a_disabled_accounts_keys_stop_working_and_work_again_when_enabled() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (account, secret) = user_with_key(&app, &["USER"]).await;
    let id = account["user"]["id"].as_str().unwrap().to_owned();
    assert!(app.me(Some(&secret)).await["errors"].is_null());
    let disabled = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { disableUser(id: $id, reason: \"test\") { disabled } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        disabled["data"]["disableUser"]["disabled"], true,
        "{disabled}"
    );
    let me = app.me(Some(&secret)).await;
    assert_eq!(code(&me), Some("UNAUTHENTICATED"), "{me}");
    let enabled = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { enableUser(id: $id) { disabled } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        enabled["data"]["enableUser"]["disabled"], false,
        "{enabled}"
    );
    assert!(app.me(Some(&secret)).await["errors"].is_null());
}
