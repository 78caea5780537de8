//! Restarts: the generated signing key survives, revocations stay revoked.

use crate::helpers::{code, email, reason, s, spawn_app};

#[tokio::test]
async fn a_restart_keeps_the_generated_key_and_revoked_sessions_revoked() {
    let app = spawn_app().await;
    assert!(
        app.config.jwt_secret.is_none(),
        "this test is about the generated key"
    );
    let live = app.register(&email()).await;
    let dead = app.register(&email()).await;
    let out = app
        .gql(
            Some(s(&dead, "accessToken")),
            "mutation { logout }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(out["data"]["logout"], true);

    let app = app.restart().await;
    let me = app.me(Some(s(&live, "accessToken"))).await;
    assert!(
        me["errors"].is_null(),
        "a token from before the restart still verifies: {me}"
    );
    assert!(app.refresh(s(&live, "refreshToken")).await["errors"].is_null());
    assert_eq!(
        reason(&app.me(Some(s(&dead, "accessToken"))).await),
        Some("REVOKED")
    );
    assert_eq!(
        code(&app.refresh(s(&dead, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn a_replay_inside_the_interval_gets_the_same_successor_after_a_restart() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken").to_owned();
    let before = app.refresh(&token).await;
    let app = app.restart().await;
    let after = app.refresh(&token).await;
    assert!(
        before["errors"].is_null() && after["errors"].is_null(),
        "{before} {after}"
    );
    assert_eq!(
        before["data"]["refresh"]["refreshToken"], after["data"]["refresh"]["refreshToken"],
        "the successor key is stored, not per process"
    );
}
