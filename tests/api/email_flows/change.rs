//! Email change (issue #20, item 5): asked with an access token and the
//! current password, confirmed from the new address (link or code),
//! refused when the address was taken meanwhile, and it ends the other
//! sessions.

use serde_json::json;

use super::support::{by_code, by_token, mail_app};
use crate::helpers::{code, email, reason, s, PASSWORD};

#[tokio::test]
async fn a_change_needs_an_access_token_and_the_right_password() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken");
    let new = email();
    let body = app.request_change(None, &new, PASSWORD).await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"), "{body}");
    let body = app
        .request_change(Some(token), &new, "a wrong guess of a password")
        .await;
    assert_eq!(code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    for bad in ["not-an-email", "", "two@@example.com", " @example.com"] {
        let body = app.request_change(Some(token), bad, PASSWORD).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{bad:?}: {body}");
    }
    app.settle().await;
    assert!(
        app.mails_to(&new).is_empty(),
        "nothing mailed for refused requests"
    );
    assert_eq!(app.mails_to(&who).len(), 1, "only the verification");
}

#[tokio::test]
async fn the_new_address_gets_link_and_code_the_old_a_notice_and_the_link_moves_the_account() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let other = app.login(&old, PASSWORD).await["data"]["login"].clone();
    let new = email();
    let body = app
        .request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    assert_eq!(body["data"]["requestEmailChange"], true, "{body}");

    let confirm = app.nth_mail(&new, 1).await;
    assert_eq!(
        confirm.link_path().as_deref(),
        Some("confirm-email"),
        "{}",
        confirm.text
    );
    assert_eq!(confirm.code().len(), 6);
    let notice = app.nth_mail(&old, 2).await;
    assert!(notice.link_path().is_none(), "{}", notice.text);
    assert!(
        notice.text.contains(&new),
        "the notice names the new address: {}",
        notice.text
    );
    assert!(!notice.raw.contains(&confirm.token()) && !notice.raw.contains(&confirm.code()));

    // Nothing moved before the confirmation.
    assert!(app.login(&old, PASSWORD).await["errors"].is_null());

    let body = app
        .confirm_change(Some(s(&caller, "accessToken")), by_token(&confirm.token()))
        .await;
    assert_eq!(body["data"]["confirmEmailChange"], true, "{body}");

    let me = app.me(Some(s(&caller, "accessToken"))).await;
    assert_eq!(
        me["data"]["me"]["email"],
        json!(new.to_lowercase()),
        "the caller stays: {me}"
    );
    assert_eq!(
        app.email_verified(s(&caller, "accessToken")).await,
        json!(true)
    );
    let gone = app.me(Some(s(&other, "accessToken"))).await;
    assert_eq!(reason(&gone), Some("REVOKED"), "{gone}");
    assert_eq!(
        code(&app.refresh(s(&other, "refreshToken")).await),
        Some("INVALID_REFRESH_TOKEN")
    );
    assert!(app.refresh(s(&caller, "refreshToken")).await["errors"].is_null());

    assert!(app.login(&new, PASSWORD).await["errors"].is_null());
    assert_eq!(
        code(&app.login(&old, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );
    let replay = app.confirm_change(None, by_token(&confirm.token())).await;
    assert_eq!(code(&replay), Some("INVALID_TOKEN"), "{replay}");
}

#[tokio::test]
async fn a_code_confirms_the_change_and_without_a_bearer_every_session_ends() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let other = app.login(&old, PASSWORD).await["data"]["login"].clone();
    let new = email();
    app.request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    let confirm = app.nth_mail(&new, 1).await;
    // The code goes with the address it was mailed to, not the old one.
    let body = app
        .confirm_change(None, by_code(&old, &confirm.code()))
        .await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");

    let body = app
        .confirm_change(None, by_code(&new, &confirm.code()))
        .await;
    assert_eq!(body["data"]["confirmEmailChange"], true, "{body}");
    for session in [&caller, &other] {
        let me = app.me(Some(s(session, "accessToken"))).await;
        assert_eq!(reason(&me), Some("REVOKED"), "{me}");
    }
    let login = app.login(&new, PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");
    assert_eq!(
        app.email_verified(s(&login["data"]["login"], "accessToken"))
            .await,
        json!(true)
    );
}

#[tokio::test]
async fn an_address_taken_meanwhile_answers_email_taken_and_nothing_changes() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let other = app.login(&old, PASSWORD).await["data"]["login"].clone();
    let new = email();
    app.request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    let confirm = app.nth_mail(&new, 1).await;
    let squatter = app.register(&new).await;

    let body = app
        .confirm_change(Some(s(&caller, "accessToken")), by_token(&confirm.token()))
        .await;
    assert_eq!(code(&body), Some("EMAIL_TAKEN"), "{body}");
    let me = app.me(Some(s(&caller, "accessToken"))).await;
    assert_eq!(me["data"]["me"]["email"], json!(old.to_lowercase()), "{me}");
    assert!(
        app.me(Some(s(&other, "accessToken"))).await["errors"].is_null(),
        "no session ended"
    );
    assert!(app.login(&old, PASSWORD).await["errors"].is_null());
    let me = app.me(Some(s(&squatter, "accessToken"))).await;
    assert_eq!(me["data"]["me"]["email"], json!(new.to_lowercase()), "{me}");
    assert_eq!(me["data"]["me"]["id"], squatter["user"]["id"]);
}

#[tokio::test]
async fn an_email_change_token_does_not_verify_or_reset() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let new = email();
    app.request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    let confirm = app.nth_mail(&new, 1).await;
    let body = app.verify(by_token(&confirm.token())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    let body = app.verify(by_code(&new, &confirm.code())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    let body = app
        .reset(
            by_token(&confirm.token()),
            "an entirely new passphrase here",
        )
        .await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    assert_eq!(
        app.email_verified(s(&caller, "accessToken")).await,
        json!(false)
    );
    let body = app.confirm_change(None, by_token(&confirm.token())).await;
    assert_eq!(
        body["data"]["confirmEmailChange"], true,
        "still usable: {body}"
    );
}

#[tokio::test]
async fn a_moved_account_ignores_tokens_mailed_to_its_old_address() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let verify = app.nth_mail(&old, 1).await;
    app.request_reset(&old).await;
    let reset = app.nth_mail(&old, 2).await;
    assert_eq!(reset.link_path().as_deref(), Some("reset-password"));
    let new = email();
    app.request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    let confirm = app.nth_mail(&new, 1).await;
    let body = app
        .confirm_change(Some(s(&caller, "accessToken")), by_token(&confirm.token()))
        .await;
    assert_eq!(body["data"]["confirmEmailChange"], true, "{body}");

    // Whoever still reads the old mailbox can do nothing with what it got.
    for input in [by_token(&reset.token()), by_code(&old, &reset.code())] {
        let body = app.reset(input.clone(), "the old inbox takes over").await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{input}: {body}");
    }
    for input in [by_token(&verify.token()), by_code(&old, &verify.code())] {
        let body = app.verify(input.clone()).await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{input}: {body}");
    }
    assert!(app.login(&new, PASSWORD).await["errors"].is_null());
}

#[tokio::test]
async fn a_bearer_of_another_account_spares_none_of_the_moved_accounts_sessions() {
    let app = mail_app().await;
    let old = email();
    let owner = app.register(&old).await;
    let stranger = app.register(&email()).await;
    let new = email();
    app.request_change(Some(s(&owner, "accessToken")), &new, PASSWORD)
        .await;
    let confirm = app.nth_mail(&new, 1).await;
    let body = app
        .confirm_change(
            Some(s(&stranger, "accessToken")),
            by_token(&confirm.token()),
        )
        .await;
    assert_eq!(body["data"]["confirmEmailChange"], true, "{body}");
    let me = app.me(Some(s(&owner, "accessToken"))).await;
    assert_eq!(reason(&me), Some("REVOKED"), "{me}");
    let me = app.me(Some(s(&stranger, "accessToken"))).await;
    assert!(
        me["errors"].is_null(),
        "the stranger's own session is untouched: {me}"
    );
    assert_ne!(me["data"]["me"]["email"], json!(new.to_lowercase()));
}
