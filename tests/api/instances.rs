//! Several Warden instances on one database: what one does, the others see.

use std::time::Duration;

use serde_json::json;
use warden::{clock::Clock, startup::App};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with, PASSWORD};

#[tokio::test]
async fn a_token_minted_by_one_instance_works_on_another() {
    let a = spawn_app().await;
    let b = a.sibling().await;
    let payload = a.register(&email()).await;
    let me = b.me(Some(s(&payload, "accessToken"))).await;
    assert_eq!(me["data"]["me"]["id"], payload["user"]["id"], "{me}");
    let refreshed = b.refresh(s(&payload, "refreshToken")).await;
    assert!(refreshed["errors"].is_null(), "{refreshed}");
}

#[tokio::test]
async fn a_logout_on_one_instance_is_refused_by_the_other_on_the_next_request() {
    let a = spawn_app().await;
    let b = a.sibling().await;
    let payload = a.register(&email()).await;
    let access = s(&payload, "accessToken");
    assert!(b.me(Some(access)).await["errors"].is_null());
    let out = a.gql(Some(access), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true);
    assert_eq!(reason(&b.me(Some(access)).await), Some("REVOKED"));
}

#[tokio::test]
async fn a_replay_on_another_instance_is_detected() {
    let a = spawn_app().await;
    let b = a.sibling().await;
    let payload = a.register(&email()).await;
    let token = s(&payload, "refreshToken");
    let rotated = a.refresh(token).await;
    assert!(rotated["errors"].is_null());
    // Inside the interval the other instance answers with the same successor.
    let retry = b.refresh(token).await;
    assert_eq!(
        retry["data"]["refresh"]["refreshToken"],
        rotated["data"]["refresh"]["refreshToken"]
    );
    a.clock.advance(Duration::from_secs(11));
    assert_eq!(code(&b.refresh(token).await), Some("REFRESH_TOKEN_REUSED"));
    let successor = s(&rotated["data"]["refresh"], "refreshToken");
    assert_eq!(
        code(&a.refresh(successor).await),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn a_lockout_on_one_instance_holds_on_the_other() {
    let a = spawn_app_with(|c| c.lockout_threshold = 2).await;
    let b = a.sibling().await;
    let who = email();
    a.register(&who).await;
    a.login(&who, "wrong password guess").await;
    b.login(&who, "wrong password guess").await;
    assert_eq!(code(&a.login(&who, PASSWORD).await), Some("ACCOUNT_LOCKED"));
    assert_eq!(code(&b.login(&who, PASSWORD).await), Some("ACCOUNT_LOCKED"));
}

#[tokio::test]
async fn instances_starting_together_on_a_fresh_database_both_come_up() {
    let first = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = first.config.clone();
    config.database_url = crate::helpers::test_database(&dir).await.into();
    let (x, y) = tokio::join!(
        App::build(config.clone(), Clock::system()),
        App::build(config.clone(), Clock::system())
    );
    let (x, y) = (
        x.expect("first instance starts"),
        y.expect("second instance starts"),
    );
    assert_ne!(x.port(), y.port());
}
