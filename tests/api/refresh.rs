//! `refresh`: rotation, the grace interval, reuse detection, expiry and concurrency.

use std::time::Duration;

use entity::{refresh_token, session};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;
use warden::{
    auth::refresh,
    domain::AuditEventKind,
    meta::RequestMeta,
    services::{
        audit,
        rotation::{self, Claim, Rotation},
        sessions::{self, RevokeReason},
    },
};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with};

async fn kinds(
    app: &crate::helpers::TestApp,
    kind: AuditEventKind,
) -> Vec<entity::audit_event::Model> {
    let query = audit::Query {
        kinds: vec![kind],
        limit: 100,
        ..Default::default()
    };
    audit::page(app.state.db.read(), &query).await.unwrap().0
}

#[tokio::test]
async fn refresh_rotates_the_token_and_the_new_one_works() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let body = app.refresh(s(&first, "refreshToken")).await;
    let second = &body["data"]["refresh"];
    assert!(body["errors"].is_null(), "{body}");
    assert_ne!(second["refreshToken"], first["refreshToken"]);
    assert_eq!(second["sessionId"], first["sessionId"]);
    assert!(app.me(Some(s(second, "accessToken"))).await["errors"].is_null());
    let third = app.refresh(s(second, "refreshToken")).await;
    assert!(third["errors"].is_null(), "{third}");
    assert_eq!(kinds(&app, AuditEventKind::TokenRefreshed).await.len(), 2);
}

#[tokio::test]
async fn only_the_hash_of_a_refresh_token_is_stored() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let rows = refresh_token::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].token_hash, token);
    assert_eq!(rows[0].token_hash, warden::auth::refresh::hash(token));
}

#[tokio::test]
async fn a_replay_inside_the_interval_returns_the_same_successor() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let a = app.refresh(token).await;
    app.clock.advance(Duration::from_secs(5));
    let b = app.refresh(token).await;
    assert!(a["errors"].is_null() && b["errors"].is_null(), "{a} {b}");
    assert_eq!(
        a["data"]["refresh"]["refreshToken"],
        b["data"]["refresh"]["refreshToken"]
    );
    let sessions = session::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert!(
        sessions[0].revoked_at.is_none(),
        "a retry must not log the user out"
    );
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let rotated = app.refresh(token).await;
    let successor = s(&rotated["data"]["refresh"], "refreshToken").to_owned();
    let access = s(&rotated["data"]["refresh"], "accessToken").to_owned();

    app.clock.advance(Duration::from_secs(11));
    let replay = app.refresh(token).await;
    assert_eq!(code(&replay), Some("REFRESH_TOKEN_REUSED"), "{replay}");

    // The revocation was committed although the request failed.
    assert_eq!(
        code(&app.refresh(&successor).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    let me = app.me(Some(&access)).await;
    assert_eq!(reason(&me), Some("REVOKED"));
    let events = kinds(&app, AuditEventKind::RefreshTokenReuseDetected).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].severity, 3, "reuse is CRITICAL");
    assert_eq!(
        events[0].session_id.map(|s| s.to_string()).as_deref(),
        first["sessionId"].as_str()
    );
}

#[tokio::test]
async fn a_replay_after_the_successor_was_used_is_reuse_even_inside_the_interval() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let second = app.refresh(token).await;
    let third = app
        .refresh(s(&second["data"]["refresh"], "refreshToken"))
        .await;
    assert!(third["errors"].is_null());
    let replay = app.refresh(token).await;
    assert_eq!(code(&replay), Some("REFRESH_TOKEN_REUSED"));
    assert_eq!(
        code(
            &app.refresh(s(&third["data"]["refresh"], "refreshToken"))
                .await
        ),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn a_zero_interval_turns_the_grace_off() {
    let app = spawn_app_with(|c| c.refresh_reuse_interval = Duration::ZERO).await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    assert!(app.refresh(token).await["errors"].is_null());
    assert_eq!(
        code(&app.refresh(token).await),
        Some("REFRESH_TOKEN_REUSED")
    );
}

#[tokio::test]
async fn unknown_malformed_and_missing_tokens_are_invalid() {
    let app = spawn_app().await;
    let unknown = warden::auth::refresh::random_token();
    use secrecy::ExposeSecret;
    for token in [
        json!(unknown.expose_secret()),
        json!("short"),
        json!(""),
        json!(null),
    ] {
        let body = app
            .gql(
                None,
                "mutation($t: String) { refresh(refreshToken: $t) { accessToken } }",
                json!({ "t": token }),
            )
            .await;
        assert_eq!(
            code(&body),
            Some("INVALID_REFRESH_TOKEN"),
            "{token}: {body}"
        );
    }
    let body = app
        .gql(None, "mutation { refresh { accessToken } }", json!({}))
        .await;
    assert_eq!(code(&body), Some("INVALID_REFRESH_TOKEN"));
    assert_eq!(kinds(&app, AuditEventKind::RefreshFailed).await.len(), 5);
}

#[tokio::test]
async fn an_expired_refresh_token_is_invalid() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    assert_eq!(
        code(&app.refresh(s(&first, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_whatever_the_refreshes() {
    let app = spawn_app_with(|c| c.session_max_age = Duration::from_secs(3600)).await;
    let first = app.register(&email()).await;
    assert!(first["refreshToken"].is_string());
    let mut token = s(&first, "refreshToken").to_owned();
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(15 * 60));
        let body = app.refresh(&token).await;
        assert!(body["errors"].is_null(), "{body}");
        token = s(&body["data"]["refresh"], "refreshToken").to_owned();
    }
    app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        code(&app.refresh(&token).await),
        Some("INVALID_REFRESH_TOKEN")
    );
}

#[tokio::test]
async fn sixteen_concurrent_refreshes_of_one_token_never_fork_the_session() {
    let app = spawn_app().await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken").to_owned();
    let bodies = futures::future::join_all((0..16).map(|_| app.refresh(&token))).await;
    let mut successors: Vec<&str> = bodies
        .iter()
        .filter_map(|b| b["data"]["refresh"]["refreshToken"].as_str())
        .collect();
    assert!(
        bodies.iter().all(|b| code(b) != Some("INTERNAL")),
        "{bodies:?}"
    );
    assert_eq!(
        successors.len(),
        16,
        "every concurrent call inside the interval succeeds: {bodies:?}"
    );
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor only");
    let session_id: uuid::Uuid = s(&first, "sessionId").parse().unwrap();
    let chain = refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(chain.len(), 2, "the original and exactly one successor");
    assert!(app.refresh(successors[0]).await["errors"].is_null());
}

#[tokio::test]
async fn a_spent_token_replayed_after_its_own_expiry_is_still_reuse() {
    let app = spawn_app_with(|c| c.refresh_token_ttl = Duration::from_secs(3600)).await;
    let first = app.register(&email()).await;
    let token = s(&first, "refreshToken");
    let rotated = app.refresh(token).await;
    assert!(rotated["errors"].is_null());
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        code(&app.refresh(token).await),
        Some("REFRESH_TOKEN_REUSED")
    );
    assert_eq!(
        kinds(&app, AuditEventKind::RefreshTokenReuseDetected)
            .await
            .len(),
        1
    );
}

/// The rotation of `token` into a successor with `successor_hash` (as the
/// refresh service would write it), run directly: the races it guards
/// against are too narrow to hit through HTTP.
async fn rotate_directly(
    app: &crate::helpers::TestApp,
    token: &str,
    successor_hash: String,
) -> Result<Claim, sea_orm::DbErr> {
    let row = stored(app, token).await;
    let now = app.clock.now();
    let event = audit::Event::new(AuditEventKind::TokenRefreshed)
        .session(row.session_id)
        .detail(json!({ "direct": true }));
    let rotation = Rotation {
        session_id: row.session_id,
        token_id: row.id,
        successor: refresh_token::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(row.session_id),
            token_hash: Set(successor_hash),
            parent_id: Set(Some(row.id)),
            issued_at: Set(now),
            expires_at: Set(row.expires_at),
            used_at: Set(None),
        },
        audit: audit::row(now, &RequestMeta::local("test"), &event),
        now,
    };
    rotation::run(&app.state.db, rotation).await
}

fn fresh_hash() -> String {
    refresh::hash(secrecy::ExposeSecret::expose_secret(
        &refresh::random_token(),
    ))
}

async fn stored(app: &crate::helpers::TestApp, token: &str) -> refresh_token::Model {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(refresh::hash(token)))
        .one(app.state.db.read())
        .await
        .unwrap()
        .expect("a stored token")
}

async fn chain(app: &crate::helpers::TestApp, session_id: Uuid) -> Vec<refresh_token::Model> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .all(app.state.db.read())
        .await
        .unwrap()
}

async fn last_used(
    app: &crate::helpers::TestApp,
    session_id: Uuid,
) -> chrono::DateTime<chrono::Utc> {
    session::Entity::find_by_id(session_id)
        .one(app.state.db.read())
        .await
        .unwrap()
        .expect("a stored session")
        .last_used_at
}

/// The refresh token and session id of a `register` answer.
fn token_and_session(answer: &serde_json::Value) -> (&str, Uuid) {
    let session_id = s(answer, "sessionId").parse().expect("a session id");
    (s(answer, "refreshToken"), session_id)
}

/// Rotations audited by [`rotate_directly`].
async fn direct_rotations(app: &crate::helpers::TestApp) -> usize {
    kinds(app, AuditEventKind::TokenRefreshed)
        .await
        .iter()
        .filter(|r| r.detail == Some(json!({ "direct": true })))
        .count()
}

#[tokio::test]
async fn a_rotation_writes_all_of_its_rows_or_none() {
    let app = spawn_app().await;
    let minute = Duration::from_secs(60);

    // Won: the token is spent, its successor stored, the session touched,
    // the rotation audited.
    let won = app.register(&email()).await;
    let (token, session_id) = token_and_session(&won);
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let claim = rotate_directly(&app, token, fresh_hash()).await.unwrap();
    assert_eq!(claim, Claim::Rotated);
    let original = stored(&app, token).await;
    assert!(original.used_at.is_some());
    let rows = chain(&app, session_id).await;
    assert_eq!(rows.len(), 2);
    let successor = rows.iter().find(|t| t.id != original.id).unwrap();
    assert_eq!(successor.parent_id, Some(original.id));
    assert!(successor.used_at.is_none());
    assert!(last_used(&app, session_id).await >= before + minute);
    assert_eq!(direct_rotations(&app).await, 1);

    // Lost: someone else spent the token first. No second successor; the
    // session was presented, so it counts as used (on both backends).
    let lost = app.register(&email()).await;
    let (token, session_id) = token_and_session(&lost);
    assert!(app.refresh(token).await["errors"].is_null());
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let claim = rotate_directly(&app, token, fresh_hash()).await.unwrap();
    assert_eq!(claim, Claim::Lost);
    assert_eq!(chain(&app, session_id).await.len(), 2);
    assert!(last_used(&app, session_id).await >= before + minute);

    // A logout committed between the service's read and its claim: the
    // token stays unspent and nothing is written.
    let ended = app.register(&email()).await;
    let (token, session_id) = token_and_session(&ended);
    let now = app.clock.now();
    let db = app.state.db.write();
    assert!(
        sessions::revoke(db, session_id, None, RevokeReason::Logout, now)
            .await
            .unwrap()
    );
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let claim = rotate_directly(&app, token, fresh_hash()).await.unwrap();
    assert_eq!(claim, Claim::SessionEnded);
    let rows = chain(&app, session_id).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].used_at.is_none());
    assert_eq!(last_used(&app, session_id).await, before);

    // The last write fails (the successor's hash is taken): the earlier
    // ones are undone with it.
    let failed = app.register(&email()).await;
    let (token, session_id) = token_and_session(&failed);
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let taken = refresh::hash(s(&won, "refreshToken"));
    assert!(rotate_directly(&app, token, taken).await.is_err());
    let rows = chain(&app, session_id).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].used_at.is_none(), "the claim was rolled back");
    assert_eq!(last_used(&app, session_id).await, before);

    assert_eq!(
        direct_rotations(&app).await,
        1,
        "only the rotation that won was audited"
    );
}
