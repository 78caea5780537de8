//! Delivery of the account-lifecycle mail through the real flows (issue
//! #20, "Delivery"): `register` and `requestPasswordReset` over HTTP, a real
//! SMTP server (`crate::smtp`, Debian's `python3-aiosmtpd`), the real
//! outbox and sender. SMTP down while requests come in, the real binary
//! killed with SIGKILL between commit and send, two instances on one
//! database: each message arrives, and arrives once.

use std::{
    collections::{HashMap, HashSet},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use entity::mail_outbox;
use sea_orm::{sea_query::Expr, ColumnTrait, Database, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{json, Value};
use warden::services::mail::{self, Mail};

use crate::{
    helpers::{code, email, spawn_app_with, test_database, TestApp, PASSWORD},
    smtp::{free_port, header, Smtp},
};

const RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
const RESET_PASSWORD: &str =
    "mutation($i: EmailTokenInput!, $p: String!) { resetPassword(input: $i, newPassword: $p) }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken user { email } } }";
const NEW_PASSWORD: &str = "a brand new passphrase for delivery";

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

/// The envelope recipient aiosmtpd recorded.
fn recipient(message: &str) -> String {
    header(message, "X-RcptTo")
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The message's text with every MIME part's body decoded (base64 and
/// quoted-printable), so a link can be found whatever encoding was chosen.
fn readable(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let mut out = message.clone();
    let mut encoding = None::<String>;
    let mut in_head = true;
    let mut body = String::new();
    let mut flush = |encoding: &Option<String>, body: &mut String, out: &mut String| {
        match encoding.as_deref() {
            Some("base64") => {
                let joined: String = body.split_whitespace().collect();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(joined) {
                    out.push('\n');
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            Some("quoted-printable") => {
                out.push('\n');
                out.push_str(&quoted_printable(body));
            }
            _ => {}
        }
        body.clear();
    };
    for line in message.lines() {
        if line.starts_with("--") {
            flush(&encoding, &mut body, &mut out);
            encoding = None;
            in_head = true;
            continue;
        }
        if in_head {
            if line.is_empty() {
                in_head = false;
            } else if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("Content-Transfer-Encoding") {
                    encoding = Some(value.trim().to_ascii_lowercase());
                }
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    flush(&encoding, &mut body, &mut out);
    out
}

fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of the first `/{path}?token=` link in `message`.
fn link_token(message: &str, path: &str) -> Option<String> {
    let text = readable(message);
    let needle = format!("/{path}?token=");
    let start = text.find(&needle)? + needle.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%'))
        .collect();
    (!token.is_empty()).then_some(token)
}

/// Messages per recipient, and every `Message-ID` distinct.
fn by_recipient(messages: &[String]) -> HashMap<String, Vec<&String>> {
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
async fn wait_until(smtp: &Smtp, secs: u64, check: impl Fn(&[String]) -> bool) -> Vec<String> {
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
    let got = wait_until(smtp, 30, |got| {
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
    assert!(
        unsent.len() >= 2,
        "the verification and the reset wait in the outbox: {}",
        unsent.len()
    );
    mail_outbox::Entity::update_many()
        .col_expr(
            mail_outbox::Column::NextAttemptAt,
            Expr::value(chrono::Utc::now() - chrono::TimeDelta::seconds(1)),
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
