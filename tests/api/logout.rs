//! `logout` and `logoutAllDevices`: immediate effect, idempotence, no oracle.

use serde_json::json;
use warden::{domain::AuditEventKind, services::audit_log};

use crate::helpers::{code, email, reason, s, spawn_app, PASSWORD};

const LOGOUT: &str = "mutation($t: String) { logout(refreshToken: $t) }";

#[tokio::test]
async fn logout_with_a_refresh_token_ends_that_session_at_once() {
    let app = spawn_app().await;
    let who = email();
    let first = app.register(&who).await;
    let other = app.login(&who, PASSWORD).await;
    let body = app
        .gql(None, LOGOUT, json!({ "t": s(&first, "refreshToken") }))
        .await;
    assert_eq!(body["data"]["logout"], true);
    assert_eq!(
        reason(&app.me(Some(s(&first, "accessToken"))).await),
        Some("REVOKED")
    );
    assert_eq!(
        code(&app.refresh(s(&first, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    let still = app
        .me(Some(s(&other["data"]["login"], "accessToken")))
        .await;
    assert!(
        still["errors"].is_null(),
        "the other session lives: {still}"
    );
}

#[tokio::test]
async fn logout_without_an_argument_ends_the_bearer_tokens_session() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let access = s(&first, "accessToken");
    let body = app
        .gql(Some(access), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_eq!(reason(&app.me(Some(access)).await), Some("REVOKED"));
    assert_eq!(
        code(&app.refresh(s(&first, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    let again = app
        .gql(Some(access), "mutation { logout }", json!({}))
        .await;
    assert_eq!(again["data"]["logout"], true, "idempotent: {again}");
}

#[tokio::test]
async fn logout_without_any_token_is_unauthenticated() {
    let app = spawn_app().await;
    let body = app.gql(None, "mutation { logout }", json!({})).await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
    assert_eq!(reason(&body), Some("MISSING"));
}

#[tokio::test]
async fn logout_answers_true_for_unknown_garbage_and_repeated_tokens() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let unknown = warden::auth::opaque_token::generate();
    use secrecy::ExposeSecret;
    for t in [token, token, unknown.expose_secret(), "garbage"] {
        let body = app.gql(None, LOGOUT, json!({ "t": t })).await;
        assert_eq!(body["data"]["logout"], true, "{body}");
        assert!(body["errors"].is_null());
    }
    let revoked = audit_log::Query {
        kinds: vec![AuditEventKind::SessionRevoked],
        limit: 10,
        ..Default::default()
    };
    let events = audit_log::page(app.state.db.read(), &revoked)
        .await
        .unwrap()
        .0;
    assert_eq!(events.len(), 1, "only the real revocation is audited");
}

#[tokio::test]
async fn logout_all_devices_ends_every_session_of_the_caller_only() {
    let app = spawn_app().await;
    let who = email();
    let sessions = [
        app.register(&who).await,
        app.login(&who, PASSWORD).await["data"]["login"].clone(),
        app.login(&who, PASSWORD).await["data"]["login"].clone(),
    ];
    let bystander = app.register(&email()).await;
    let body = app
        .gql(
            Some(s(&sessions[1], "accessToken")),
            "mutation { logoutAllDevices }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["logoutAllDevices"], 3, "{body}");
    for session in &sessions {
        assert_eq!(
            reason(&app.me(Some(s(session, "accessToken"))).await),
            Some("REVOKED")
        );
        assert_eq!(
            code(&app.refresh(s(session, "refreshToken")).await),
            Some("INVALID_REFRESH_TOKEN")
        );
    }
    assert!(app.me(Some(s(&bystander, "accessToken"))).await["errors"].is_null());
    let again = app
        .gql(
            Some(s(&sessions[0], "accessToken")),
            "mutation { logoutAllDevices }",
            json!({}),
        )
        .await;
    assert_eq!(reason(&again), Some("REVOKED"));
}

#[tokio::test]
async fn logout_all_devices_needs_a_token() {
    let app = spawn_app().await;
    let body = app
        .gql(None, "mutation { logoutAllDevices }", json!({}))
        .await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn logout_works_with_a_lapsed_access_token() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    app.clock.advance(std::time::Duration::from_secs(3600));
    let access = s(&first, "accessToken");
    assert_eq!(reason(&app.me(Some(access)).await), Some("EXPIRED"));
    let body = app
        .gql(Some(access), "mutation { logout }", json!({}))
        .await;
    assert_eq!(body["data"]["logout"], true, "{body}");
    assert_eq!(
        code(&app.refresh(s(&first, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn logout_all_devices_is_audited_with_its_count() {
    let app = spawn_app().await;
    let who = email();
    let first = app.register(&who).await;
    app.login(&who, PASSWORD).await;
    let access = s(&first, "accessToken");
    let body = app
        .gql(
            Some(access),
            "mutation { a: logoutAllDevices b: logoutAllDevices }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["a"], 2, "{body}");
    assert_eq!(
        body["errors"][0]["path"],
        json!(["b"]),
        "the second field sees the revocation"
    );
    assert_eq!(reason(&body), Some("REVOKED"));
    let query = audit_log::Query {
        kinds: vec![AuditEventKind::AllSessionsRevoked],
        limit: 10,
        ..Default::default()
    };
    let events = audit_log::page(app.state.db.read(), &query)
        .await
        .unwrap()
        .0;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].detail.as_ref().map(|d| d["count"].clone()),
        Some(json!(2))
    );
}
