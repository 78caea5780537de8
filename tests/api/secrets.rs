//! Secrets never appear in logs, errors or the audit log.

use entity::{audit_event, refresh_token, user};
use sea_orm::EntityTrait;
use serde_json::json;

use crate::helpers::{captured_logs, s, spawn_app};

#[tokio::test]
async fn no_password_token_or_hash_reaches_the_log_or_the_audit_rows() {
    let app = spawn_app().await;
    let who = format!("secrets-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let register = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }",
            json!({ "i": { "email": who, "password": password } }),
        )
        .await;
    let first = &register["data"]["register"];
    let mut secrets = vec![password.clone(), wrong.clone()];
    secrets.push(s(first, "accessToken").to_owned());
    secrets.push(s(first, "refreshToken").to_owned());
    app.login(&who, &wrong).await;
    let login = app.login(&who, &password).await;
    secrets.push(s(&login["data"]["login"], "accessToken").to_owned());
    secrets.push(s(&login["data"]["login"], "refreshToken").to_owned());
    let rotated = app.refresh(s(first, "refreshToken")).await;
    secrets.push(s(&rotated["data"]["refresh"], "refreshToken").to_owned());
    app.clock.advance(std::time::Duration::from_secs(11));
    app.refresh(s(first, "refreshToken")).await; // reuse: logged at ERROR level
    app.gql(
        None,
        "mutation($t: String) { logout(refreshToken: $t) }",
        json!({ "t": s(&login["data"]["login"], "refreshToken") }),
    )
    .await;

    let db = app.state.db.read();
    for u in user::Entity::find().all(db).await.unwrap() {
        secrets.push(u.password_hash);
    }
    for t in refresh_token::Entity::find().all(db).await.unwrap() {
        secrets.push(t.token_hash);
    }
    let audit = format!("{:?}", audit_event::Entity::find().all(db).await.unwrap());
    let logs = captured_logs();
    assert!(
        logs.contains("REFRESH_TOKEN_REUSE_DETECTED"),
        "the capture works"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the log");
        assert!(
            !audit.contains(secret.as_str()),
            "a secret reached the audit log"
        );
    }
}
