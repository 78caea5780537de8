//! `refresh`: rotation, the grace interval, reuse detection, expiry and concurrency.

use std::time::Duration;

use entity::{refresh_token, session};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;
use warden::{
    auth::opaque_token,
    domain::AuditEventKind,
    meta::RequestMeta,
    services::{
        audit, audit_log,
        rotation::{self, Claim, Outcome, Rotation},
        sessions::{self, RevokeReason},
    },
};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with};

async fn kinds(
    app: &crate::helpers::TestApp,
    kind: AuditEventKind,
) -> Vec<entity::audit_event::Model> {
    let query = audit_log::Query {
        kinds: vec![kind],
        limit: 100,
        ..Default::default()
    };
    audit_log::page(app.state.db.read(), &query)
        .await
        .unwrap()
        .0
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
    assert_eq!(rows[0].token_hash, warden::auth::opaque_token::hash(token));
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
    let unknown = warden::auth::opaque_token::generate();
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
) -> Result<Outcome, sea_orm::DbErr> {
    let now = app.clock.now();
    let event = audit::Event::new(AuditEventKind::TokenRefreshed).detail(json!({ "direct": true }));
    let rotation = Rotation {
        presented_hash: opaque_token::hash(token),
        successor_id: Uuid::now_v7(),
        successor_hash,
        successor_ttl: chrono::TimeDelta::days(7),
        audit: audit::row(
            now,
            &RequestMeta::new(
                Some([192, 0, 2, 7].into()),
                Some("direct test"),
                "direct".into(),
            ),
            &event,
        ),
        now,
    };
    rotation::run(&app.state.db, rotation).await
}

/// The claim of a rotation that found its token and tried.
fn claim(outcome: &Outcome) -> Option<Claim> {
    match outcome {
        Outcome::Tried { claim, .. } => Some(*claim),
        _ => None,
    }
}

/// The reason a rotation was refused for.
fn refused(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Refused { reason, .. } => Some(reason),
        _ => None,
    }
}

/// A well-formed token that was never issued.
fn unknown_token() -> String {
    secrecy::ExposeSecret::expose_secret(&opaque_token::generate()).to_owned()
}

fn fresh_hash() -> String {
    opaque_token::hash(secrecy::ExposeSecret::expose_secret(
        &opaque_token::generate(),
    ))
}

async fn stored(app: &crate::helpers::TestApp, token: &str) -> refresh_token::Model {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(opaque_token::hash(token)))
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
    // the rotation audited with the token's owner and session.
    let won = app.register(&email()).await;
    let (token, session_id) = token_and_session(&won);
    let user_id: Uuid = s(&won["user"], "id").parse().unwrap();
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let outcome = rotate_directly(&app, token, fresh_hash()).await.unwrap();
    assert_eq!(claim(&outcome), Some(Claim::Rotated), "{outcome:?}");
    let Outcome::Tried { presented, .. } = &outcome else {
        panic!("a rotation that was tried: {outcome:?}")
    };
    assert_eq!(
        (presented.user.id, presented.session_id),
        (user_id, session_id)
    );
    let original = stored(&app, token).await;
    assert_eq!(presented.token_id, original.id);
    assert!(original.used_at.is_some());
    let rows = chain(&app, session_id).await;
    assert_eq!(rows.len(), 2);
    let successor = rows.iter().find(|t| t.id != original.id).unwrap();
    assert_eq!(successor.parent_id, Some(original.id));
    assert!(successor.used_at.is_none());
    assert!(successor.issued_at > before && successor.issued_at <= app.clock.now());
    // Seven days on, within the session's thirty.
    assert_eq!(
        successor.expires_at,
        successor.issued_at + chrono::TimeDelta::days(7)
    );
    assert!(last_used(&app, session_id).await >= before + minute);
    let audited: Vec<_> = kinds(&app, AuditEventKind::TokenRefreshed)
        .await
        .into_iter()
        .filter(|r| r.detail == Some(json!({ "direct": true })))
        .collect();
    assert_eq!(audited.len(), 1);
    assert_eq!(
        (audited[0].user_id, audited[0].session_id),
        (Some(user_id), Some(session_id))
    );
    assert_eq!(audited[0].user_agent.as_deref(), Some("direct test"));
    assert_eq!(audited[0].ip.as_deref(), Some("192.0.2.7"));

    // Lost: someone else spent the token first. No second successor; the
    // session was presented, so it counts as used (on both backends).
    let lost = app.register(&email()).await;
    let (token, session_id) = token_and_session(&lost);
    assert!(app.refresh(token).await["errors"].is_null());
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let outcome = rotate_directly(&app, token, fresh_hash()).await.unwrap();
    assert_eq!(claim(&outcome), Some(Claim::Lost), "{outcome:?}");
    assert_eq!(chain(&app, session_id).await.len(), 2);
    assert!(last_used(&app, session_id).await >= before + minute);

    // Refused (revoked session, expired token) or unknown: nothing written.
    let ended = app.register(&email()).await;
    let (ended_token, ended_session) = token_and_session(&ended);
    let now = app.clock.now();
    let db = app.state.db.write();
    assert!(
        sessions::revoke(db, ended_session, None, RevokeReason::Logout, now)
            .await
            .unwrap()
    );
    let idle = app.register(&email()).await;
    let (idle_token, idle_session) = token_and_session(&idle);
    let before = [
        last_used(&app, ended_session).await,
        last_used(&app, idle_session).await,
    ];
    app.clock.advance(minute);
    let outcome = rotate_directly(&app, ended_token, fresh_hash())
        .await
        .unwrap();
    assert_eq!(refused(&outcome), Some("session_revoked"), "{outcome:?}");
    app.clock.advance(Duration::from_secs(7 * 24 * 3600));
    let outcome = rotate_directly(&app, idle_token, fresh_hash())
        .await
        .unwrap();
    assert_eq!(refused(&outcome), Some("expired"), "{outcome:?}");
    let outcome = rotate_directly(&app, &unknown_token(), fresh_hash())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Unknown), "{outcome:?}");
    for (session_id, before) in [(ended_session, before[0]), (idle_session, before[1])] {
        let rows = chain(&app, session_id).await;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].used_at.is_none());
        assert_eq!(last_used(&app, session_id).await, before);
    }

    // The last write fails (the successor's hash is taken): the earlier
    // ones are undone with it.
    let failed = app.register(&email()).await;
    let (token, session_id) = token_and_session(&failed);
    let before = last_used(&app, session_id).await;
    app.clock.advance(minute);
    let taken = opaque_token::hash(s(&won, "refreshToken"));
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

/// A logout that commits after the rotation read the token but before it
/// touched the session stops the rotation: the token stays unspent. The
/// logout holds the session row (Postgres) or the write lock (SQLite) while
/// the rotation starts, so the rotation reads first and writes after.
#[tokio::test]
async fn a_logout_committed_during_a_rotation_stops_it() {
    let app = spawn_app().await;
    let answer = app.register(&email()).await;
    let (token, session_id) = token_and_session(&answer);
    let before = last_used(&app, session_id).await;
    let logout = app.state.db.begin().await.unwrap();
    let now = app.clock.now();
    assert!(
        sessions::revoke(&logout, session_id, None, RevokeReason::Logout, now)
            .await
            .unwrap()
    );
    app.clock.advance(Duration::from_secs(60));
    let rotation = rotate_directly(&app, token, fresh_hash());
    tokio::pin!(rotation);
    // The rotation runs until it waits for the logout's lock.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut rotation)
            .await
            .is_err(),
        "the rotation should wait for the logout"
    );
    logout.commit().await.unwrap();
    let outcome = rotation.await.unwrap();
    assert_eq!(claim(&outcome), Some(Claim::SessionEnded), "{outcome:?}");
    let rows = chain(&app, session_id).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].used_at.is_none());
    assert_eq!(last_used(&app, session_id).await, before);
}

#[tokio::test]
async fn with_a_zero_interval_sixteen_concurrent_refreshes_yield_one_success_at_most() {
    // A loser whose clock read came before the winner's `used_at` used to
    // count as "inside" a zero-length interval and got the successor too.
    let app = spawn_app_with(|c| c.refresh_reuse_interval = Duration::ZERO).await;
    let mut doubled = Vec::new();
    for round in 0..30 {
        let first = app.register(&email()).await;
        let token = s(&first, "refreshToken").to_owned();
        let bodies = futures::future::join_all((0..16).map(|_| app.refresh(&token))).await;
        assert!(
            bodies.iter().all(|b| code(b) != Some("INTERNAL")),
            "{bodies:?}"
        );
        let successes = bodies.iter().filter(|b| b["errors"].is_null()).count();
        assert!(
            bodies
                .iter()
                .filter(|b| !b["errors"].is_null())
                .all(|b| matches!(
                    code(b),
                    Some("REFRESH_TOKEN_REUSED" | "INVALID_REFRESH_TOKEN")
                )),
            "a loser is reuse, or finds the session it revoked: {bodies:?}"
        );
        if successes > 1 {
            doubled.push((round, successes));
        }
    }
    assert!(
        doubled.is_empty(),
        "rounds with more than one success (round, successes): {doubled:?}"
    );
}
