//! The real binary killed with SIGKILL between the commit of a reset
//! request and the sending of its mail: after a restart the mail is
//! delivered once and its link works. On SQLite (a temp file) and on
//! Postgres when `WARDEN_TEST_DATABASE_URL` is set.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use entity::mail_outbox;
use sea_orm::{sea_query::Expr, ColumnTrait, Database, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use super::{
    by_recipient,
    message::{link_token, recipient},
    wait_until, LOGIN, NEW_PASSWORD, RESET, RESET_PASSWORD,
};
use crate::{
    helpers::{code, email, test_database, PASSWORD},
    smtp::{free_port, Smtp},
};

/// The real `warden serve`, as an operator runs it.
struct Binary {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Binary {
    /// Starts the binary on `database_url` with its mail going to SMTP on
    /// `smtp_port`, and waits until it answers.
    async fn start(database_url: &str, smtp_port: u16) -> Binary {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
        for (key, _) in std::env::vars() {
            if key.starts_with("WARDEN_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("serve")
            .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
            .env("WARDEN_DATABASE_URL", database_url)
            .env("WARDEN_BCRYPT_COST", "4")
            .env("WARDEN_RATE_LIMITS", "off")
            .env("WARDEN_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env("WARDEN_MAIL_FROM", "Warden Test <no-reply@warden.test>")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("warden binary runs");
        let bin = Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let started = Instant::now();
        while bin
            .client
            .get(format!("{}/healthz", bin.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "warden did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bin
    }

    async fn gql(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// SIGKILL: no shutdown hook, no flush, nothing after the last commit.
    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL sent");
        let status = self.child.wait().expect("reaped");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_reset_mail_committed_before_a_kill_9_is_delivered_once_after_restart_and_its_link_works()
{
    let dir = tempfile::tempdir().unwrap();
    let database_url = test_database(&dir).await;
    let smtp_port = free_port(); // nothing listens: nothing can be sent
    let who = email();

    let first = Binary::start(&database_url, smtp_port).await;
    let body = first
        .gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": who, "password": PASSWORD } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let body = first.gql(RESET, json!({ "e": who })).await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    // The answer means the request is committed; nothing was sent.
    first.kill_9();

    // Whatever the dead process did after the commit (nothing, resolved
    // the request, or tried the relay once and scheduled a retry), the mail
    // is still in the outbox. Let time pass the retry's backoff: make every
    // unsent row due now, as the clock would after the backoff (the backoff
    // itself is tested in `mail.rs` with the injected clock).
    let db = Database::connect(database_url.clone()).await.unwrap();
    let unsent = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SentAt.is_null())
        .all(&db)
        .await
        .unwrap();
    let left: Vec<(&str, i32)> = unsent
        .iter()
        .map(|r| (r.kind.as_str(), r.attempts))
        .collect();
    println!("left unsent by the killed process (kind, attempts): {left:?}");
    assert!(
        left.iter().any(|(k, _)| *k == "verify-email")
            && left
                .iter()
                .any(|(k, _)| matches!(*k, "password-reset-request" | "password-reset")),
        "the verification and the reset (its job or its mail) wait in the outbox: {left:?}"
    );
    // A claim the dead sender may have held (its lease is two minutes)
    // ends with the same wait.
    mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::NextAttemptAt,
            Expr::value(warden::clock::Clock::system().now() - chrono::TimeDelta::seconds(1)),
        )
        .col_expr(
            mail_outbox::Column::ClaimUntil,
            Expr::value(sea_orm::Value::ChronoDateTimeUtc(None)),
        )
        .filter(mail_outbox::Column::SentAt.is_null())
        .exec(&db)
        .await
        .unwrap();
    db.close().await.ok();

    let smtp = Smtp::start(smtp_port).await;
    let second = Binary::start(&database_url, smtp_port).await;
    let got = wait_until(&smtp, 60, |got| {
        got.iter()
            .any(|m| link_token(m, "reset-password").is_some())
    })
    .await;
    let resets: Vec<&String> = got
        .iter()
        .filter(|m| link_token(m, "reset-password").is_some())
        .collect();
    assert_eq!(recipient(resets[0]), who);
    let token = link_token(resets[0], "reset-password").unwrap();

    let done = second
        .gql(
            RESET_PASSWORD,
            json!({ "i": { "token": token }, "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(done["data"]["resetPassword"], true, "{done}");
    let login = second
        .gql(
            LOGIN,
            json!({ "i": { "email": who, "password": NEW_PASSWORD } }),
        )
        .await;
    assert!(login["errors"].is_null(), "the new password works: {login}");
    let old = second
        .gql(
            LOGIN,
            json!({ "i": { "email": who, "password": PASSWORD } }),
        )
        .await;
    assert!(code(&old).is_some(), "the old password is gone: {old}");

    // The notice of the change comes after: by then any duplicate of the
    // reset mail would be there too.
    let got = wait_until(&smtp, 30, |got| got.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = {
        let again = smtp.messages();
        assert_eq!(again.len(), got.len(), "nothing more arrives");
        again
    };
    let map = by_recipient(&got);
    let mine = &map[who.as_str()];
    assert_eq!(
        mine.iter()
            .filter(|m| link_token(m, "reset-password").is_some())
            .count(),
        1,
        "the reset mail arrives once"
    );
    assert_eq!(
        mine.iter()
            .filter(|m| link_token(m, "verify-email").is_some())
            .count(),
        1,
        "the verification from before the kill arrives once too"
    );
    assert_eq!(
        mine.len(),
        3,
        "verification, reset, password-changed notice"
    );
    // The reset link is single use, on the new process too.
    let again = second
        .gql(
            RESET_PASSWORD,
            json!({ "i": { "token": token }, "p": "yet another passphrase here" }),
        )
        .await;
    assert_eq!(code(&again), Some("INVALID_TOKEN"), "{again}");
}
