//! Audit and metrics of the email flows (issue #20, item 7): each flow
//! writes its kind, and no token, code or password reaches an audit row,
//! a log line, a GraphQL answer or the outbox's metadata.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{by_code, by_token, mail_app, new_password, MailApp, SEND_VERIFICATION};
use crate::helpers::{captured_logs, email, s, PASSWORD};

/// Waits (up to 30 s) until `user_id` has an audit row of `kind`.
async fn wait_audit(app: &MailApp, user_id: &str, kind: &str) -> Vec<String> {
    for _ in 0..600 {
        let kinds = app.audit_kinds(user_id).await;
        if kinds.iter().any(|k| k == kind) {
            return kinds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no {kind} for {user_id}: {:?}",
        app.audit_kinds(user_id).await
    );
}

#[tokio::test]
async fn every_flow_audits_its_kind_and_no_secret_leaks_anywhere() {
    let app = mail_app().await;
    let who = email();
    let mut answers: Vec<Value> = Vec::new();
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned()];
    let mut codes: Vec<String> = Vec::new();

    let payload = app.register(&who).await;
    let user_id = s(&payload["user"], "id").to_owned();
    let token = s(&payload, "accessToken").to_owned();
    let first = app.nth_mail(&who, 1).await;
    answers.push(app.gql(Some(&token), SEND_VERIFICATION, json!({})).await);
    let second = app.nth_mail(&who, 2).await;
    answers.push(app.verify(by_token(&first.token())).await); // superseded
    answers.push(app.verify(by_code(&who, &second.code())).await);
    wait_audit(&app, &user_id, "EMAIL_VERIFIED").await;

    answers.push(app.request_reset(&who).await);
    let reset = app.nth_mail(&who, 3).await;
    let password = new_password();
    answers.push(app.reset(by_token(&reset.token()), &password).await);
    app.nth_mail(&who, 4).await; // password changed

    let login = app.login(&who, &password).await;
    let token = s(&login["data"]["login"], "accessToken").to_owned();
    let new = email();
    answers.push(app.request_change(Some(&token), &new, &password).await);
    let change = app.nth_mail(&new, 1).await;
    app.nth_mail(&who, 5).await; // the notice
    answers.push(
        app.confirm_change(Some(&token), by_code(&new, &change.code()))
            .await,
    );
    answers.push(
        app.gql(Some(&token), "{ me { id email emailVerified } }", json!({}))
            .await,
    );

    let kinds = wait_audit(&app, &user_id, "EMAIL_CHANGED").await;
    for kind in [
        "EMAIL_VERIFICATION_SENT",
        "EMAIL_VERIFIED",
        "PASSWORD_RESET_REQUESTED",
        "PASSWORD_RESET",
        "EMAIL_CHANGE_REQUESTED",
        "EMAIL_CHANGED",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "EMAIL_VERIFICATION_SENT")
            .count(),
        2,
        "register and sendVerificationEmail: {kinds:?}"
    );
    // The user sees them through `auditLog` too.
    let log = app
        .gql(
            Some(&token),
            "{ auditLog(first: 100) { edges { node { kind detail } } } }",
            json!({}),
        )
        .await;
    for kind in ["PASSWORD_RESET", "EMAIL_CHANGED", "EMAIL_VERIFIED"] {
        assert!(log.to_string().contains(kind), "{kind}: {log}");
    }
    answers.push(log);

    for mail in [&first, &second, &reset, &change] {
        secrets.push(mail.token());
        codes.push(mail.code());
    }
    secrets.push(password.clone());
    app.settle().await;

    let audit = format!("{:?}", app.all_audit().await);
    let outbox: Vec<String> = app
        .outbox()
        .await
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {:?}",
                r.kind, r.recipient, r.message_id, r.last_error
            )
        })
        .collect();
    let outbox = outbox.join("\n");
    let answers = serde_json::to_string(&answers).unwrap();
    let logs = captured_logs();
    for secret in &secrets {
        assert!(
            !audit.contains(secret.as_str()),
            "a secret in the audit log"
        );
        assert!(
            !outbox.contains(secret.as_str()),
            "a secret in the outbox: {outbox}"
        );
        assert!(!answers.contains(secret.as_str()), "a secret in an answer");
        assert!(!logs.contains(secret.as_str()), "a secret in the log");
    }
    // Six digits occur by chance in logs (timestamps); look for the code
    // as a value.
    for code in &codes {
        assert!(
            !audit.contains(code.as_str()),
            "a code in the audit log: {audit}"
        );
        assert!(
            !outbox.contains(code.as_str()),
            "a code in the outbox: {outbox}"
        );
        assert!(
            !answers.contains(code.as_str()),
            "a code in an answer: {answers}"
        );
        for shape in [
            format!("\"{code}\""),
            format!("={code}"),
            format!(": {code}"),
        ] {
            assert!(!logs.contains(&shape), "a code in the log: {shape}");
        }
    }
    // The stored rows hold hashes only.
    for row in app.email_tokens().await {
        for secret in &secrets {
            assert!(!row.token_hash.contains(secret.as_str()));
            assert!(!row.code_hash.contains(secret.as_str()));
        }
        assert!(codes.iter().all(|c| row.code_hash != *c));
        assert!(
            row.email_key != who && row.email_key != new,
            "a pseudonym, not the address"
        );
    }
}

#[tokio::test]
async fn mail_metrics_count_each_kind() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    app.nth_mail(&who, 1).await;
    app.request_reset(&who).await;
    let reset = app.nth_mail(&who, 2).await;
    app.reset(by_token(&reset.token()), &new_password()).await;
    app.nth_mail(&who, 3).await;
    app.settle().await;
    let metrics = app.state.metrics.render();
    for line in [
        r#"warden_mail_sent_total{kind="verify-email",result="sent"} 1"#,
        r#"warden_mail_sent_total{kind="password-reset",result="sent"} 1"#,
        r#"warden_mail_sent_total{kind="password-changed",result="sent"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    // The same over HTTP, where Prometheus scrapes.
    let scraped = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scraped.contains(r#"warden_mail_sent_total{kind="password-reset",result="sent"} 1"#),
        "{scraped}"
    );
}
