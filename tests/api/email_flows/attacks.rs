//! Attacks on the email flows beyond the reset race: racing codes past
//! their five tries, racing single-use tokens, guessing a password through
//! `requestEmailChange`, flooding an inbox, and a stolen session's pending
//! email change outliving a password reset.

use serde_json::{json, Value};

use super::support::{
    by_code, by_token, codes, mail_app, mail_app_with, new_password, quota, race_gql,
    CONFIRM_CHANGE, SEND_VERIFICATION, VERIFY,
};
use crate::helpers::{code, email, s, PASSWORD};

fn winners(answers: &[Value], field: &str) -> usize {
    answers.iter().filter(|a| a["data"][field] == true).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_wrong_codes_cannot_stretch_the_five_tries() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let right = app.nth_mail(&who, 1).await.code();
    let n: u32 = right.parse().unwrap();
    // Twelve different wrong codes at once: a lost attempt count would
    // leave the code alive for more guesses.
    let requests = (1..=12)
        .map(|i| {
            let wrong = format!("{:06}", (n + i) % 1_000_000);
            (
                VERIFY.to_owned(),
                None,
                json!({ "i": by_code(&who, &wrong) }),
            )
        })
        .collect();
    let answers = race_gql(&app.address, requests).await;
    for answer in &answers {
        assert_eq!(codes(answer), ["INVALID_TOKEN"], "{answer}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_token_raced_by_many_clients_is_used_once() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;
    let requests = (0..8)
        .map(|i| {
            let input = if i % 2 == 0 {
                by_token(&mail.token())
            } else {
                by_code(&who, &mail.code())
            };
            (VERIFY.to_owned(), None, json!({ "i": input }))
        })
        .collect();
    let answers = race_gql(&app.address, requests).await;
    assert_eq!(winners(&answers, "verifyEmail"), 1, "{answers:?}");
    for answer in answers.iter().filter(|a| a["data"]["verifyEmail"] != true) {
        assert_eq!(codes(answer), ["INVALID_TOKEN"], "never INTERNAL: {answer}");
    }
    let user_id = s(&payload["user"], "id");
    let verified = app
        .audit_kinds(user_id)
        .await
        .into_iter()
        .filter(|k| k == "EMAIL_VERIFIED")
        .count();
    assert_eq!(verified, 1, "audited once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_change_raced_by_many_clients_is_applied_once() {
    let app = mail_app().await;
    let old = email();
    let caller = app.register(&old).await;
    let new = email();
    app.request_change(Some(s(&caller, "accessToken")), &new, PASSWORD)
        .await;
    let mail = app.nth_mail(&new, 1).await;
    let requests = (0..8)
        .map(|_| {
            (
                CONFIRM_CHANGE.to_owned(),
                None,
                json!({ "i": by_token(&mail.token()) }),
            )
        })
        .collect();
    let answers = race_gql(&app.address, requests).await;
    assert_eq!(winners(&answers, "confirmEmailChange"), 1, "{answers:?}");
    for answer in answers
        .iter()
        .filter(|a| a["data"]["confirmEmailChange"] != true)
    {
        assert_eq!(codes(answer), ["INVALID_TOKEN"], "never INTERNAL: {answer}");
    }
    assert!(app.login(&new, PASSWORD).await["errors"].is_null());
}

#[tokio::test]
async fn guessing_the_password_through_request_email_change_is_rate_limited() {
    let app = mail_app_with(|c| c.rates.rate_mail_ip = quota("3/min")).await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken");
    for i in 0..3 {
        let body = app
            .request_change(Some(token), &email(), &format!("guess number {i} here"))
            .await;
        assert_eq!(code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    let body = app.request_change(Some(token), &email(), PASSWORD).await;
    assert_eq!(code(&body), Some("RATE_LIMITED"), "{body}");
}

#[tokio::test]
async fn send_verification_email_cannot_flood_an_inbox() {
    let app = mail_app_with(|c| c.rates.rate_mail_email = quota("2/h")).await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken");
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(app.gql(Some(token), SEND_VERIFICATION, json!({})).await);
    }
    assert_eq!(codes(&answers[3]), ["RATE_LIMITED"], "{answers:?}");
    app.settle().await;
    // The registration's mail, and at most two more.
    assert!(
        app.mails_to(&who).len() <= 3,
        "{}",
        app.mails_to(&who).len()
    );
}

/// Beyond the contract's words, a security expectation: someone holding a
/// stolen session asks to move the account to their own address; the
/// owner notices (the notice to the old address) and resets the password,
/// which ends every session. The pending change must die with them, or
/// the thief still takes the account with the token in their own inbox.
#[tokio::test]
async fn a_password_reset_cancels_a_pending_email_change() {
    let app = mail_app().await;
    let owner = email();
    app.register(&owner).await;
    let stolen = app.login(&owner, PASSWORD).await["data"]["login"].clone();
    let thief = email();
    let body = app
        .request_change(Some(s(&stolen, "accessToken")), &thief, PASSWORD)
        .await;
    assert_eq!(body["data"]["requestEmailChange"], true, "{body}");
    let change = app.nth_mail(&thief, 1).await;

    app.request_reset(&owner).await;
    let reset = app
        .wait_mails(&owner, 3)
        .await
        .into_iter()
        .find(|m| m.link_path().as_deref() == Some("reset-password"))
        .expect("a reset mail");
    let password = new_password();
    let body = app.reset(by_token(&reset.token()), &password).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");

    let body = app.confirm_change(None, by_token(&change.token())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    assert!(app.login(&owner, &password).await["errors"].is_null());
    assert_eq!(
        code(&app.login(&thief, &password).await),
        Some("INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn redis_holds_no_address_after_the_mail_and_code_limits_count_it() {
    let Ok(url) = std::env::var("WARDEN_TEST_REDIS_URL") else {
        eprintln!("skipped: WARDEN_TEST_REDIS_URL is not set");
        return;
    };
    // Slow quotas, so the buckets outlive the test in Redis.
    let app = mail_app_with(|c| {
        c.rates.rate_mail_email = quota("1000/h");
        c.rates.rate_mail_ip = quota("1000/h");
        c.rates.rate_email_code = quota("1000/h");
        c.rates.rate_email_token_ip = quota("1000/h");
    })
    .await;
    let who = email();
    app.register(&who).await;
    let mail = app.nth_mail(&who, 1).await;
    app.request_reset(&who).await;
    app.verify(by_code(&who, "000000")).await;
    app.verify(by_code(&who, &mail.code())).await;
    let prefix = app.config.redis_prefix.clone();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the limits wrote buckets under {prefix}");
    let local = who.split('@').next().unwrap();
    for key in &keys {
        assert!(!key.contains(local), "the address in the key {key}");
        let dump: Option<Vec<u8>> = redis::cmd("DUMP")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let dump = String::from_utf8_lossy(&dump.unwrap_or_default()).into_owned();
        assert!(!dump.contains(local), "the address in the value of {key}");
    }
}

/// "A new mail invalidates older ones" must hold when the mails are asked
/// for at once: each issue supersedes what it sees, so two concurrent
/// issues (on Postgres, READ COMMITTED) can each miss the other's new row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verification_mails_leave_only_one_live_token() {
    let app = mail_app().await;
    let who = email();
    let payload = app.register(&who).await;
    app.nth_mail(&who, 1).await;
    let token = s(&payload, "accessToken").to_owned();
    let requests = (0..6)
        .map(|_| (SEND_VERIFICATION.to_owned(), Some(token.clone()), json!({})))
        .collect();
    let answers = race_gql(&app.address, requests).await;
    for answer in &answers {
        assert_eq!(answer["data"]["sendVerificationEmail"], true, "{answer}");
    }
    let user_id: uuid::Uuid = s(&payload["user"], "id").parse().unwrap();
    let live: Vec<_> = app
        .email_tokens()
        .await
        .into_iter()
        .filter(|t| t.user_id == user_id && t.used_at.is_none())
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    // Over HTTP: of the seven mails, exactly one link still works.
    let mails = app.wait_mails(&who, 7).await;
    let mut working = 0;
    for mail in &mails {
        if app.verify(by_token(&mail.token())).await["data"]["verifyEmail"] == true {
            working += 1;
        }
    }
    assert_eq!(working, 1);
}
