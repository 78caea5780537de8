//! Durable outbound mail (issue #20, item 1), over real components: a real
//! SMTP server (Debian's `python3-aiosmtpd`, its Maildir handler) on a
//! loopback port, the real outbox tables, the real sender task. No GraphQL
//! operation sends mail yet, so messages enter through
//! `warden::services::mail::{enqueue, enqueue_now}` on the test app's state.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use entity::{audit_event, mail_outbox};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
};
use secrecy::SecretString;
use uuid::Uuid;
use warden::services::mail::{self, Mail};

use crate::{
    helpers::{spawn_app_with, TestApp},
    smtp::{free_port, header, Smtp},
};

async fn app_with_smtp(port: u16) -> TestApp {
    spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
        c.mail_from = "Warden Test <no-reply@warden.test>".to_owned();
    })
    .await
}

fn mail(to: &str, text: &str) -> Mail {
    Mail {
        kind: "test",
        to: to.to_owned(),
        subject: "Hello from the outbox".to_owned(),
        text: text.to_owned(),
        html: None,
    }
}

async fn row(app: &TestApp, id: Uuid) -> mail_outbox::Model {
    mail_outbox::Entity::find_by_id(id)
        .one(app.state.db.write())
        .await
        .unwrap()
        .expect("outbox row")
}

/// Waits (up to 30 s) until `check` holds for row `id`.
async fn wait_row(
    app: &TestApp,
    id: Uuid,
    check: impl Fn(&mail_outbox::Model) -> bool,
) -> mail_outbox::Model {
    for _ in 0..600 {
        let r = row(app, id).await;
        if check(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "outbox row {id} never reached the expected state: {:?}",
        row(app, id).await
    );
}

/// The metrics once they contain `needle` (the sender records a row's
/// outcome, then counts it: a test that saw the row may be a moment early).
async fn wait_metric(app: &TestApp, needle: &str) -> String {
    for _ in 0..200 {
        let metrics = app.state.metrics.render();
        if metrics.contains(needle) {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "metrics never showed {needle}:\n{}",
        app.state.metrics.render()
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_committed_message_arrives_once_with_message_id_and_date_then_is_purged() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let app = app_with_smtp(port).await;
    let id = mail::enqueue_now(&app.state, mail("alice@example.com", "first message"))
        .await
        .unwrap();
    let got = smtp.wait_for(1).await;
    let sent = wait_row(&app, id, |r| r.sent_at.is_some()).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        header(m, "Message-ID"),
        Some(format!("<{}>", sent.message_id).as_str())
    );
    assert!(header(m, "Date").is_some_and(|d| !d.is_empty()), "{m}");
    assert_eq!(header(m, "X-RcptTo"), Some("alice@example.com"));
    assert_eq!(header(m, "X-MailFrom"), Some("no-reply@warden.test"));
    assert_eq!(header(m, "Subject"), Some("Hello from the outbox"));
    assert!(m.contains("first message"), "{m}");
    assert_eq!(sent.sealed, None, "the body is erased once sent");
    assert_eq!(sent.attempts, 1);
    wait_metric(
        &app,
        r#"warden_mail_sent_total{kind="test",result="sent"} 1"#,
    )
    .await;

    // Another pass sends nothing again.
    mail::wake(&app.state);
    let marker = mail::enqueue_now(&app.state, mail("bob@example.com", "marker"))
        .await
        .unwrap();
    wait_row(&app, marker, |r| r.sent_at.is_some()).await;
    assert_eq!(smtp.wait_for(2).await.len(), 2);

    // Cleanup keeps sent rows for the retention, then purges them.
    let now = app.clock.now();
    let kept =
        warden::cleanup::run_once(&app.state.db, &app.config, now + chrono::TimeDelta::days(6))
            .await
            .unwrap();
    assert_eq!(kept.mail_outbox, 0);
    let purged =
        warden::cleanup::run_once(&app.state.db, &app.config, now + chrono::TimeDelta::days(8))
            .await
            .unwrap();
    assert_eq!(purged.mail_outbox, 2);
    assert_eq!(
        mail_outbox::Entity::find()
            .count(app.state.db.read())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_rolled_back_transaction_sends_nothing() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let app = app_with_smtp(port).await;
    let txn = app.state.db.begin().await.unwrap();
    mail::enqueue(&txn, &app.state, mail("ghost@example.com", "never sent"))
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    mail::wake(&app.state);
    let marker = mail::enqueue_now(&app.state, mail("bob@example.com", "marker"))
        .await
        .unwrap();
    wait_row(&app, marker, |r| r.sent_at.is_some()).await;
    let got = smtp.messages();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("marker"));
    assert_eq!(
        mail_outbox::Entity::find()
            .count(app.state.db.read())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn mail_waits_sealed_while_smtp_is_down_and_goes_once_it_is_back() {
    let port = free_port();
    let app = app_with_smtp(port).await;
    let token = format!("tok-{}", Uuid::new_v4().simple());
    let id = mail::enqueue_now(
        &app.state,
        mail("carol@example.com", &format!("your token is {token}")),
    )
    .await
    .unwrap();
    // The first attempt fails (nothing listens); the row waits.
    let waiting = wait_row(&app, id, |r| r.attempts == 1).await;
    assert_eq!(waiting.sent_at, None);
    assert_eq!(waiting.last_error.as_deref(), Some("connection"));
    assert!(waiting.next_attempt_at > app.clock.now());
    // At rest the token exists only sealed: no column holds it.
    let sealed = waiting.sealed.clone().expect("sealed body while unsent");
    assert!(!contains(&sealed, token.as_bytes()));
    for text in [&waiting.kind, &waiting.recipient, &waiting.message_id] {
        assert!(!text.contains(&token));
    }
    let metrics = wait_metric(
        &app,
        r#"warden_mail_sent_total{kind="test",result="retry"} 1"#,
    )
    .await;
    assert!(metrics.contains("warden_mail_outbox_depth 1"), "{metrics}");

    let smtp = Smtp::start(port).await;
    app.clock.advance(Duration::from_secs(3600));
    mail::wake(&app.state);
    let got = smtp.wait_for(1).await;
    let sent = wait_row(&app, id, |r| r.sent_at.is_some()).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains(&token),
        "the delivered message carries the token"
    );
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.sealed, None, "no secret left once sent");
}

#[tokio::test]
async fn mail_committed_before_a_crash_is_delivered_after_restart() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let mut app = app_with_smtp(port).await;
    // The server stops (its sender with it) right after these commits.
    app.stop().await;
    let first = mail::enqueue_now(&app.state, mail("dave@example.com", "after restart"))
        .await
        .unwrap();
    // This one was claimed by a sender that died mid-send.
    let second = mail::enqueue_now(&app.state, mail("erin@example.com", "after the lease"))
        .await
        .unwrap();
    let mut claimed = row(&app, second).await.into_active_model();
    claimed.claim_owner = Set(Some(Uuid::new_v4()));
    claimed.claim_until = Set(Some(app.clock.now() + mail::CLAIM_LEASE));
    mail_outbox::Entity::update(claimed)
        .exec(app.state.db.write())
        .await
        .unwrap();
    assert!(smtp.messages().is_empty());

    let app = app.restart().await;
    let got = smtp.wait_for(1).await;
    assert!(got[0].contains("after restart"));
    wait_row(&app, first, |r| r.sent_at.is_some()).await;
    assert_eq!(
        row(&app, second).await.sent_at,
        None,
        "held by the dead claim"
    );

    app.clock.advance(Duration::from_secs(180));
    mail::wake(&app.state);
    wait_row(&app, second, |r| r.sent_at.is_some()).await;
    let got = smtp.messages();
    assert_eq!(got.len(), 2, "each delivered once");
    assert!(got.iter().any(|m| m.contains("after the lease")));
}

#[tokio::test]
async fn two_instances_deliver_each_message_exactly_once() {
    const N: usize = 30;
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let a = app_with_smtp(port).await;
    let b = a.sibling().await;
    let mut ids = Vec::new();
    for i in 0..N {
        let txn = a.state.db.begin().await.unwrap();
        ids.push(
            mail::enqueue(
                &txn,
                &a.state,
                mail(&format!("u{i}@example.com"), &format!("message {i}")),
            )
            .await
            .unwrap(),
        );
        txn.commit().await.unwrap();
    }
    // Both senders race for the same rows.
    mail::wake(&a.state);
    mail::wake(&b.state);
    smtp.wait_for(N).await;
    for &id in &ids {
        wait_row(&a, id, |r| r.sent_at.is_some()).await;
    }
    // One more pass each finds nothing to send.
    mail::wake(&a.state);
    mail::wake(&b.state);
    let marker = mail::enqueue_now(&b.state, mail("last@example.com", "marker"))
        .await
        .unwrap();
    wait_row(&a, marker, |r| r.sent_at.is_some()).await;
    let got = smtp.wait_for(N + 1).await;
    assert_eq!(got.len(), N + 1);
    let distinct: HashSet<&str> = got.iter().filter_map(|m| header(m, "Message-ID")).collect();
    assert_eq!(distinct.len(), N + 1, "no message was sent twice");
}

#[tokio::test]
async fn a_message_is_given_up_after_its_last_attempt() {
    let port = free_port();
    let app = app_with_smtp(port).await;
    let id = mail::enqueue_now(&app.state, mail("frank@example.com", "never delivered"))
        .await
        .unwrap();
    for attempt in 1..=mail::MAX_ATTEMPTS {
        wait_row(&app, id, |r| r.attempts == attempt).await;
        app.clock.advance(Duration::from_secs(3600));
        mail::wake(&app.state);
    }
    let failed = wait_row(&app, id, |r| r.failed_at.is_some()).await;
    assert_eq!(failed.sent_at, None);
    assert_eq!(failed.sealed, None, "a given-up body is erased too");
    let audits = audit_event::Entity::find()
        .filter(audit_event::Column::Kind.eq("MAIL_FAILED"))
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(audits.len(), 1);
    let metrics = wait_metric(
        &app,
        r#"warden_mail_sent_total{kind="test",result="failed"} 1"#,
    )
    .await;
    assert!(metrics.contains("warden_mail_outbox_depth 0"), "{metrics}");
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    files
}

#[tokio::test]
async fn without_smtp_each_message_is_an_eml_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mail");
    let app = spawn_app_with(|c| {
        c.mail_dir = dir.clone();
        c.product_name = "Acme".to_owned();
    })
    .await;
    let first = mail::enqueue_now(&app.state, mail("gina@example.com", "file one"))
        .await
        .unwrap();
    wait_row(&app, first, |r| r.sent_at.is_some()).await;
    app.clock.advance(Duration::from_secs(1));
    let second = mail::enqueue_now(
        &app.state,
        Mail {
            html: Some("<p>file two</p>".to_owned()),
            ..mail("hank@example.com", "file two")
        },
    )
    .await
    .unwrap();
    let sent = wait_row(&app, second, |r| r.sent_at.is_some()).await;
    let files = eml_files(&dir);
    assert_eq!(files.len(), 2, "{files:?}: no temporary file left");
    assert!(files
        .iter()
        .all(|f| f.extension().is_some_and(|e| e == "eml")));
    // Names sort by time: the second message's file is last.
    let last = std::fs::read_to_string(&files[1]).unwrap();
    let first_text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(first_text.contains("file one"));
    // RFC 5322: CRLF lines, headers, a blank line, the body.
    let (head, body) = last.split_once("\r\n\r\n").expect("header/body separator");
    let unfolded = head.replace("\r\n", "\n");
    assert_eq!(
        header(&unfolded, "Message-ID"),
        Some(format!("<{}>", sent.message_id).as_str())
    );
    assert!(header(&unfolded, "Date").is_some());
    assert_eq!(header(&unfolded, "To"), Some("hank@example.com"));
    assert_eq!(
        header(&unfolded, "From"),
        Some("Acme <no-reply@localhost>"),
        "a bare WARDEN_MAIL_FROM is shown with WARDEN_PRODUCT_NAME"
    );
    assert!(
        header(&unfolded, "Content-Type").is_some_and(|v| v.starts_with("multipart/alternative"))
    );
    assert!(body.contains("file two") && body.contains("<p>file two</p>"));
}

/// This machine's first non-loopback IPv4 address, if it has one.
fn non_loopback_ipv4() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
}

#[tokio::test]
async fn plain_smtp_is_refused_off_loopback() {
    let Some(host) = non_loopback_ipv4() else {
        eprintln!("skipped: no non-loopback IPv4 address on this machine");
        return;
    };
    let port = free_port();
    // A relay that offers no STARTTLS, on an address that is not loopback.
    let smtp = Smtp::start_on(&host, port).await;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://{host}:{port}")));
    })
    .await;
    let id = mail::enqueue_now(&app.state, mail("ivan@example.com", "must not go in clear"))
        .await
        .unwrap();
    let refused = wait_row(&app, id, |r| r.attempts == 1).await;
    assert_eq!(refused.sent_at, None);
    // lettre refuses before MAIL FROM: "STARTTLS is not supported".
    assert_eq!(refused.last_error.as_deref(), Some("client"));
    assert!(refused.sealed.is_some(), "kept for a retry");
    assert!(smtp.messages().is_empty(), "nothing was sent without TLS");
}

/// A private CA and a certificate it signed for `names` (host names or
/// IPs), as PEM files in `dir`: (CA, certificate, key).
fn private_ca(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Warden test relay CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("relay key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .expect("relay params")
        .signed_by(&key, &issuer)
        .expect("relay certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("relay.pem"),
        dir.join("relay-key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn smtps_delivers_over_tls_to_a_relay_whose_ca_is_configured_and_never_otherwise() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(certs.path(), &["localhost"]);
    let port = free_port();
    let smtp = Smtp::start_with(
        "127.0.0.1",
        port,
        &[
            "--smtpscert".as_ref(),
            cert.as_os_str(),
            "--smtpskey".as_ref(),
            key.as_os_str(),
        ],
    )
    .await;
    let url = format!("smtps://localhost:{port}");

    // The relay's CA is not a public root: without it, nothing is sent.
    let untrusting = spawn_app_with(|c| c.smtp_url = Some(SecretString::from(url.clone()))).await;
    let id = mail::enqueue_now(
        &untrusting.state,
        mail("judy@example.com", "not to an unknown certificate"),
    )
    .await
    .unwrap();
    let refused = wait_row(&untrusting, id, |r| r.attempts == 1).await;
    assert_eq!(refused.sent_at, None);
    // lettre reports a failed implicit-TLS handshake as a connection error.
    assert!(
        matches!(refused.last_error.as_deref(), Some("tls" | "connection")),
        "{refused:?}"
    );
    assert!(refused.sealed.is_some(), "kept for a retry");

    let trusting = spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(url.clone()));
        c.smtp_ca_file = Some(ca.clone());
    })
    .await;
    let id = mail::enqueue_now(
        &trusting.state,
        mail("judy@example.com", "over implicit TLS"),
    )
    .await
    .unwrap();
    wait_row(&trusting, id, |r| r.sent_at.is_some()).await;
    let got = smtp.wait_for(1).await;
    assert_eq!(got.len(), 1, "only the trusted sender delivered");
    assert!(got[0].contains("over implicit TLS"));
}

#[tokio::test]
async fn starttls_to_a_relay_off_loopback_delivers_encrypted() {
    let Some(host) = non_loopback_ipv4() else {
        eprintln!("skipped: no non-loopback IPv4 address on this machine");
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(certs.path(), &[host.as_str()]);
    let port = free_port();
    // aiosmtpd refuses MAIL FROM before STARTTLS (require_starttls), so a
    // delivery proves the session was upgraded.
    let smtp = Smtp::start_with(
        &host,
        port,
        &[
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ],
    )
    .await;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://{host}:{port}")));
        c.smtp_ca_file = Some(ca.clone());
    })
    .await;
    let id = mail::enqueue_now(&app.state, mail("ken@example.com", "after STARTTLS"))
        .await
        .unwrap();
    wait_row(&app, id, |r| r.sent_at.is_some()).await;
    let got = smtp.wait_for(1).await;
    assert!(got[0].contains("after STARTTLS"));
}

#[tokio::test]
async fn a_smtp_ca_file_that_is_not_a_certificate_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let mut config = warden::config::Config::defaults().unwrap();
    config.smtp_url = Some(SecretString::from("smtps://mail.example.com".to_owned()));
    config.smtp_ca_file = Some(bad);
    let err = mail::Transport::from_config(&config).unwrap_err();
    assert!(err.starts_with("WARDEN_SMTP_CA_FILE:"), "{err}");
    config.smtp_ca_file = Some(dir.path().join("missing.pem"));
    let err = mail::Transport::from_config(&config).unwrap_err();
    assert!(err.contains("cannot read"), "{err}");
}
