//! Cleanup: removes exactly the dead, keeps every live chain.

use std::time::Duration;

use chrono::TimeDelta;
use entity::{audit_event, login_attempt, refresh_token, session};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use warden::cleanup::{run_once, run_paced, Pace, Removed};

use crate::helpers::{code, email, on_postgres, s, spawn_app_with, TestApp};

mod plans;

async fn count<E: EntityTrait>(app: &TestApp) -> u64
where
    E::Model: Sync,
{
    E::find().count(app.state.db.read()).await.unwrap()
}

#[tokio::test]
async fn cleanup_removes_exactly_what_it_should_and_replays_are_still_caught() {
    let app = spawn_app_with(|c| {
        c.revoked_retention = Duration::from_secs(3600);
        c.audit_retention = Duration::from_secs(24 * 3600);
    })
    .await;
    let t0 = app.clock.now();
    let live = app.register(&email()).await;
    let chained = app.register(&email()).await;
    let first_token = s(&chained, "refreshToken").to_owned();
    let second = app.refresh(&first_token).await;
    let third = app
        .refresh(s(&second["data"]["refresh"], "refreshToken"))
        .await;
    assert!(third["errors"].is_null());
    let revoked = app.register(&email()).await;
    app.gql(
        Some(s(&revoked, "accessToken")),
        "mutation { logout }",
        json!({}),
    )
    .await;
    app.login(&email(), "no such account pw").await; // two lockout counters: the email's, the client's
    assert_eq!(count::<session::Entity>(&app).await, 3);
    assert_eq!(count::<refresh_token::Entity>(&app).await, 5);
    let audit_rows = count::<audit_event::Entity>(&app).await;

    // Nothing is old enough yet.
    let nothing = run_once(&app.state.db, &app.config, t0 + TimeDelta::minutes(5))
        .await
        .unwrap();
    assert_eq!(nothing, Removed::default());

    // Two hours on: the revoked session and the stale lockout counter go;
    // both live sessions, with their whole chains, stay.
    let later = run_once(&app.state.db, &app.config, t0 + TimeDelta::hours(2))
        .await
        .unwrap();
    assert_eq!(
        later,
        Removed {
            revoked_sessions: 1,
            refresh_tokens: 1,
            login_attempts: 2,
            ..Removed::default()
        }
    );
    assert_eq!(count::<session::Entity>(&app).await, 2);
    assert_eq!(count::<refresh_token::Entity>(&app).await, 4);
    assert_eq!(count::<login_attempt::Entity>(&app).await, 0);
    assert!(app.me(Some(s(&live, "accessToken"))).await["errors"].is_null());

    // The live chain is intact: replaying its first token is still theft.
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(
        code(&app.refresh(&first_token).await),
        Some("REFRESH_TOKEN_REUSED")
    );

    // Eight days on, every refresh token has expired: the sessions are dead.
    let week = run_once(&app.state.db, &app.config, t0 + TimeDelta::days(8))
        .await
        .unwrap();
    assert_eq!(week.expired_sessions + week.revoked_sessions, 2, "{week:?}");
    assert!(week.audit_events >= audit_rows, "{week:?}");
    assert_eq!(count::<session::Entity>(&app).await, 0);
    assert_eq!(count::<refresh_token::Entity>(&app).await, 0);
}

#[tokio::test]
async fn concurrent_passes_do_not_double_process_or_deadlock_with_a_refresh_storm() {
    let app = spawn_app_with(|c| c.revoked_retention = Duration::from_secs(60)).await;
    let t0 = app.clock.now();
    let mut dead = 0;
    for _ in 0..6 {
        let payload = app.register(&email()).await;
        app.gql(
            Some(s(&payload, "accessToken")),
            "mutation { logout }",
            json!({}),
        )
        .await;
        dead += 1;
    }
    let live: Vec<String> = {
        let mut tokens = Vec::new();
        for _ in 0..8 {
            tokens.push(s(&app.register(&email()).await, "refreshToken").to_owned());
        }
        tokens
    };
    let storm = futures::future::join_all(live.iter().map(|t| app.refresh(t)));
    let when = t0 + TimeDelta::minutes(5);
    let (a, b, refreshed) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            run_once(&app.state.db, &app.config, when),
            run_once(&app.state.db, &app.config, when),
            storm
        )
    })
    .await
    .expect("no deadlock");
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        refreshed.iter().all(|r| r["errors"].is_null()),
        "{refreshed:?}"
    );
    assert_eq!(a.revoked_sessions + b.revoked_sessions, dead, "{a:?} {b:?}");
    assert_eq!(a.refresh_tokens + b.refresh_tokens, dead);
    if on_postgres() {
        assert!(
            a.skipped != b.skipped,
            "one pass runs, the other sees the advisory lock: {a:?} {b:?}"
        );
    }
    assert_eq!(count::<session::Entity>(&app).await, 8);
}

#[tokio::test]
async fn the_cleanup_command_runs_one_pass_and_prints_its_counts() {
    let app = spawn_app_with(|_| {}).await;
    let out = crate::cli::warden(&app.database_url(), &["cleanup"], "", &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("expired sessions 0") && stdout.contains("audit events 0"),
        "{stdout}"
    );
}

/// Cleanup walks sessions 1,000 at a time by id: over several batches,
/// with the dead, the live and the long-revoked interleaved, it removes
/// exactly the dead and the revoked, batch boundaries included.
#[tokio::test]
async fn the_walk_over_sessions_finds_the_dead_across_batch_boundaries() {
    walk_removes_exactly_the_dead(Pace::Flat).await;
}

/// The server's paced pass deletes in chunks with rests between them, on
/// the store's background connection (on SQLite its own, at the lowest
/// priority): the same sessions go, chunk boundaries included.
#[tokio::test]
async fn the_paced_walk_removes_the_same_sessions_in_chunks() {
    walk_removes_exactly_the_dead(Pace::Shared).await;
}

async fn walk_removes_exactly_the_dead(pace: Pace) {
    use sea_orm::ActiveValue::Set;
    let app = spawn_app_with(|c| c.revoked_retention = Duration::from_secs(3600)).await;
    let owner = app.register(&email()).await;
    let user_id: uuid::Uuid = s(&owner["user"], "id").parse().unwrap();
    let now = app.clock.now();
    let (n, mut sessions, mut tokens) = (2_500u128, Vec::new(), Vec::new());
    for i in 0..n {
        // Ids in walk order; kinds cycle: live, spent, past its end, revoked long ago.
        let id = uuid::Uuid::from_u128(i + 1);
        let kind = i % 4;
        sessions.push(session::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            created_at: Set(now - TimeDelta::days(2)),
            last_used_at: Set(now - TimeDelta::days(1)),
            expires_at: Set(if kind == 2 {
                now - TimeDelta::hours(1)
            } else {
                now + TimeDelta::days(20)
            }),
            revoked_at: Set((kind == 3).then(|| now - TimeDelta::hours(2))),
            revoked_reason: Set((kind == 3).then(|| "logout".to_owned())),
            ip: Set(None),
            user_agent: Set(None),
            method: Set("PASSWORD".to_owned()),
            amr: Set("pwd".to_owned()),
        });
        tokens.push(refresh_token::ActiveModel {
            id: Set(uuid::Uuid::from_u128((1 << 64) + i)),
            session_id: Set(id),
            token_hash: Set(format!("{i:064x}")),
            parent_id: Set(None),
            issued_at: Set(now - TimeDelta::days(1)),
            expires_at: Set(now + TimeDelta::days(6)),
            used_at: Set((kind == 1).then(|| now - TimeDelta::hours(3))),
        });
    }
    for chunk in sessions.chunks(250) {
        session::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.state.db.write())
            .await
            .unwrap();
    }
    for chunk in tokens.chunks(250) {
        refresh_token::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.state.db.write())
            .await
            .unwrap();
    }

    // As the server's loop runs it (`cleanup::run_every`).
    let db = match pace {
        Pace::Shared => app.state.db.background().await.unwrap(),
        Pace::Flat => app.state.db.clone(),
    };
    let pass = run_paced(&db, &app.config, now, pace);
    let removed = if on_postgres() && matches!(pace, Pace::Shared) {
        // The pass holds its advisory lock in a transaction left idle for
        // the whole pass: at READ COMMITTED, with no snapshot and no
        // transaction id, it holds back no VACUUM. Watched while it runs.
        let done = std::cell::Cell::new(false);
        let pass = async {
            let removed = pass.await;
            done.set(true);
            removed
        };
        let (removed, holder) = tokio::join!(pass, lock_holder_while(&app, &done));
        assert!(
            !holder.is_empty(),
            "the pass was never seen holding its lock"
        );
        assert!(
            holder.iter().all(|(xmin, xid)| !xmin && !xid),
            "the lock's transaction held a snapshot or an id: {holder:?}"
        );
        removed
    } else {
        pass.await
    }
    .unwrap();
    assert_eq!(
        (
            removed.expired_sessions,
            removed.revoked_sessions,
            removed.refresh_tokens
        ),
        (1_250, 625, 1_875),
        "{removed:?}"
    );
    let left: Vec<u128> = session::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.user_id == user_id && s.id.as_u128() <= n)
        .map(|s| s.id.as_u128() - 1)
        .collect();
    assert_eq!(left.len(), 625);
    assert!(left.iter().all(|i| i % 4 == 0), "only the live ones stay");
    // The owner's own session, from registering, is live and stays too.
    assert_eq!(count::<session::Entity>(&app).await, 626);
}

/// Postgres: until `done`, whether the transaction that holds the cleanup's
/// advisory lock has a snapshot (`backend_xmin`) and a transaction id, each
/// time it is seen waiting between statements (while its one statement
/// runs it has a snapshot, as every statement does).
async fn lock_holder_while(app: &TestApp, done: &std::cell::Cell<bool>) -> Vec<(bool, bool)> {
    use sea_orm::{ConnectionTrait, Statement};
    // The key of `cleanup::CLEANUP_LOCK` as pg_locks shows a bigint: its
    // high and low halves.
    let (key, mut seen) = (0x636c_6561_6e75_i64, Vec::new());
    let sql = format!(
        "SELECT a.backend_xmin IS NOT NULL AS xmin, a.backend_xid IS NOT NULL AS xid \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.classid = {} AND l.objid = {} \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND a.state = 'idle in transaction'",
        key >> 32,
        key & 0xffff_ffff
    );
    while !done.get() {
        let rows = app
            .state
            .db
            .read()
            .query_all_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                sql.clone(),
            ))
            .await
            .unwrap();
        for row in rows {
            seen.push((
                row.try_get::<bool>("", "xmin").unwrap(),
                row.try_get::<bool>("", "xid").unwrap(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen
}

/// Trusted devices go once their token expired or they were revoked, and
/// only those: cleanup asks for them by range, on the indexes of
/// `m20261203_000006`.
#[tokio::test]
async fn trusted_devices_go_once_expired_or_revoked_and_the_trusted_stay() {
    use entity::trusted_device;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let app = spawn_app_with(|_| {}).await;
    let owner = app.register(&email()).await;
    let user_id: uuid::Uuid = s(&owner["user"], "id").parse().unwrap();
    let now = app.clock.now();
    // (expires, revoked): trusted; expired a minute ago; revoked an hour ago
    // and still unexpired; revoked and expired; expiring in a minute.
    let kinds = [
        (TimeDelta::days(20), None),
        (-TimeDelta::minutes(1), None),
        (TimeDelta::days(20), Some(-TimeDelta::hours(1))),
        (-TimeDelta::days(1), Some(-TimeDelta::days(2))),
        (TimeDelta::minutes(1), None),
    ];
    for (i, (expires, revoked)) in kinds.iter().enumerate() {
        trusted_device::ActiveModel {
            id: Set(uuid::Uuid::from_u128(i as u128 + 1)),
            user_id: Set(user_id),
            token_hash: Set(format!("{i:064x}")),
            created_at: Set(now - TimeDelta::days(3)),
            last_used_at: Set(now - TimeDelta::days(2)),
            expires_at: Set(now + *expires),
            revoked_at: Set(revoked.map(|r| now + r)),
            ip: Set(None),
            user_agent: Set(None),
        }
        .insert(app.state.db.write())
        .await
        .unwrap();
    }
    let removed = run_once(&app.state.db, &app.config, now).await.unwrap();
    assert_eq!(removed.trusted_devices, 3, "{removed:?}");
    let mut left: Vec<u128> = trusted_device::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id.as_u128())
        .filter(|id| *id <= 5) // not the device registering trusted
        .collect();
    left.sort_unstable();
    assert_eq!(left, [1, 5]);
    // Two minutes on, the one that was about to expire has gone too.
    let later = run_once(&app.state.db, &app.config, now + TimeDelta::minutes(2))
        .await
        .unwrap();
    assert_eq!(later.trusted_devices, 1);
}
