//! Delivery of the account-lifecycle mail through the real flows (issue
//! #20, "Delivery"): `register` and `requestPasswordReset` over HTTP, a real
//! SMTP server (`crate::smtp`, Debian's `python3-aiosmtpd`), the real
//! outbox and sender. SMTP down while requests come in, the real binary
//! killed with SIGKILL between commit and send, two instances on one
//! database: each message arrives, and arrives once.

mod kill;
mod message;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use entity::mail_outbox;
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::{json, Value};
use warden::services::mail::{self, Mail};

use self::message::{link_token, recipient};
use crate::{
    helpers::{email, spawn_app_with, TestApp, PASSWORD},
    smtp::{free_port, header, Smtp},
};

pub const RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
pub const RESET_PASSWORD: &str =
    "mutation($i: EmailTokenInput!, $p: String!) { resetPassword(input: $i, newPassword: $p) }";
pub const LOGIN: &str =
    "mutation($i: LoginInput!) { login(input: $i) { accessToken user { email } } }";
pub const NEW_PASSWORD: &str = "a brand new passphrase for delivery";

/// A test app whose mail goes to SMTP on `port` (listening or not), with
/// the rate limits off: these tests are about delivery, not quotas.
async fn app_with_smtp(port: u16) -> TestApp {
    spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
        c.mail_from = "Warden Test <no-reply@warden.test>".to_owned();
        c.rate_limits = false;
    })
    .await
}

/// `requestPasswordReset(email)` over HTTP; the whole body.
async fn request_reset(app: &TestApp, email: &str) -> Value {
    app.gql(None, RESET, json!({ "e": email })).await
}

/// `register` over HTTP; the whole body.
async fn register_body(app: &TestApp, email: &str) -> Value {
    app.gql(
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { email } } }",
        json!({ "i": { "email": email, "password": PASSWORD } }),
    )
    .await
}

/// Messages per recipient, and every `Message-ID` distinct.
pub fn by_recipient(messages: &[String]) -> HashMap<String, Vec<&String>> {
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| header(m, "Message-ID"))
        .collect();
    assert_eq!(
        ids.len(),
        messages.len(),
        "every message carries its own Message-ID: none was sent twice"
    );
    let mut map: HashMap<String, Vec<&String>> = HashMap::new();
    for m in messages {
        map.entry(recipient(m)).or_default().push(m);
    }
    map
}

/// Waits until `check` holds for the messages received, up to `secs`.
pub async fn wait_until(smtp: &Smtp, secs: u64, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = smtp.messages();
        if check(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the expected mail did not arrive in {secs} s; got {} messages",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Enqueues a marker on `app`, waits until it arrives, and returns every
/// message received: once the marker is through, the sender has made a
/// pass after the others and a duplicate would have shown up.
async fn settle(app: &TestApp, smtp: &Smtp, expected: usize) -> Vec<String> {
    mail::wake(&app.state);
    mail::enqueue_now(
        &app.state,
        Mail {
            kind: "test",
            to: "marker@example.com".to_owned(),
            subject: "marker".to_owned(),
            text: "marker".to_owned(),
            html: None,
        },
    )
    .await
    .unwrap();
    wait_until(smtp, 30, |got| {
        got.iter().any(|m| recipient(m) == "marker@example.com")
    })
    .await;
    // Give a racing duplicate one more poll interval to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = smtp.messages();
    assert_eq!(
        got.len(),
        expected + 1,
        "each message once, plus the marker"
    );
    got.into_iter()
        .filter(|m| recipient(m) != "marker@example.com")
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::test]
async fn requests_while_smtp_is_down_answer_as_usual_and_each_mail_arrives_once_when_it_is_back() {
    let port = free_port();
    let app = app_with_smtp(port).await;

    // Accounts made while the relay is up: their latencies are "normal".
    let users: Vec<String> = (0..20).map(|_| email()).collect();
    let first = Smtp::start(port).await;
    let mut normal = Vec::new();
    for u in &users {
        let t = Instant::now();
        let body = register_body(&app, u).await;
        normal.push(t.elapsed());
        assert!(body["errors"].is_null(), "{body}");
    }
    first.wait_for(users.len()).await;
    drop(first); // the relay goes down: nothing listens on the port now

    let newcomers: Vec<String> = (0..5).map(|_| email()).collect();
    let mut down = Vec::new();
    for u in &users {
        let t = Instant::now();
        let body = request_reset(&app, u).await;
        down.push(("requestPasswordReset", t.elapsed()));
        assert!(body["errors"].is_null(), "{body}");
        assert_eq!(body["data"]["requestPasswordReset"], true);
    }
    for u in &newcomers {
        let t = Instant::now();
        let body = register_body(&app, u).await;
        down.push(("register", t.elapsed()));
        assert!(
            body["errors"].is_null(),
            "register answers as usual: {body}"
        );
        assert_eq!(body["data"]["register"]["user"]["email"], u.as_str());
    }
    println!(
        "register with SMTP up (ms): {}",
        normal.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" ")
    );
    for kind in ["requestPasswordReset", "register"] {
        println!(
            "{kind} with SMTP down (ms): {}",
            down.iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, d)| ms(*d))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    // The mail waits in the outbox: the five verifications (their
    // recipients are in clear there) and one row per reset request
    // (its address sealed inside, or already resolved into a reset mail).
    let waiting = wait_for_outbox(&app, |rows| {
        let unsent: Vec<_> = rows.iter().filter(|r| r.sent_at.is_none()).collect();
        let verifications = unsent
            .iter()
            .filter(|r| newcomers.contains(&r.recipient.to_ascii_lowercase()))
            .count();
        verifications == 5 && unsent.len() >= 25
    })
    .await;
    assert!(
        waiting.iter().all(|r| r.failed_at.is_none()),
        "nothing is given up while the relay is down"
    );

    // The relay is back on the same port; time passes the backoff.
    let smtp = Smtp::start(port).await;
    app.clock.advance(Duration::from_secs(300));
    mail::wake(&app.state);
    smtp.wait_for(25).await;
    let got = settle(&app, &smtp, 25).await;
    let map = by_recipient(&got);
    for u in users.iter().chain(&newcomers) {
        let mine = map.get(u.as_str()).map_or(0, Vec::len);
        assert_eq!(mine, 1, "{u} gets exactly one message, got {mine}");
    }
    for u in &users {
        let m = map[u.as_str()][0];
        assert!(
            link_token(m, "reset-password").is_some(),
            "a reset mail: {m}"
        );
    }
    for u in &newcomers {
        let m = map[u.as_str()][0];
        assert!(
            link_token(m, "verify-email").is_some(),
            "a verification: {m}"
        );
    }

    // A delivered link works: the message was the real thing.
    let token = link_token(map[users[0].as_str()][0], "reset-password").unwrap();
    let done = app
        .gql(
            None,
            RESET_PASSWORD,
            json!({ "i": { "token": token }, "p": NEW_PASSWORD }),
        )
        .await;
    assert_eq!(done["data"]["resetPassword"], true, "{done}");
    let login = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "email": users[0], "password": NEW_PASSWORD } }),
        )
        .await;
    assert!(login["errors"].is_null(), "{login}");
}

/// Waits (up to 30 s) until the outbox rows satisfy `check`; returns them.
async fn wait_for_outbox(
    app: &TestApp,
    check: impl Fn(&[mail_outbox::Model]) -> bool,
) -> Vec<mail_outbox::Model> {
    for _ in 0..600 {
        let rows = mail_outbox::Entity::find()
            .all(app.state.db.write())
            .await
            .unwrap();
        if check(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = mail_outbox::Entity::find()
        .all(app.state.db.write())
        .await
        .unwrap();
    panic!(
        "the outbox never reached the expected state: {:?}",
        rows.iter()
            .map(|r| (&r.kind, r.sent_at.is_some(), r.attempts))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_each_flow_mail_once() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let a = app_with_smtp(port).await;
    let b = a.sibling().await;
    let apps = [&a, &b];
    let users: Vec<String> = (0..15).map(|_| email()).collect();
    // 30 flow requests, alternating between the instances: 15 `register`
    // (a verification each), then 15 `requestPasswordReset` (a reset each),
    // each on the other instance than the account's registration.
    for (i, u) in users.iter().enumerate() {
        let body = register_body(apps[i % 2], u).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    for (i, u) in users.iter().enumerate() {
        let body = request_reset(apps[(i + 1) % 2], u).await;
        assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
    }
    mail::wake(&a.state);
    mail::wake(&b.state);
    smtp.wait_for(30).await;
    let got = settle(&b, &smtp, 30).await;
    let map = by_recipient(&got);
    for u in &users {
        let mine = &map[u.as_str()];
        assert_eq!(mine.len(), 2, "{u}: one verification and one reset");
        assert_eq!(
            mine.iter()
                .filter(|m| link_token(m, "verify-email").is_some())
                .count(),
            1,
            "{u}"
        );
        assert_eq!(
            mine.iter()
                .filter(|m| link_token(m, "reset-password").is_some())
                .count(),
            1,
            "{u}"
        );
    }
}
