//! `register` and `login`: success, validation and every error code they return.

use serde_json::json;
use warden::services::audit_log;

use crate::helpers::{code, email, s, spawn_app, spawn_app_with, PASSWORD};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken tokenType expiresIn accessTokenExpiresAt refreshToken refreshTokenExpiresAt sessionId user { id email username role createdAt lastLoginAt } } }";

#[tokio::test]
async fn register_returns_a_working_session_for_a_new_user_account() {
    let app = spawn_app().await;
    let body = app
        .gql(None, REGISTER, json!({ "i": { "email": "  Ada@Example.COM ", "password": PASSWORD, "username": " ada " } }))
        .await;
    let payload = &body["data"]["register"];
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(payload["tokenType"], "Bearer");
    assert_eq!(payload["expiresIn"], 900);
    assert_eq!(payload["user"]["email"], "ada@example.com");
    assert_eq!(payload["user"]["username"], "ada");
    assert_eq!(payload["user"]["role"], "USER");
    assert!(payload["user"]["lastLoginAt"].is_string());
    assert_eq!(s(payload, "refreshToken").len(), 43);

    let me = app.me(Some(s(payload, "accessToken"))).await;
    assert_eq!(me["data"]["me"]["email"], "ada@example.com");
    assert_eq!(me["data"]["me"]["id"], payload["user"]["id"]);
}

#[tokio::test]
async fn register_refuses_an_email_that_exists_in_any_case() {
    let app = spawn_app().await;
    app.register("grace@example.com").await;
    let body = app
        .gql(
            None,
            REGISTER,
            json!({ "i": { "email": "GRACE@example.com", "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code(&body), Some("EMAIL_TAKEN"));
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn register_refuses_bad_input_naming_the_field() {
    let app = spawn_app().await;
    let long_name = "n".repeat(65);
    let cases = [
        (
            json!({ "email": "not-an-email", "password": PASSWORD }),
            "email",
        ),
        (
            json!({ "email": format!("{}@example.com", "a".repeat(250)), "password": PASSWORD }),
            "email",
        ),
        (json!({ "email": email(), "password": "short" }), "password"),
        (
            json!({ "email": email(), "password": "x".repeat(73) }),
            "password",
        ),
        (
            json!({ "email": email(), "password": "abc\u{0}defghij" }),
            "password",
        ),
        (
            json!({ "email": email(), "password": "password123" }),
            "password",
        ),
        (
            json!({ "email": email(), "password": PASSWORD, "username": long_name }),
            "username",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(None, REGISTER, json!({ "i": input })).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{input}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains(PASSWORD) && !message.contains("password123"),
            "echoed: {message}"
        );
    }
    let users = entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert!(users.is_empty(), "no account may be created by bad input");
}

#[tokio::test]
async fn a_72_byte_password_works_and_is_never_truncated() {
    let app = spawn_app().await;
    let who = email();
    // 30 two-byte letters and 12 ASCII: not a repeat, so the strength check passes.
    let password = format!("{}{}", "жёлудьщукапыльхвостбегемотсмор", "tide pool!!k"); // 72 bytes
    assert_eq!(password.len(), 72);
    let body = app
        .gql(
            None,
            REGISTER,
            json!({ "i": { "email": who, "password": password } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let ok = app.login(&who, &password).await;
    assert!(ok["errors"].is_null(), "{ok}");
    let longer = format!("{password}X");
    let refused = app.login(&who, &longer).await;
    assert_eq!(code(&refused), Some("INVALID_CREDENTIALS"));
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_exactly_one_account() {
    let app = spawn_app().await;
    let who = email();
    let attempts = (0..12).map(|_| {
        app.gql(
            None,
            REGISTER,
            json!({ "i": { "email": who, "password": PASSWORD } }),
        )
    });
    let mut bodies = futures::future::join_all(attempts).await;
    // On a machine loaded by the rest of the suite, the low-priority hashing
    // thread can fall so far behind that the queue refuses some of the
    // twelve (`SERVICE_UNAVAILABLE`, by design): those try again, one by one.
    for body in &mut bodies {
        for _ in 0..5 {
            if code(body) != Some("SERVICE_UNAVAILABLE") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            *body = app
                .gql(
                    None,
                    REGISTER,
                    json!({ "i": { "email": who, "password": PASSWORD } }),
                )
                .await;
        }
    }
    let created = bodies.iter().filter(|b| b["errors"].is_null()).count();
    let taken = bodies
        .iter()
        .filter(|b| code(b) == Some("EMAIL_TAKEN"))
        .count();
    assert_eq!((created, taken), (1, 11), "{bodies:?}");
    let users = entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
}

#[tokio::test]
async fn login_starts_a_new_session_each_time() {
    let app = spawn_app().await;
    let who = email();
    let registered = app.register(&who).await;
    let first = app.login(&who.to_uppercase(), PASSWORD).await;
    let second = app.login(&who, PASSWORD).await;
    let ids = [
        s(&registered, "sessionId"),
        s(&first["data"]["login"], "sessionId"),
        s(&second["data"]["login"], "sessionId"),
    ];
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let me = app
        .me(Some(s(&second["data"]["login"], "accessToken")))
        .await;
    assert_eq!(me["data"]["me"]["email"], who.as_str());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let who = email();
    app.register(&who).await;
    let wrong = app.login(&who, "not the password at all").await;
    let unknown = app.login(&email(), "not the password at all").await;
    assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"));
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["extensions"],
        unknown["errors"][0]["extensions"]
    );
    assert_eq!(wrong["data"], unknown["data"]);

    let failed = audit_log::page(
        app.state.db.read(),
        &audit_log::Query {
            kinds: vec![warden::domain::AuditEventKind::LoginFailed],
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .0;
    assert_eq!(failed.len(), 2, "both failures are audited");
}

#[tokio::test]
async fn login_refuses_a_malformed_email_as_bad_input() {
    let app = spawn_app().await;
    let body = app.login("nobody", PASSWORD).await;
    assert_eq!(code(&body), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "email");
}

use sea_orm::EntityTrait;

#[tokio::test]
async fn an_unknown_email_costs_one_password_verification_like_a_wrong_password() {
    let app = spawn_app().await;
    let who = email();
    app.register(&who).await;
    let before = app.state.hasher.verifications();
    app.login(&email(), "not the password at all").await;
    let after_unknown = app.state.hasher.verifications();
    app.login(&who, "not the password at all").await;
    let after_wrong = app.state.hasher.verifications();
    assert_eq!(after_unknown - before, 1, "the dummy hash was verified");
    assert_eq!(after_wrong - after_unknown, 1);
}

#[tokio::test]
async fn a_database_locked_past_its_timeout_answers_service_unavailable_then_recovers() {
    use sea_orm::{
        ConnectionTrait, Database, SqliteTransactionMode, TransactionOptions, TransactionTrait,
    };
    let app =
        spawn_app_with(|c| c.database_acquire_timeout = std::time::Duration::from_secs(2)).await;
    // Another process (here: another connection) holds the lock Warden needs.
    let intruder = Database::connect(app.database_url()).await.unwrap();
    let lock = if crate::helpers::on_postgres() {
        let txn = intruder.begin().await.unwrap();
        txn.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        txn
    } else {
        let immediate = TransactionOptions {
            isolation_level: None,
            access_mode: None,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        };
        intruder.begin_with_options(immediate).await.unwrap()
    };
    let body = app
        .gql(
            None,
            REGISTER,
            json!({ "i": { "email": email(), "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code(&body), Some("SERVICE_UNAVAILABLE"), "{body}");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("lock") && !text.contains("sql") && !text.contains("users"),
        "no database detail: {text}"
    );
    lock.rollback().await.unwrap();
    let body = app
        .gql(
            None,
            REGISTER,
            json!({ "i": { "email": email(), "password": PASSWORD } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
}
