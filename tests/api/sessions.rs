//! The caller's sessions: listing, ending one, ending the others, and
//! changing the password.

use serde_json::{json, Value};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with, TestApp, PASSWORD};

const SESSIONS: &str = "{ sessions { id createdAt lastUsedAt expiresAt ip userAgent current } }";
const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let body = app.gql(Some(token), SESSIONS, json!({})).await;
    body["data"]["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn sessions_lists_the_callers_live_sessions_and_marks_the_current_one() {
    let app = spawn_app().await;
    let who = email();
    let first = app.register(&who).await;
    let second = app.login(&who, PASSWORD).await["data"]["login"].clone();
    let dead = app.login(&who, PASSWORD).await["data"]["login"].clone();
    app.gql(
        Some(s(&dead, "accessToken")),
        "mutation { logout }",
        json!({}),
    )
    .await;
    app.register(&email()).await; // someone else
    let list = sessions(&app, s(&second, "accessToken")).await;
    let ids: Vec<&str> = list.iter().filter_map(|x| x["id"].as_str()).collect();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(ids.contains(&s(&first, "sessionId")) && ids.contains(&s(&second, "sessionId")));
    let current: Vec<&Value> = list.iter().filter(|x| x["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], second["sessionId"]);
    assert_eq!(list[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn revoke_session_on_another_users_session_changes_nothing_and_looks_unknown() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let theirs = app.register(&email()).await;
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    let other = app
        .gql(
            Some(s(&mine, "accessToken")),
            revoke,
            json!({ "id": theirs["sessionId"] }),
        )
        .await;
    let unknown = app
        .gql(
            Some(s(&mine, "accessToken")),
            revoke,
            json!({ "id": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(other, unknown, "indistinguishable");
    assert_eq!(other["data"]["revokeSession"], false);
    assert!(
        app.me(Some(s(&theirs, "accessToken"))).await["errors"].is_null(),
        "their session lives"
    );
    assert!(app.refresh(s(&theirs, "refreshToken")).await["errors"].is_null());
}

#[tokio::test]
async fn revoke_session_ends_one_of_my_sessions_at_once() {
    let app = spawn_app().await;
    let who = email();
    let laptop = app.register(&who).await;
    let phone = app.login(&who, PASSWORD).await["data"]["login"].clone();
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    let body = app
        .gql(
            Some(s(&laptop, "accessToken")),
            revoke,
            json!({ "id": phone["sessionId"] }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"], true, "{body}");
    assert_eq!(
        reason(&app.me(Some(s(&phone, "accessToken"))).await),
        Some("REVOKED")
    );
    assert_eq!(
        code(&app.refresh(s(&phone, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    assert!(app.me(Some(s(&laptop, "accessToken"))).await["errors"].is_null());
    let again = app
        .gql(
            Some(s(&laptop, "accessToken")),
            revoke,
            json!({ "id": phone["sessionId"] }),
        )
        .await;
    assert_eq!(again["data"]["revokeSession"], false);
}

#[tokio::test]
async fn logout_other_devices_keeps_only_the_current_session() {
    let app = spawn_app().await;
    let who = email();
    let keep = app.register(&who).await;
    let others = [
        app.login(&who, PASSWORD).await["data"]["login"].clone(),
        app.login(&who, PASSWORD).await["data"]["login"].clone(),
    ];
    let body = app
        .gql(
            Some(s(&keep, "accessToken")),
            "mutation { logoutOtherDevices }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["logoutOtherDevices"], 2, "{body}");
    for other in &others {
        assert_eq!(
            reason(&app.me(Some(s(other, "accessToken"))).await),
            Some("REVOKED")
        );
    }
    assert!(app.me(Some(s(&keep, "accessToken"))).await["errors"].is_null());
    assert_eq!(sessions(&app, s(&keep, "accessToken")).await.len(), 1);
}

#[tokio::test]
async fn after_change_password_the_other_sessions_are_dead_and_the_current_one_lives() {
    let app = spawn_app().await;
    let who = email();
    let current = app.register(&who).await;
    let other = app.login(&who, PASSWORD).await["data"]["login"].clone();
    let token = s(&current, "accessToken");
    let new_password = "a brand new passphrase";

    let wrong = app
        .gql(
            Some(token),
            CHANGE,
            json!({ "c": "not my password", "n": new_password }),
        )
        .await;
    assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"));
    let weak = app
        .gql(
            Some(token),
            CHANGE,
            json!({ "c": PASSWORD, "n": "password1" }),
        )
        .await;
    assert_eq!(code(&weak), Some("BAD_USER_INPUT"));
    assert_eq!(weak["errors"][0]["extensions"]["field"], "newPassword");
    assert!(
        app.me(Some(s(&other, "accessToken"))).await["errors"].is_null(),
        "failures change nothing"
    );

    let body = app
        .gql(
            Some(token),
            CHANGE,
            json!({ "c": PASSWORD, "n": new_password }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    assert_eq!(
        reason(&app.me(Some(s(&other, "accessToken"))).await),
        Some("REVOKED")
    );
    assert_eq!(
        code(&app.refresh(s(&other, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    assert!(
        app.me(Some(token)).await["errors"].is_null(),
        "the current session lives"
    );
    assert!(app.refresh(s(&current, "refreshToken")).await["errors"].is_null());
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    assert!(app.login(&who, new_password).await["errors"].is_null());

    let log = app
        .gql(Some(token), "{ auditLog(filter: { kinds: [PASSWORD_CHANGED, ACCESS_DENIED] }) { edges { node { kind detail } } } }", json!({}))
        .await;
    let kinds: Vec<&str> = log["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node"]["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["PASSWORD_CHANGED", "ACCESS_DENIED"], "{log}");
}

#[tokio::test]
async fn change_password_is_rate_limited_like_login() {
    let app = spawn_app_with(|c| c.rates.rate_login_email = "2/min".parse().unwrap()).await;
    let current = app.register(&email()).await;
    let token = s(&current, "accessToken");
    let mut codes = Vec::new();
    for _ in 0..3 {
        let body = app
            .gql(
                Some(token),
                CHANGE,
                json!({ "c": "guess guess guess", "n": "a brand new passphrase" }),
            )
            .await;
        codes.push(code(&body).map(str::to_owned));
    }
    assert_eq!(codes[2].as_deref(), Some("RATE_LIMITED"), "{codes:?}");
}
