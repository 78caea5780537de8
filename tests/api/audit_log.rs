//! `auditLog`: visibility, pagination, filters, and reading it is audited.

use serde_json::{json, Value};
use warden::{domain::AuditEventKind, services::audit};

use crate::helpers::{code, email, s, spawn_app, TestApp};

const LOG: &str = "query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id at kind severity userId sessionId ip userAgent detail } }
    pageInfo { hasNextPage endCursor }
  }
}";

async fn log(app: &TestApp, token: &str, vars: Value) -> Value {
    app.gql(Some(token), LOG, vars).await
}

fn nodes(body: &Value) -> Vec<Value> {
    body["data"]["auditLog"]["edges"]
        .as_array()
        .map(|edges| edges.iter().map(|e| e["node"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_user_sees_only_their_own_events_newest_first() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let theirs_email = email();
    app.register(&theirs_email).await;
    app.login(&theirs_email, "wrong password here").await;
    let token = s(&mine, "accessToken");
    app.refresh(s(&mine, "refreshToken")).await;

    let body = log(&app, token, json!({})).await;
    let events = nodes(&body);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "TOKEN_REFRESHED",
            "USER_REGISTERED",
            "EMAIL_VERIFICATION_SENT"
        ],
        "{body}"
    );
    assert!(events.iter().all(|e| e["userId"] == mine["user"]["id"]));
    assert_eq!(events[0]["ip"], "127.0.0.1");
    assert!(events[0]["at"].as_str() >= events[1]["at"].as_str());

    // Reading was audited: the next read shows it.
    let again = nodes(&log(&app, token, json!({})).await);
    assert_eq!(again[0]["kind"], "AUDIT_LOG_VIEWED");
}

#[tokio::test]
async fn an_admin_sees_everyone_and_can_filter_by_user() {
    let app = spawn_app().await;
    let a = app.register(&email()).await;
    let b = app.register(&email()).await;
    app.login(&email(), "no such account pw").await;
    let token = app.admin_token().await;
    let all = nodes(&log(&app, &token, json!({ "first": 200 })).await);
    let users: Vec<&Value> = all.iter().map(|e| &e["userId"]).collect();
    assert!(users.contains(&&a["user"]["id"]) && users.contains(&&b["user"]["id"]));
    assert!(all
        .iter()
        .any(|e| e["kind"] == "LOGIN_FAILED" && e["userId"].is_null()));

    let only_b = nodes(
        &log(
            &app,
            &token,
            json!({ "filter": { "userId": b["user"]["id"] } }),
        )
        .await,
    );
    assert!(!only_b.is_empty() && only_b.iter().all(|e| e["userId"] == b["user"]["id"]));
}

#[tokio::test]
async fn a_user_asking_for_someone_elses_events_is_forbidden_and_audited() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let theirs = app.register(&email()).await;
    let body = log(
        &app,
        s(&mine, "accessToken"),
        json!({ "filter": { "userId": theirs["user"]["id"] } }),
    )
    .await;
    assert_eq!(code(&body), Some("FORBIDDEN"));
    let own = nodes(
        &log(
            &app,
            s(&mine, "accessToken"),
            json!({ "filter": { "kinds": ["ACCESS_DENIED"] } }),
        )
        .await,
    );
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["severity"], "WARNING");
}

#[tokio::test]
async fn pages_follow_cursors_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let who = email();
    let mine = app.register(&who).await;
    let mut refresh = s(&mine, "refreshToken").to_owned();
    for _ in 0..4 {
        let body = app.refresh(&refresh).await;
        refresh = s(&body["data"]["refresh"], "refreshToken").to_owned();
    }
    let token = s(&mine, "accessToken");
    let filter = json!({ "kinds": ["TOKEN_REFRESHED", "USER_REGISTERED"] });
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = log(
            &app,
            token,
            json!({ "first": 2, "after": after, "filter": filter }),
        )
        .await;
        let page = nodes(&body);
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        let info = &body["data"]["auditLog"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut ids: Vec<i64> = seen.iter().map(|id| id.parse().unwrap()).collect();
    let sorted = {
        let mut v = ids.clone();
        v.sort_by(|a, b| b.cmp(a));
        v
    };
    assert_eq!(ids, sorted, "newest first");
    ids.dedup();
    assert_eq!(ids.len(), 5, "no repeats");
}

#[tokio::test]
async fn severity_and_time_filters_narrow_the_log() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.login(&email(), "unknown account pw").await;
    let notices = nodes(
        &log(
            &app,
            &token,
            json!({ "filter": { "minSeverity": "NOTICE" } }),
        )
        .await,
    );
    assert!(!notices.is_empty());
    assert!(
        notices.iter().all(|e| e["severity"] != "INFO"),
        "{notices:?}"
    );
    let future = nodes(
        &log(
            &app,
            &token,
            json!({ "filter": { "since": "2999-01-01T00:00:00Z" } }),
        )
        .await,
    );
    assert!(future.is_empty());
    let past = nodes(
        &log(
            &app,
            &token,
            json!({ "filter": { "until": "2000-01-01T00:00:00Z" } }),
        )
        .await,
    );
    assert!(past.is_empty());
}

#[tokio::test]
async fn bad_page_arguments_are_bad_input_and_large_pages_are_capped() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let token = s(&mine, "accessToken");
    let negative = log(&app, token, json!({ "first": -1 })).await;
    assert_eq!(code(&negative), Some("BAD_USER_INPUT"));
    assert_eq!(negative["errors"][0]["extensions"]["field"], "first");
    let cursor = log(&app, token, json!({ "after": "not-a-cursor" })).await;
    assert_eq!(code(&cursor), Some("BAD_USER_INPUT"));
    let user: uuid::Uuid = s(&mine["user"], "id").parse().unwrap();
    let meta = warden::meta::RequestMeta::local("test");
    for _ in 0..205 {
        let event = audit::Event::new(AuditEventKind::TokenRefreshed).user(user);
        audit::record(app.state.db.write(), app.clock.now(), &meta, event)
            .await
            .unwrap();
    }
    let big = log(&app, token, json!({ "first": 100000 })).await;
    assert!(big["errors"].is_null(), "{big}");
    assert_eq!(nodes(&big).len(), 200, "capped at 200");
    assert_eq!(big["data"]["auditLog"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn the_audit_log_needs_a_token() {
    let app = spawn_app().await;
    let body = app.gql(None, LOG, json!({})).await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn an_admin_reading_the_log_is_audited_too() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    log(&app, &token, json!({})).await;
    let again = nodes(
        &log(
            &app,
            &token,
            json!({ "filter": { "kinds": ["AUDIT_LOG_VIEWED"] } }),
        )
        .await,
    );
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["detail"]["scope"], "all");
}

#[tokio::test]
async fn an_empty_page_and_the_last_page_say_there_is_no_next() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let token = s(&mine, "accessToken");
    let empty = log(&app, token, json!({ "first": 0 })).await;
    assert!(nodes(&empty).is_empty(), "{empty}");
    let all = log(&app, token, json!({ "first": 200 })).await;
    assert_eq!(all["data"]["auditLog"]["pageInfo"]["hasNextPage"], false);
}

/// The `AUDIT_LOG_VIEWED` rows stored so far.
async fn views(app: &TestApp) -> Vec<entity::audit_event::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq(AuditEventKind::AuditLogViewed.as_str()))
        .all(app.state.db.read())
        .await
        .unwrap()
}

#[tokio::test]
async fn reading_the_audit_log_is_rate_limited_per_account() {
    let app =
        crate::helpers::spawn_app_with(|c| c.rates.rate_audit_log = "5/min".parse().unwrap()).await;
    let mine = app.register(&email()).await;
    let token = s(&mine, "accessToken");
    for i in 0..5 {
        let body = log(&app, token, json!({ "first": 1 })).await;
        assert!(body["errors"].is_null(), "read {i}: {body}");
    }
    let refused = log(&app, token, json!({ "first": 1 })).await;
    assert_eq!(code(&refused), Some("RATE_LIMITED"), "{refused}");
    assert!(refused["errors"][0]["extensions"]["retryAfter"].as_u64() > Some(0));
    // Keyed by account, not by connection or session: a second login of
    // the same account shares the bucket, another account has its own.
    let who = mine["user"]["email"].as_str().unwrap();
    let again = app.login(who, crate::helpers::PASSWORD).await;
    let second = s(&again["data"]["login"], "accessToken");
    assert_eq!(
        code(&log(&app, second, json!({ "first": 1 })).await),
        Some("RATE_LIMITED")
    );
    let other = app.register(&email()).await;
    let body = log(&app, s(&other, "accessToken"), json!({ "first": 1 })).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn repeated_reads_by_one_session_within_a_minute_write_one_viewed_row() {
    let app = spawn_app().await;
    let mine = app.register(&email()).await;
    let token = s(&mine, "accessToken");
    // Sequential reads, then a concurrent burst on two instances sharing
    // the database: the decision is the database's, not one process's.
    let sibling = app.sibling().await;
    for _ in 0..5 {
        assert!(log(&app, token, json!({ "first": 1 })).await["errors"].is_null());
    }
    let burst = futures::future::join_all((0..10).map(|i| {
        let target = if i % 2 == 0 { &app } else { &sibling };
        log(target, token, json!({ "first": 1 }))
    }))
    .await;
    assert!(burst.iter().all(|b| b["errors"].is_null()), "{burst:?}");
    assert_eq!(views(&app).await.len(), 1, "15 reads in a minute, one row");

    // Another session of the same account is audited on its own.
    let who = mine["user"]["email"].as_str().unwrap();
    let again = app.login(who, crate::helpers::PASSWORD).await;
    log(&app, s(&again["data"]["login"], "accessToken"), json!({})).await;
    assert_eq!(views(&app).await.len(), 2);

    // A minute on, the first session's next read is recorded again.
    app.clock.advance(std::time::Duration::from_secs(61));
    let token = s(
        &app.refresh(s(&mine, "refreshToken")).await["data"]["refresh"],
        "accessToken",
    )
    .to_owned();
    log(&app, &token, json!({})).await;
    log(&app, &token, json!({})).await;
    assert_eq!(views(&app).await.len(), 3);
}

#[tokio::test]
async fn concurrent_reads_on_two_instances_write_one_viewed_row_a_minute() {
    let app = spawn_app().await;
    let sibling = app.sibling().await;
    let mine = app.register(&email()).await;
    let token = s(&mine, "accessToken");
    // Three minutes of 16 simultaneous reads each (48 in all, under the
    // default 60/min quota, which runs on the real clock).
    let mut rows = Vec::new();
    for _ in 0..3 {
        let burst = futures::future::join_all((0..16).map(|i| {
            let target = if i % 2 == 0 { &app } else { &sibling };
            log(target, token, json!({ "first": 1 }))
        }))
        .await;
        assert!(burst.iter().all(|b| b["errors"].is_null()), "{burst:?}");
        rows.push(views(&app).await.len());
        app.clock.advance(std::time::Duration::from_secs(61));
    }
    assert_eq!(rows, [1, 2, 3], "viewed rows after each minute");
}

/// The rows of `session_views` (the minute markers of audited reads).
async fn markers(app: &TestApp) -> usize {
    use sea_orm::EntityTrait;
    entity::session_view::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn the_log_and_the_accounts_are_audited_apart_and_cleanup_drops_stale_minute_markers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let users = "{ users(first: 1) { edges { node { id } } } }";
    // One session reads the log, then the accounts, then both again: one
    // row of each kind, whichever came first.
    for _ in 0..2 {
        assert!(log(&app, &admin, json!({ "first": 1 })).await["errors"].is_null());
        assert!(app.gql(Some(&admin), users, json!({})).await["errors"].is_null());
    }
    let kinds = |rows: &[Value], kind: &str| rows.iter().filter(|n| n["kind"] == kind).count();
    let seen = nodes(&log(&app, &admin, json!({ "first": 200 })).await);
    assert_eq!(kinds(&seen, "AUDIT_LOG_VIEWED"), 1, "{seen:?}");
    assert_eq!(kinds(&seen, "USERS_VIEWED"), 1, "{seen:?}");
    assert_eq!(markers(&app).await, 2);

    // Within the minute cleanup keeps them; past it they mean nothing.
    let now = app.clock.now();
    let early = warden::cleanup::run_once(
        &app.state.db,
        &app.config,
        now + chrono::TimeDelta::seconds(30),
    )
    .await
    .unwrap();
    assert_eq!((early.ceremonies, markers(&app).await), (0, 2));
    let late = warden::cleanup::run_once(
        &app.state.db,
        &app.config,
        now + chrono::TimeDelta::seconds(61),
    )
    .await
    .unwrap();
    assert_eq!((late.ceremonies, markers(&app).await), (2, 0));

    // With its marker gone, the session's next read (a minute on) is
    // audited again, and only once.
    app.clock.advance(std::time::Duration::from_secs(61));
    for _ in 0..3 {
        assert!(log(&app, &admin, json!({ "first": 1 })).await["errors"].is_null());
    }
    assert_eq!(views(&app).await.len(), 2);
    assert_eq!(markers(&app).await, 1);
}
