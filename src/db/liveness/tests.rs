//! Tests of both session-check paths on a SQLite file: the in-place read
//! is chosen when it works, and the batched query answers correctly when it
//! is the only path (as on Postgres).

use chrono::TimeDelta;
use entity::session;
use sea_orm::{ActiveModelTrait, IntoActiveModel};

use super::*;
use crate::config::Config;

async fn db_for(url: &str) -> Db {
    let mut config = Config::defaults().expect("defaults");
    config.database_url = secrecy::SecretString::from(url.to_owned());
    let db = Db::connect(&config).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

async fn checks_for(url: &str) -> SessionChecks {
    SessionChecks::start(db_for(url).await, Clock::system())
}

#[tokio::test]
async fn checks_on_a_sqlite_file_are_answered_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let on_file = checks_for(&file).await;
    assert!(on_file.inline.is_some());
    // Nobody owns an unknown session, whichever path answers.
    let nobody = on_file.owner(Uuid::now_v7(), Uuid::now_v7()).await;
    assert!(matches!(nobody, Ok(None)), "{nobody:?}");
}

async fn add_user(db: &Db, name: &str) -> user::Model {
    let now = Clock::system().now();
    user::Model {
        id: Uuid::now_v7(),
        email: format!("{name}@example.com"),
        username: Some(name.to_owned()),
        password_hash: "$2b$04$abcdefghijklmnopqrstuu5mPcDPQEFQn6bmoTn9CNJsVZ7lcbCGy".into(),
        role: "USER".into(),
        created_at: now - TimeDelta::days(3),
        last_login_at: Some(now - TimeDelta::microseconds(1_234_567)),
        email_verified_at: None,
        mfa_enabled_at: None,
        disabled_at: None,
        disabled_reason: None,
    }
    .into_active_model()
    .insert(db.write())
    .await
    .expect("user")
}

async fn add_session(db: &Db, owner: &user::Model, expires_in: TimeDelta, revoked: bool) -> Uuid {
    let now = Clock::system().now();
    let id = Uuid::now_v7();
    session::Model {
        id,
        user_id: owner.id,
        created_at: now,
        last_used_at: now,
        expires_at: now + expires_in,
        revoked_at: revoked.then_some(now),
        revoked_reason: revoked.then(|| "LOGOUT".into()),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        method: "PASSWORD".into(),
        amr: "pwd".into(),
    }
    .into_active_model()
    .insert(db.write())
    .await
    .expect("session");
    id
}

/// The batched query (`live_owners`) is the path Postgres always takes
/// and SQLite takes only when the in-place read fails, so a plain
/// `cargo test` never reached it: dropping its `revoked_at` filter went
/// unnoticed. Here it answers alone, all checks queued together so they
/// share one query, and only the live session answers, with its owner.
#[tokio::test]
async fn the_batched_check_answers_only_for_a_live_session_of_the_asking_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let db = db_for(&file).await;
    let ada = add_user(&db, "ada").await;
    let bob = add_user(&db, "bob").await;
    let live = add_session(&db, &ada, TimeDelta::hours(1), false).await;
    let revoked = add_session(&db, &ada, TimeDelta::hours(1), true).await;
    let expired = add_session(&db, &ada, TimeDelta::seconds(-1), false).await;
    let checks = SessionChecks::batched_only(db, Clock::system());
    assert!(checks.inline.is_none());
    let asked = [
        (live, ada.id),
        (revoked, ada.id),
        (expired, ada.id),
        // Ada's live session, presented with Bob's id.
        (live, bob.id),
        (Uuid::now_v7(), ada.id),
    ];
    let answers = futures::future::join_all(
        asked
            .iter()
            .map(|&(session, user)| checks.owner(session, user)),
    )
    .await;
    let answers: Vec<Option<user::Model>> = answers
        .into_iter()
        .map(|answer| answer.expect("batched check"))
        .collect();
    assert_eq!(answers, [Some(ada.clone()), None, None, None, None]);
    // Each case alone too, in a batch of its own.
    assert_eq!(
        checks.owner(live, ada.id).await.expect("check"),
        Some(ada.clone())
    );
    for (session, user) in &asked[1..] {
        assert_eq!(checks.owner(*session, *user).await.expect("check"), None);
    }
}
