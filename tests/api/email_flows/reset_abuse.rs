//! Password reset under attack: one token raced by many clients, and the
//! request and token limits per IP and per email.

use serde_json::{json, Value};

use super::support::{by_token, codes, mail_app, mail_app_with, new_password, quota, RESET};
use crate::helpers::{code, email, PASSWORD};

/// `resetPassword` with `token` from `n` tokio tasks at once, each with
/// its own password; returns each answer with the password it sent.
async fn race(address: &str, token: &str, n: usize) -> Vec<(String, Value)> {
    let client = reqwest::Client::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, start) = (client.clone(), start.clone());
            let url = format!("{address}/graphql");
            let password = new_password();
            let body =
                json!({ "query": RESET, "variables": { "i": by_token(token), "p": password } });
            tokio::spawn(async move {
                start.wait().await;
                let answer: Value = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("JSON");
                (password, answer)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_resets_with_one_token_have_exactly_one_winner() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    for round in 0..3 {
        app.request_reset(&who).await;
        // Mail 1 is the verification; each round adds a reset mail, and
        // each win a password-changed notice.
        let mail = app.nth_mail(&who, 2 + 2 * round).await;
        assert_eq!(mail.link_path().as_deref(), Some("reset-password"));
        let answers = race(&app.address, &mail.token(), 8).await;
        let winners: Vec<&String> = answers
            .iter()
            .filter(|(_, a)| a["data"]["resetPassword"] == true)
            .map(|(p, _)| p)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for (_, answer) in &answers {
            if answer["data"]["resetPassword"] != true {
                assert_eq!(codes(answer), ["INVALID_TOKEN"], "never INTERNAL: {answer}");
            }
        }
        // The winner's password is the one in force.
        let login = app.login(&who, winners[0]).await;
        assert!(login["errors"].is_null(), "{login}");
        app.nth_mail(&who, 3 + 2 * round).await;
    }
}

#[tokio::test]
async fn reset_requests_are_limited_per_ip() {
    let app = mail_app_with(|c| {
        c.rates.rate_mail_ip = quota("3/min");
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let known = email();
    app.register(&known).await;
    let here = [("X-Forwarded-For", "203.0.113.7".to_owned())];
    for who in [known.clone(), email(), email()] {
        let body = app
            .gql_with_headers(
                None,
                super::support::REQUEST_RESET,
                json!({ "e": who }),
                &here,
            )
            .await;
        assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    }
    for who in [known.clone(), email()] {
        let body = app
            .gql_with_headers(
                None,
                super::support::REQUEST_RESET,
                json!({ "e": who }),
                &here,
            )
            .await;
        assert_eq!(code(&body), Some("RATE_LIMITED"), "{body}");
    }
    let elsewhere = [("X-Forwarded-For", "198.51.100.4".to_owned())];
    let body = app
        .gql_with_headers(
            None,
            super::support::REQUEST_RESET,
            json!({ "e": known }),
            &elsewhere,
        )
        .await;
    assert_eq!(
        body["data"]["requestPasswordReset"], true,
        "another client: {body}"
    );
}

#[tokio::test]
async fn reset_requests_are_limited_per_email_alike_for_unknown_addresses() {
    let app = mail_app_with(|c| c.rates.rate_mail_email = quota("2/h")).await;
    let known = email();
    app.register(&known).await;
    let unknown = email();
    let mut limited = Vec::new();
    for who in [&known, &unknown] {
        for _ in 0..2 {
            let body = app.request_reset(who).await;
            assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
        }
        let body = app.request_reset(who).await;
        assert_eq!(codes(&body), ["RATE_LIMITED"], "{body}");
        limited.push(body);
    }
    // The limited answers do not tell the two apart either (retryAfter
    // aside, which depends on when each window began).
    let strip = |b: &Value| {
        let mut b = b.clone();
        b["errors"][0]["extensions"]
            .as_object_mut()
            .map(|e| e.remove("retryAfter"));
        b
    };
    assert_eq!(strip(&limited[0]), strip(&limited[1]));
    // Another address is not held back.
    let body = app.request_reset(&email()).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    // At most the allowed two reset mails reached the account.
    app.settle().await;
    let resets = app
        .mails_to(&known)
        .iter()
        .filter(|m| m.link_path().as_deref() == Some("reset-password"))
        .count();
    assert!(resets <= 2, "{resets}");
}

#[tokio::test]
async fn guessing_reset_tokens_is_limited_per_ip() {
    let app = mail_app_with(|c| c.rates.rate_email_token_ip = quota("3/min")).await;
    let who = email();
    app.register(&who).await;
    app.request_reset(&who).await;
    let mail = app.nth_mail(&who, 2).await;
    for i in 0..3 {
        let body = app
            .reset(
                by_token(&format!("guess-{i}-{}", "A".repeat(40))),
                &new_password(),
            )
            .await;
        assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    }
    let body = app.reset(by_token(&mail.token()), &new_password()).await;
    assert_eq!(code(&body), Some("RATE_LIMITED"), "{body}");
    // The refused call spent nothing: the password is unchanged.
    assert!(app.login(&who, PASSWORD).await["errors"].is_null());
}

#[tokio::test]
async fn a_reset_token_is_not_a_verification_or_email_change_token() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    app.request_reset(&who).await;
    let mail = app.nth_mail(&who, 2).await;
    let body = app.verify(by_token(&mail.token())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    let body = app.confirm_change(None, by_token(&mail.token())).await;
    assert_eq!(code(&body), Some("INVALID_TOKEN"), "{body}");
    let password = new_password();
    let body = app.reset(by_token(&mail.token()), &password).await;
    assert_eq!(body["data"]["resetPassword"], true, "still usable: {body}");
}

#[tokio::test]
async fn two_instances_resolve_each_reset_request_once() {
    let a = mail_app().await;
    let b = a.sibling().await;
    let mut people = Vec::new();
    for _ in 0..8 {
        let who = email();
        a.register(&who).await;
        people.push(who);
    }
    for (i, who) in people.iter().enumerate() {
        let app = if i % 2 == 0 { &a.app } else { &b };
        let body = app
            .gql(None, super::support::REQUEST_RESET, json!({ "e": who }))
            .await;
        assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    }
    warden::services::mail::wake(&a.state);
    warden::services::mail::wake(&b.state);
    for who in &people {
        a.wait_mails(who, 2).await;
    }
    a.settle().await;
    for who in &people {
        let resets = a
            .mails_to(who)
            .iter()
            .filter(|m| m.link_path().as_deref() == Some("reset-password"))
            .count();
        assert_eq!(resets, 1, "one reset mail for {who}");
    }
}

/// The owner who reset their password can sign in from a new device even
/// after a spread-out guessing run had put the address under its global
/// lock (many clients' failures), not just a per-client one.
#[tokio::test]
async fn a_reset_lifts_the_global_lock_of_the_address() {
    let app = mail_app_with(|c| {
        c.lockout_threshold = 1000;
        c.lockout_global_threshold = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let who = email();
    app.register(&who).await;
    for i in 0..3 {
        let from = [("X-Forwarded-For", format!("203.0.113.{}", 10 + i))];
        app.login_with_headers(&who, "a wrong guess of a password", &from)
            .await;
    }
    let new_device = [("X-Forwarded-For", "198.51.100.20".to_owned())];
    let locked = app.login_with_headers(&who, PASSWORD, &new_device).await;
    assert_eq!(code(&locked), Some("ACCOUNT_LOCKED"), "{locked}");

    app.request_reset(&who).await;
    let mail = app.nth_mail(&who, 2).await;
    let password = new_password();
    let body = app.reset(by_token(&mail.token()), &password).await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let after = app.login_with_headers(&who, &password, &new_device).await;
    assert!(after["errors"].is_null(), "{after}");
}
