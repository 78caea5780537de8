//! Email verification (issue #20, item 3): the mail `register` and
//! `sendVerificationEmail` send, `verifyEmail` by link token or by email +
//! code, single use, superseded by a newer mail, five tries per code,
//! expiry, input shape, and the per-email code limit.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{
    by_code, by_token, codes, mail_app, mail_app_with, quota, wrong_code, SEND_VERIFICATION,
};
use crate::helpers::{code, email, s};

#[tokio::test]
async fn register_mails_a_link_and_a_code_and_the_link_verifies_without_an_access_token() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken");
    assert_eq!(app.email_verified(token).await, json!(false));

    let mail = app.nth_mail(&who, 1).await;
    assert_eq!(
        mail.link_path().as_deref(),
        Some("verify-email"),
        "{}",
        mail.text
    );
    assert!(mail.subject.contains("Warden"), "{}", mail.subject);
    let link_token = mail.token();
    assert!(link_token.len() >= 43, "≥ 256 bits: {link_token}");
    assert_eq!(mail.code().len(), 6);

    let body = app.verify(by_token(&link_token)).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(app.email_verified(token).await, json!(true));
}

#[tokio::test]
async fn the_emailed_code_verifies_with_the_email_and_a_used_token_or_code_is_invalid() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;

    let body = app.verify(by_code(&who, &mail.code())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(
        app.email_verified(s(&payload, "accessToken")).await,
        json!(true)
    );
    // The code and the link were one token: both are spent now.
    for input in [by_code(&who, &mail.code()), by_token(&mail.token())] {
        let again = app.verify(input).await;
        assert_eq!(code(&again), Some("INVALID_TOKEN"), "{again}");
    }
}

#[tokio::test]
async fn send_verification_email_needs_an_access_token_and_supersedes_the_older_mail() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let first = app.nth_mail(&who, 1).await;

    let anonymous = app.gql(None, SEND_VERIFICATION, json!({})).await;
    assert_eq!(code(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");

    let body = app
        .gql(
            Some(s(&payload, "accessToken")),
            SEND_VERIFICATION,
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["sendVerificationEmail"], true, "{body}");
    let second = app.nth_mail(&who, 2).await;
    assert_ne!(second.token(), first.token());
    assert_eq!(second.link_path().as_deref(), Some("verify-email"));

    for old in [by_token(&first.token()), by_code(&who, &first.code())] {
        let body = app.verify(old.clone()).await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{old}: {body}");
    }
    let body = app.verify(by_token(&second.token())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
}

#[tokio::test]
async fn the_sixth_try_is_refused_even_with_the_right_code() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let right = app.nth_mail(&who, 1).await.code();
    let wrong = wrong_code(&right);
    for i in 0..5 {
        let body = app.verify(by_code(&who, &wrong)).await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "try {i}: {body}");
    }
    let body = app.verify(by_code(&who, &right)).await;
    assert_eq!(
        code(&body),
        Some("INVALID_TOKEN"),
        "the code is dead: {body}"
    );
    assert_eq!(
        app.email_verified(s(&payload, "accessToken")).await,
        json!(false)
    );
}

#[tokio::test]
async fn an_expired_link_or_code_is_invalid() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;
    app.clock
        .advance(app.config.verify_token_ttl + Duration::from_secs(1));
    for input in [by_token(&mail.token()), by_code(&who, &mail.code())] {
        let body = app.verify(input.clone()).await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{input}: {body}");
    }
    let login = app.login(&who, crate::helpers::PASSWORD).await;
    let me = app
        .gql(
            Some(s(&login["data"]["login"], "accessToken")),
            "{ me { emailVerified } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], false, "{me}");
}

#[tokio::test]
async fn verify_email_takes_exactly_a_token_or_an_email_with_a_code() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;
    let bad: [Value; 5] = [
        json!({}),
        json!({ "token": mail.token(), "email": who, "code": mail.code() }),
        json!({ "token": mail.token(), "code": mail.code() }),
        json!({ "email": who }),
        json!({ "code": mail.code() }),
    ];
    for input in bad {
        let body = app.verify(input.clone()).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{input}: {body}");
    }
    // Nothing was spent by the refused calls.
    let body = app.verify(by_token(&mail.token())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
}

#[tokio::test]
async fn a_code_works_only_with_its_own_email_and_a_token_only_for_its_purpose() {
    let app = mail_app().await;
    let (alice, bob) = (email(), email());
    app.register(&alice).await;
    app.register(&bob).await;
    let alice_mail = app.nth_mail(&alice, 1).await;
    let body = app.verify(by_code(&bob, &alice_mail.code())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    // A verification token is not a reset token.
    let body = app
        .reset(
            by_token(&alice_mail.token()),
            "another fine long passphrase",
        )
        .await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    let login = app.login(&alice, "another fine long passphrase").await;
    assert_eq!(code(&login), Some("INVALID_CREDENTIALS"), "{login}");
    // Neither call spent Alice's token.
    let body = app.verify(by_token(&alice_mail.token())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
}

#[tokio::test]
async fn codes_are_rate_limited_per_email() {
    let app = mail_app_with(|c| c.rates.rate_email_code = quota("3/h")).await;
    let (alice, bob) = (email(), email());
    app.register(&alice).await;
    app.register(&bob).await;
    let alice_code = app.nth_mail(&alice, 1).await.code();
    let bob_code = app.nth_mail(&bob, 1).await.code();
    let wrong = wrong_code(&alice_code);
    for _ in 0..3 {
        let body = app.verify(by_code(&alice, &wrong)).await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    }
    let body = app.verify(by_code(&alice, &alice_code)).await;
    assert_eq!(codes(&body), ["RATE_LIMITED"], "{body}");
    // Another address is not held back by Alice's limit.
    let body = app.verify(by_code(&bob, &bob_code)).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
}

#[tokio::test]
async fn the_email_beside_a_code_is_read_like_a_login_email() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;
    let typed = format!("  {}  ", who.to_uppercase());
    let body = app
        .verify(by_code(&typed, &format!(" {} ", mail.code())))
        .await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(
        app.email_verified(s(&payload, "accessToken")).await,
        json!(true)
    );
}
