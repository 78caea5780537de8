//! Mail templates (issue #20, item 2) over real components: a server with
//! a `WARDEN_MAIL_TEMPLATES` override directory composes a message, the
//! outbox sender delivers it to a real SMTP server (Debian's
//! `python3-aiosmtpd`), and the test parses what arrived as MIME.

use std::path::Path;

use sea_orm::EntityTrait;
use secrecy::SecretString;
use tempfile::TempDir;
use warden::{
    clock::Clock,
    config::Config,
    services::mail::{self, compose, MailKind, MailValues},
    startup::App,
};

use serde_json::json;

use crate::{
    helpers::{spawn_app_with, test_database, TestApp, PASSWORD},
    smtp::{free_port, Smtp},
};

const TOKEN: &str = "q1w2e3r4t5y6u7i8o9p0_-AbCdEfGhIjKlMnOpQrStU";

fn overrides(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write template");
    }
    dir
}

async fn app(port: u16, templates: &Path, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let templates = templates.to_owned();
    spawn_app_with(move |c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
        c.mail_from = "no-reply@warden.test".to_owned();
        c.app_url = Some("https://app.example.com/account".to_owned());
        c.mail_templates = Some(templates);
        tweak(c);
    })
    .await
}

fn values(username: &str) -> MailValues {
    MailValues {
        token: Some(TOKEN.to_owned()),
        code: Some("582049".to_owned()),
        username: Some(username.to_owned()),
        new_email: None,
        valid_for: Some("30 minutes".to_owned()),
    }
}

#[tokio::test]
async fn a_mail_from_an_override_directory_arrives_as_text_and_html_alternatives() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let dir = overrides(&[(
        "password-reset.subject",
        "{{ product }}: choose a new password, {{ username }}\n",
    )]);
    let app = app(port, dir.path(), |c| {
        c.product_name = "Acme Cloud".to_owned()
    })
    .await;
    let mail = compose(
        &app.state,
        MailKind::PasswordReset,
        "alice@example.com",
        &values("<b>ada</b>"),
    )
    .unwrap();
    let id = mail::enqueue_now(&app.state, mail).await.unwrap();

    let got = smtp.wait_for(1).await;
    let parsed = mailparse::parse_mail(got[0].as_bytes()).unwrap();
    let headers = &parsed.headers;
    use mailparse::MailHeaderMap;
    assert_eq!(
        headers.get_first_value("Subject").as_deref(),
        Some("Acme Cloud: choose a new password, <b>ada</b>"),
        "the override's subject, the value raw (a header is not HTML)"
    );
    let message_id = headers.get_first_value("Message-ID").expect("Message-ID");
    let row = entity::mail_outbox::Entity::find_by_id(id)
        .one(app.state.db.write())
        .await
        .unwrap()
        .expect("outbox row");
    assert_eq!(message_id, format!("<{}>", row.message_id));
    let date = headers.get_first_value("Date").expect("Date");
    let sent_at = mailparse::dateparse(&date).expect("an RFC 5322 date");
    assert!(
        (sent_at - app.clock.now().timestamp()).abs() < 3600,
        "{date}"
    );
    assert!(
        headers
            .get_first_value("From")
            .is_some_and(|f| f.contains("Acme Cloud")),
        "{got:?}"
    );

    assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
    assert_eq!(parsed.subparts.len(), 2);
    let (text, html) = (&parsed.subparts[0], &parsed.subparts[1]);
    assert_eq!(text.ctype.mimetype, "text/plain");
    assert_eq!(html.ctype.mimetype, "text/html");
    let (text, html) = (text.get_body().unwrap(), html.get_body().unwrap());

    let link = format!("https://app.example.com/account/reset-password?token={TOKEN}");
    assert!(text.contains(&link), "{text}");
    assert!(
        text.contains("582049") && text.contains("30 minutes"),
        "{text}"
    );
    assert!(text.contains("Hello <b>ada</b>,"), "text is plain: {text}");
    assert!(text.contains("Not you?"), "{text}");

    let shown = html.replace("&#x2f;", "/");
    assert!(shown.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(shown.contains(&format!(">{link}</a>")), "{html}");
    assert!(html.contains("582049"), "{html}");
    assert!(
        html.contains("Hello &lt;b&gt;ada&lt;&#x2f;b&gt;,"),
        "{html}"
    );
    assert!(!html.contains("<b>ada"), "{html}");
    assert!(!html.contains("<style") && !html.contains("<img"), "{html}");
}

#[tokio::test]
async fn line_breaks_in_a_username_add_no_header_or_recipient() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let dir = overrides(&[(
        "verify-email.subject",
        "{{ username }} - verify your {{ product }} email",
    )]);
    let app = app(port, dir.path(), |_| {}).await;
    let mail = compose(
        &app.state,
        MailKind::VerifyEmail,
        "alice@example.com",
        &values("ada\r\nX-Injected: yes\r\n\r\nforged body"),
    )
    .unwrap();
    mail::enqueue_now(&app.state, mail).await.unwrap();

    let got = smtp.wait_for(1).await;
    let parsed = mailparse::parse_mail(got[0].as_bytes()).unwrap();
    for header in &parsed.headers {
        let name = header.get_key().to_ascii_lowercase();
        assert!(
            !["bcc", "x-injected"].contains(&name.as_str()),
            "injected header {name}: {}",
            got[0]
        );
    }
    use mailparse::MailHeaderMap;
    assert_eq!(
        parsed.headers.get_all_values("X-RcptTo"),
        vec!["alice@example.com".to_owned()],
        "one recipient"
    );
    assert_eq!(
        parsed.headers.get_first_value("Subject").as_deref(),
        Some("ada X-Injected: yes forged body - verify your Warden email")
    );
    assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
}

/// Builds a server the way `main` does and returns why it refused to start.
async fn refusal(templates: &Path) -> String {
    refusal_with(|c| c.mail_templates = Some(templates.to_owned())).await
}

async fn refusal_with(tweak: impl FnOnce(&mut Config)) -> String {
    let db = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults().expect("defaults");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.database_url = test_database(&db).await.into();
    tweak(&mut config);
    match App::build(config, Clock::system()).await {
        Ok(_) => panic!("the server started with bad templates"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_templates_stop_start_up_with_one_line_naming_the_file() {
    let unknown = overrides(&[("password-reset.htm", "<p>hi</p>")]);
    let broken = overrides(&[("email-change.html", "{% extends \"layout.html\" %}{% block")]);
    let undefined = overrides(&[("password-changed.txt", "Hello {{ user_name }}")]);
    for (dir, file) in [
        (&unknown, "password-reset.htm"),
        (&broken, "email-change.html"),
        (&undefined, "password-changed.txt"),
    ] {
        let why = refusal(dir.path()).await;
        let path = dir.path().join(file).display().to_string();
        assert!(why.contains(&path), "{file}: {why}");
        assert!(why.contains("WARDEN_MAIL_TEMPLATES"), "{why}");
        assert!(!why.contains('\n'), "one line: {why}");
    }
    let gone = tempfile::tempdir().expect("temp dir");
    let why = refusal(&gone.path().join("missing")).await;
    assert!(
        why.contains("missing") && why.contains("WARDEN_MAIL_TEMPLATES"),
        "{why}"
    );
}

#[tokio::test]
async fn a_line_break_in_the_product_name_stops_start_up() {
    // It would go into every `From` and subject (lettre cannot even format
    // such a display name).
    let why = refusal_with(|c| c.product_name = "Acme\r\nBcc: evil@example.com".to_owned()).await;
    assert!(why.starts_with("WARDEN_PRODUCT_NAME"), "{why}");
    assert!(!why.contains('\n'), "{why}");
}

/// The decoded text of every `href="…"` in `html`.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|h| {
            h.replace("&#x2f;", "/")
                .replace("&#x27;", "'")
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

#[tokio::test]
async fn the_registration_mail_button_verifies_the_address_and_ignores_a_spoofed_host() {
    let port = free_port();
    let smtp = Smtp::start(port).await;
    let dir = overrides(&[]);
    let app = app(port, dir.path(), |c| c.product_name = "Acme".to_owned()).await;
    let email = crate::helpers::email();
    let body = app
        .gql_with_headers(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": email, "password": PASSWORD, "username": "<i>ada</i>" } }),
            &[
                ("Host", "evil.example".to_owned()),
                ("X-Forwarded-Host", "evil.example".to_owned()),
            ],
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let access = body["data"]["register"]["accessToken"]
        .as_str()
        .expect("an access token")
        .to_owned();

    let got = smtp.wait_for(1).await;
    let parsed = mailparse::parse_mail(got[0].as_bytes()).unwrap();
    use mailparse::MailHeaderMap;
    assert_eq!(
        parsed.headers.get_first_value("Subject").as_deref(),
        Some("Verify your email address for Acme")
    );
    let text = parsed.subparts[0].get_body().unwrap();
    let html = parsed.subparts[1].get_body().unwrap();
    assert!(
        html.contains("Hello &lt;i&gt;ada&lt;&#x2f;i&gt;,"),
        "{html}"
    );
    assert!(text.contains("Hello <i>ada</i>,"), "{text}");
    let links = hrefs(&html);
    assert_eq!(links.len(), 2, "the button and the visible link: {links:?}");
    assert_eq!(links[0], links[1]);
    let link = &links[0];
    assert!(
        link.starts_with("https://app.example.com/account/verify-email?token="),
        "the link comes from WARDEN_APP_URL only: {link}"
    );
    assert!(!text.contains("evil.example") && !html.contains("evil.example"));
    assert!(
        text.contains(link.as_str()),
        "the same link in the text part"
    );
    let code = text
        .split("Or enter this code: ")
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .expect("a code in the text");
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert!(html.contains(code), "the same code in the HTML part");

    let token = link.split("token=").nth(1).expect("a token");
    let body = app
        .gql(
            None,
            "mutation($i: EmailTokenInput!) { verifyEmail(input: $i) }",
            json!({ "i": { "token": token } }),
        )
        .await;
    assert_eq!(body["data"]["verifyEmail"], json!(true), "{body}");
    let me = app
        .gql(Some(&access), "{ me { emailVerified } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["emailVerified"], json!(true), "{me}");
}
