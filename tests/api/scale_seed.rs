//! The seeded-scale generator (`bench/seed`, `warden-seed`) on a small
//! plan, on the suite's backend: its rows hang together as Warden writes
//! them, cleanup deletes exactly the sessions seeded as expired, a seed
//! gives the same rows every time, and Warden serves the seeded accounts.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder,
    Statement,
};
use serde_json::json;
use tempfile::TempDir;
use warden_seed::{Plan, Summary, PASSWORD};

use crate::helpers::{spawn_app_with, test_database};

const USERS: u64 = 300;

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

/// A fresh database of the suite's backend, seeded with `seed`.
async fn seeded(seed: u64) -> (TempDir, String, DatabaseConnection, Summary) {
    let dir = tempfile::tempdir().unwrap();
    let url = test_database(&dir).await;
    let mut options = ConnectOptions::new(url.clone());
    options.sqlx_logging(false).max_connections(2);
    let db = Database::connect(options).await.unwrap();
    let summary = warden_seed::seed(&db, &Plan::scaled(USERS), seed, now())
        .await
        .unwrap();
    (dir, url, db, summary)
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

#[tokio::test]
async fn a_small_seed_writes_the_planned_rows_and_every_token_chain_hangs_together() {
    let (_dir, _url, db, summary) = seeded(1).await;
    let plan = Plan::scaled(USERS);
    assert_eq!(summary.plan, plan);
    let tables = [
        ("users", plan.users),
        ("sessions", plan.sessions()),
        ("refresh_tokens", plan.refresh_tokens),
        ("audit_events", plan.audit_events),
        ("trusted_devices", plan.trusted_devices),
        ("email_tokens", plan.email_tokens),
        ("mail_outbox", plan.mail_outbox),
        ("totp_factors", plan.mfa_users),
        ("recovery_codes", plan.recovery_codes()),
        ("passkeys", plan.passkeys),
        ("api_keys", plan.api_keys),
        ("login_attempts", plan.login_attempts),
    ];
    for (table, planned) in tables {
        let rows = count(&db, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert_eq!(rows, i64::try_from(planned).unwrap(), "rows of {table}");
        assert!(
            rows > 0,
            "{table} is empty: the small plan should fill every table"
        );
    }
    let must_be_none = [
        (
            "a refresh token whose session does not exist",
            "SELECT COUNT(*) FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id)",
        ),
        (
            "a rotated token without its successor (same session, issued when it was used)",
            "SELECT COUNT(*) FROM refresh_tokens t WHERE t.used_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens n WHERE n.parent_id = t.id AND n.session_id = t.session_id AND n.issued_at = t.used_at)",
        ),
        (
            "a token whose parent is missing or in another session",
            "SELECT COUNT(*) FROM refresh_tokens n WHERE n.parent_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens p WHERE p.id = n.parent_id AND p.session_id = n.session_id)",
        ),
        (
            "a token with two successors",
            "SELECT COUNT(*) FROM (SELECT parent_id FROM refresh_tokens WHERE parent_id IS NOT NULL GROUP BY parent_id HAVING COUNT(*) > 1) x",
        ),
        (
            "a session without exactly one unused token",
            "SELECT COUNT(*) FROM sessions s WHERE (SELECT COUNT(*) FROM refresh_tokens t WHERE t.session_id = s.id AND t.used_at IS NULL) <> 1",
        ),
        (
            "a session whose user does not exist",
            "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)",
        ),
        (
            "an audit event naming a user that does not exist",
            "SELECT COUNT(*) FROM audit_events a WHERE a.user_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.user_id)",
        ),
        (
            "an audit event without a user other than a failed login",
            "SELECT COUNT(*) FROM audit_events WHERE user_id IS NULL AND kind <> 'LOGIN_FAILED'",
        ),
    ];
    for (what, sql) in must_be_none {
        assert_eq!(count(&db, sql).await, 0, "found {what}");
    }
    assert!(
        count(
            &db,
            "SELECT COUNT(*) FROM audit_events WHERE user_id IS NULL"
        )
        .await
            > 0,
        "some failed logins are for addresses without an account"
    );
    for heavy in &summary.heavy_users {
        let events = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM audit_events a JOIN users u ON u.id = a.user_id WHERE u.email = '{}'",
                heavy.email
            ),
        )
        .await;
        assert_eq!(events, i64::try_from(plan.heavy_audit_events).unwrap());
    }
    // Warden can read back what the seed stores as a webauthn-rs passkey.
    for row in entity::passkey::Entity::find().all(&db).await.unwrap() {
        let parsed: Result<webauthn_rs::prelude::Passkey, _> =
            serde_json::from_str(&row.credential);
        assert!(parsed.is_ok(), "passkey credential: {:?}", parsed.err());
    }
}

#[tokio::test]
async fn cleanup_deletes_exactly_the_sessions_seeded_as_expired_and_their_tokens() {
    let (_dir, url, db, summary) = seeded(2).await;
    let plan = summary.plan.clone();
    let tokens_before = count(&db, "SELECT COUNT(*) FROM refresh_tokens").await;
    let app = spawn_app_with(|config| config.database_url = url.clone().into()).await;
    let removed = warden::cleanup::run_once(&app.state.db, &app.config, now())
        .await
        .unwrap();
    let tokens_after = count(&db, "SELECT COUNT(*) FROM refresh_tokens").await;
    assert_eq!(removed.expired_sessions, plan.expired_sessions);
    assert_eq!(removed.refresh_tokens as i64, tokens_before - tokens_after);
    assert!(removed.refresh_tokens >= plan.expired_sessions);
    // Nothing else is old enough at the default retentions.
    assert_eq!(
        warden::cleanup::Removed {
            expired_sessions: 0,
            refresh_tokens: 0,
            ..removed
        },
        warden::cleanup::Removed::default(),
        "cleanup removed more than the expired sessions"
    );
    let left = count(&db, "SELECT COUNT(*) FROM sessions").await;
    assert_eq!(left as u64, plan.live_sessions + plan.revoked_sessions);
}

async fn every_row(db: &DatabaseConnection) -> Vec<String> {
    use entity::*;
    // One digest per table over every column (`Debug` of the models
    // redacts hashes, so those rows are spelled out column by column).
    macro_rules! table {
        ($module:ident, $column:ident) => {{
            let rows = $module::Entity::find()
                .order_by_asc($module::Column::$column)
                .all(db)
                .await
                .unwrap();
            (stringify!($module), rows)
        }};
    }
    let mut digests = Vec::new();
    let mut add = |name: &str, rows: Vec<u8>| digests.push(format!("{name}:{:x}", fnv(&rows)));
    let (n, rows) = table!(user, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                &r.email,
                &r.username,
                &r.password_hash,
                &r.role,
                r.created_at,
                r.last_login_at,
                r.email_verified_at,
                r.mfa_enabled_at,
                r.disabled_at,
                &r.disabled_reason,
            )
        })),
    );
    let (n, rows) = table!(session, Id);
    add(n, bytes_of(rows.iter().map(|r| format!("{r:?}"))));
    let (n, rows) = table!(refresh_token, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                r.session_id,
                &r.token_hash,
                r.parent_id,
                r.issued_at,
                r.expires_at,
                r.used_at,
            )
        })),
    );
    let (n, rows) = table!(audit_event, Id);
    add(n, bytes_of(rows.iter().map(|r| format!("{r:?}"))));
    let (n, rows) = table!(trusted_device, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                r.user_id,
                &r.token_hash,
                r.created_at,
                r.last_used_at,
                r.expires_at,
                &r.ip,
                &r.user_agent,
            )
        })),
    );
    let (n, rows) = table!(email_token, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                r.user_id,
                &r.purpose,
                &r.token_hash,
                &r.code_hash,
                &r.email_key,
                &r.new_email,
                r.attempts,
                r.created_at,
                r.expires_at,
                r.used_at,
            )
        })),
    );
    let (n, rows) = table!(mail_outbox, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                &r.kind,
                &r.recipient,
                &r.message_id,
                r.created_at,
                r.attempts,
                r.sent_at,
                r.failed_at,
            )
        })),
    );
    let (n, rows) = table!(totp_factor, UserId);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.user_id,
                &r.secret_sealed,
                r.created_at,
                r.confirmed_at,
                r.last_step,
            )
        })),
    );
    let (n, rows) = table!(recovery_code, Id);
    add(
        n,
        bytes_of(
            rows.iter()
                .map(|r| (r.id, r.user_id, &r.code_hash, r.created_at, r.used_at)),
        ),
    );
    let (n, rows) = table!(passkey, Id);
    add(n, bytes_of(rows.iter().map(|r| format!("{r:?}"))));
    let (n, rows) = table!(api_key, Id);
    add(
        n,
        bytes_of(rows.iter().map(|r| {
            (
                r.id,
                r.user_id,
                &r.name,
                &r.prefix,
                &r.secret_hash,
                &r.scopes,
                r.created_at,
                r.last_used_at,
                r.expires_at,
                r.revoked_at,
            )
        })),
    );
    let (n, rows) = table!(login_attempt, Email);
    add(n, bytes_of(rows.iter().map(|r| format!("{r:?}"))));
    digests
}

fn bytes_of<T: std::fmt::Debug>(rows: impl Iterator<Item = T>) -> Vec<u8> {
    rows.flat_map(|r| format!("{r:?}\n").into_bytes()).collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[tokio::test]
async fn the_same_seed_writes_the_same_rows_and_another_seed_writes_others() {
    let (_a, _, first, _) = seeded(7).await;
    let (_b, _, again, _) = seeded(7).await;
    let (_c, _, other, _) = seeded(8).await;
    let (first, again, other) = (
        every_row(&first).await,
        every_row(&again).await,
        every_row(&other).await,
    );
    assert_eq!(first, again, "the same seed wrote different rows");
    for (a, b) in first.iter().zip(&other) {
        assert_ne!(a, b, "another seed wrote the same rows");
    }
}

#[tokio::test]
async fn warden_signs_a_seeded_user_in_with_the_seeded_password_and_answers_me() {
    let (_dir, url, _db, summary) = seeded(3).await;
    let app = spawn_app_with(|config| config.database_url = url.clone().into()).await;
    let heavy = &summary.heavy_users[0];
    let body = app.login(&heavy.email, PASSWORD).await;
    assert!(body["errors"].is_null(), "login failed: {body}");
    let token = body["data"]["login"]["accessToken"].as_str().unwrap();
    let me = app.gql(Some(token), "{ me { email } }", json!({})).await;
    assert_eq!(me["data"]["me"]["email"], heavy.email.as_str(), "{me}");
    // The heavy user's API key, printed by the summary, works as a key.
    let by_key = app
        .gql(Some(&heavy.api_key), "{ me { email } }", json!({}))
        .await;
    assert_eq!(
        by_key["data"]["me"]["email"],
        heavy.email.as_str(),
        "{by_key}"
    );
    // An ordinary seeded account and an administrator, same password.
    let admin = &summary.admins[0];
    let body = app.login(admin, PASSWORD).await;
    assert!(body["errors"].is_null(), "admin login failed: {body}");
    let wrong = app.login(&heavy.email, "not the seeded password").await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["code"],
        "INVALID_CREDENTIALS"
    );
}
