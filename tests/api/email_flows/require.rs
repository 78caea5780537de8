//! `WARDEN_REQUIRE_EMAIL_VERIFICATION=true`: no session before the address
//! is proven, and `login` says so only after a right password.

use entity::user;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use super::support::{by_code, by_token, mail_app_with, new_password, MailApp};
use crate::helpers::{code, email, s, PASSWORD};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken sessionId user { id email } } }";

async fn strict_app() -> MailApp {
    mail_app_with(|c| c.require_email_verification = true).await
}

#[tokio::test]
async fn register_creates_the_account_and_mails_but_answers_email_not_verified_without_tokens() {
    let app = strict_app().await;
    let who = email();
    let response = app
        .post(
            None,
            REGISTER,
            json!({ "i": { "email": who, "password": PASSWORD } }),
        )
        .await;
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no refresh cookie"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), Some("EMAIL_NOT_VERIFIED"), "{body}");
    assert!(
        body["data"].is_null() || body["data"]["register"].is_null(),
        "{body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("accessToken\":\"") && !text.contains("eyJ"),
        "{text}"
    );

    let accounts = user::Entity::find()
        .filter(user::Column::Email.eq(who.to_lowercase()))
        .count(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(accounts, 1, "the account exists");
    let mail = app.nth_mail(&who, 1).await;
    assert_eq!(mail.link_path().as_deref(), Some("verify-email"));
}

#[tokio::test]
async fn login_tells_a_guesser_nothing_and_the_owner_to_verify_then_works_once_verified() {
    let app = strict_app().await;
    let who = email();
    app.gql(
        None,
        REGISTER,
        json!({ "i": { "email": who, "password": PASSWORD } }),
    )
    .await;
    let wrong = app.login(&who, "a wrong guess of a password").await;
    assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"), "{wrong}");
    let unknown = app.login(&email(), "a wrong guess of a password").await;
    assert_eq!(code(&unknown), Some("INVALID_CREDENTIALS"), "{unknown}");
    let right = app.login(&who, PASSWORD).await;
    assert_eq!(code(&right), Some("EMAIL_NOT_VERIFIED"), "{right}");
    assert!(!right.to_string().contains("eyJ"), "{right}");

    // The right password also mailed a fresh link and code (the account
    // has no session to ask with), superseding the registration's.
    let first = app.nth_mail(&who, 1).await;
    let fresh = app.nth_mail(&who, 2).await;
    assert_eq!(fresh.link_path().as_deref(), Some("verify-email"));
    let stale = app.verify(by_code(&who, &first.code())).await;
    assert_eq!(code(&stale), Some("INVALID_TOKEN"), "{stale}");
    let body = app.verify(by_code(&who, &fresh.code())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    let after = app.login(&who, PASSWORD).await;
    assert!(after["errors"].is_null(), "{after}");
    let token = s(&after["data"]["login"], "accessToken");
    assert_eq!(app.email_verified(token).await, json!(true));
}

#[tokio::test]
async fn a_password_reset_proves_the_address_and_opens_login() {
    let app = strict_app().await;
    let who = email();
    app.gql(
        None,
        REGISTER,
        json!({ "i": { "email": who, "password": PASSWORD } }),
    )
    .await;
    app.nth_mail(&who, 1).await;
    let body = app.request_reset(&who).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    let mail = app.nth_mail(&who, 2).await;
    assert_eq!(mail.link_path().as_deref(), Some("reset-password"));
    let password = new_password();
    let body = app.reset(by_token(&mail.token()), &password).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let after = app.login(&who, &password).await;
    assert!(after["errors"].is_null(), "{after}");
}
