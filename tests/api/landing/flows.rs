//! The landing pages driving the real flows: mail received by a real SMTP
//! server, its link opened over HTTP and in headless Chromium.

use std::time::Duration;

use base64::Engine;
use reqwest::{header, Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;

use super::{assert_security_headers, post_form, UNKNOWN};
use crate::{
    helpers::{captured_logs, email, spawn_app_with, TestApp, PASSWORD},
    smtp::{free_port, Smtp},
};

/// A server whose public URL is its real address (so mailed links open it)
/// and whose mail goes to a real SMTP server on loopback.
async fn app_with_mail(tweak: impl FnOnce(&mut warden::config::Config)) -> (TestApp, Smtp) {
    let smtp_port = free_port();
    let smtp = Smtp::start(smtp_port).await;
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.listen = format!("127.0.0.1:{port}").parse().expect("addr");
        c.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{smtp_port}")));
        c.mail_from = "Acme <no-reply@acme.test>".to_owned();
        c.product_name = "Acme".to_owned();
        tweak(c);
    })
    .await;
    assert_eq!(app.state.config.public_url(), app.address);
    (app, smtp)
}

/// The text of every part of a raw message, quoted-printable and base64
/// undone.
fn decoded(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let mut out = String::new();
    // Quoted-printable (harmless on the rest): soft breaks, then `=XX`.
    let soft = message.replace("=\n", "");
    let bytes = soft.as_bytes();
    let mut qp = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                qp.push(b);
                i += 3;
            }
            (b, _) => {
                qp.push(b);
                i += 1;
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&qp));
    // Base64 parts: the block after the blank line that ends their headers.
    let lower = message.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("content-transfer-encoding: base64") {
        let start = from + at;
        let Some(blank) = message[start..].find("\n\n") else {
            break;
        };
        let body: String = message[start + blank + 2..]
            .lines()
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("--"))
            .collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.trim()) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
        from = start + blank;
    }
    out
}

/// Every link to `path` (`/reset-password`) in the messages received so
/// far, one per message.
fn links(smtp: &Smtp, path: &str) -> Vec<String> {
    let marker = format!("{path}?token=");
    smtp.messages()
        .iter()
        .map(|m| decoded(m))
        .filter_map(|text| {
            let at = text.find(&marker)?;
            let start = text[..at].rfind("http")?;
            let token_at = at + marker.len();
            let end = text[token_at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .map_or(text.len(), |e| token_at + e);
            Some(text[start..end].to_owned())
        })
        .collect()
}

/// The first link to `path`, waiting (up to 30 s) for its mail.
async fn mailed_link(smtp: &Smtp, path: &str) -> String {
    for _ in 0..600 {
        if let Some(link) = links(smtp, path).into_iter().next() {
            return link;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail with a {path} link arrived");
}

fn token_of(link: &str) -> String {
    link.split_once("?token=").expect("a token").1.to_owned()
}

async fn open(app: &TestApp, method: Method, link: &str) -> reqwest::Response {
    app.client
        .request(method, link)
        .send()
        .await
        .expect("request")
}

async fn request_reset(app: &TestApp, address: &str) {
    let body = app
        .gql(
            None,
            "mutation($e: String!) { requestPasswordReset(email: $e) }",
            json!({ "e": address }),
        )
        .await;
    assert_eq!(body["data"]["requestPasswordReset"], true, "{body}");
}

async fn email_verified(app: &TestApp, access: &str) -> bool {
    let body = app
        .gql(Some(access), "{ me { emailVerified } }", json!({}))
        .await;
    body["data"]["me"]["emailVerified"]
        .as_bool()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test]
async fn get_and_head_of_a_mailed_link_consume_nothing() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    let session = app.register(&address).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let link = mailed_link(&smtp, "/verify-email").await;
    assert!(
        link.starts_with(&format!("{}/verify-email?token=", app.address)),
        "{link}"
    );
    let token = token_of(&link);
    for method in [Method::GET, Method::HEAD, Method::GET, Method::HEAD] {
        let response = open(&app, method.clone(), &link).await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        assert_security_headers(&response);
    }
    let html = open(&app, Method::GET, &link).await.text().await.unwrap();
    assert!(html.contains("Verify my email"), "{html}");
    assert!(
        html.contains(&format!("name=\"token\" value=\"{token}\"")),
        "{html}"
    );
    assert!(
        !email_verified(&app, &access).await,
        "a GET verifies nothing"
    );

    // The form's POST still works, and only then is the link spent.
    let response = post_form(
        &app,
        "/verify-email",
        &[("token", &token)],
        &[("origin", &app.address)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Your email address is verified."));
    assert!(email_verified(&app, &access).await);
    let again = open(&app, Method::GET, &link).await;
    assert_eq!(again.status(), StatusCode::GONE);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("already used or a newer email replaced it"));

    // A reset link opened by a scanner still works over GraphQL afterwards.
    request_reset(&app, &address).await;
    let reset = mailed_link(&smtp, "/reset-password").await;
    for method in [Method::GET, Method::HEAD] {
        assert_eq!(open(&app, method, &reset).await.status(), StatusCode::OK);
    }
    let body = app
        .gql(
            None,
            "mutation($i: EmailTokenInput!, $p: String!) { resetPassword(input: $i, newPassword: $p) }",
            json!({ "i": { "token": token_of(&reset) }, "p": "tide pool lantern quietly" }),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
}

#[tokio::test]
async fn each_token_state_renders_its_message() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    let session = app.register(&address).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let first = mailed_link(&smtp, "/verify-email").await;
    let live = open(&app, Method::GET, &first).await;
    assert_eq!(live.status(), StatusCode::OK);
    assert!(live
        .text()
        .await
        .unwrap()
        .contains("<form method=\"post\" action=\"verify-email\">"));

    // A newer mail supersedes the first link.
    let body = app
        .gql(
            Some(&access),
            "mutation { sendVerificationEmail }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["sendVerificationEmail"], true, "{body}");
    smtp.wait_for(2).await;
    let mut second = None;
    for _ in 0..600 {
        second = links(&smtp, "/verify-email")
            .into_iter()
            .find(|l| *l != first);
        if second.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = second.expect("a second verification link");
    let superseded = open(&app, Method::GET, &first).await;
    assert_eq!(superseded.status(), StatusCode::GONE);
    let html = superseded.text().await.unwrap();
    assert!(
        html.contains("This link was already used or a newer email replaced it."),
        "{html}"
    );
    assert!(!html.contains("<form"), "{html}");

    // Past its lifetime.
    assert_eq!(
        open(&app, Method::GET, &second).await.status(),
        StatusCode::OK
    );
    app.clock
        .advance(app.config.verify_token_ttl + Duration::from_secs(60));
    let expired = open(&app, Method::GET, &second).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    let html = expired.text().await.unwrap();
    assert!(html.contains("This link has expired."), "{html}");
    assert!(html.contains("ask for a new verification email"), "{html}");
    // And posted anyway: the same words, nothing verified.
    let posted = post_form(&app, "/verify-email", &[("token", &token_of(&second))], &[]).await;
    assert_eq!(posted.status(), StatusCode::GONE);
    assert!(posted
        .text()
        .await
        .unwrap()
        .contains("This link has expired."));

    // A token of another purpose is not valid here.
    request_reset(&app, &address).await;
    let reset = mailed_link(&smtp, "/reset-password").await;
    let elsewhere = format!("{}/verify-email?token={}", app.address, token_of(&reset));
    let wrong = open(&app, Method::GET, &elsewhere).await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("This link is not valid."));

    // Never issued.
    let unknown = open(
        &app,
        Method::GET,
        &format!("{}/verify-email?token={UNKNOWN}", app.address),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("This link is not valid."));
}

#[tokio::test]
async fn a_policy_error_rerenders_the_reset_form_and_spends_nothing() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    app.register(&address).await;
    request_reset(&app, &address).await;
    let link = mailed_link(&smtp, "/reset-password").await;
    let token = token_of(&link);
    let hidden = format!("name=\"token\" value=\"{token}\"");
    let own = [("origin", app.address.as_str())];

    let mismatch = post_form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("password", "tide pool lantern quietly"),
            ("confirm", "tide pool lantern"),
        ],
        &own,
    )
    .await;
    assert_eq!(mismatch.status(), StatusCode::OK);
    let html = mismatch.text().await.unwrap();
    assert!(
        html.contains("id=\"confirm-error\" role=\"alert\">The two passwords are not the same."),
        "{html}"
    );
    assert!(html.contains(&hidden), "the token is kept: {html}");

    for (weak, says) in [("password123", "too common"), ("short", "at least 8 bytes")] {
        let response = post_form(
            &app,
            "/reset-password",
            &[("token", &token), ("password", weak), ("confirm", weak)],
            &own,
        )
        .await;
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"password-error\""), "{html}");
        assert!(html.contains(says), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains(&hidden), "{html}");
    }

    let new_password = "tide pool lantern quietly";
    let done = post_form(
        &app,
        "/reset-password",
        &[
            ("token", &token),
            ("password", new_password),
            ("confirm", new_password),
        ],
        &own,
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.headers().get(header::SET_COOKIE).is_none(), "no login");
    let html = done.text().await.unwrap();
    assert!(
        html.contains("Your password was changed. You can now log in."),
        "{html}"
    );
    let login = app.login(&address, new_password).await;
    assert!(login["errors"].is_null(), "{login}");
    let old = app.login(&address, PASSWORD).await;
    assert_eq!(
        crate::helpers::code(&old),
        Some("INVALID_CREDENTIALS"),
        "{old}"
    );
}

#[tokio::test]
async fn an_email_change_is_confirmed_through_its_page() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    let session = app.register(&address).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let new_address = email();
    let body = app
        .gql(
            Some(&access),
            "mutation($e: String!, $p: String!) { requestEmailChange(newEmail: $e, currentPassword: $p) }",
            json!({ "e": new_address, "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["requestEmailChange"], true, "{body}");
    let link = mailed_link(&smtp, "/confirm-email").await;
    let html = open(&app, Method::GET, &link).await.text().await.unwrap();
    assert!(html.contains("Confirm my new email"), "{html}");
    let done = post_form(&app, "/confirm-email", &[("token", &token_of(&link))], &[]).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done
        .text()
        .await
        .unwrap()
        .contains("Your email address was changed."));
    let login = app.login(&new_address, PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");
}

#[tokio::test]
async fn a_rate_limited_post_says_when_to_try_again() {
    let app = spawn_app_with(|c| {
        c.rates.rate_email_token_ip = "2/min".parse().expect("quota");
    })
    .await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(post_form(&app, "/verify-email", &[("token", UNKNOWN)], &[]).await);
    }
    let response = last.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_security_headers(&response);
    let retry: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Too many attempts from your network. Try again in"),
        "{html}"
    );
    assert!(
        html.contains(&format!("value=\"{UNKNOWN}\"")),
        "the form is kept: {html}"
    );
}

#[tokio::test]
async fn mailed_links_work_in_chromium_and_login_takes_the_new_password() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    let session = app.register(&address).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();

    // Verification, through its page.
    let link = mailed_link(&smtp, "/verify-email").await;
    let Some(report) = crate::node::run("landing.mjs", &[&link], true).await else {
        return;
    };
    assert_browser_saw_a_clean_page(&report, "Verify your email");
    assert_eq!(report["result"]["heading"], "Email verified", "{report}");
    assert!(email_verified(&app, &access).await);

    // A reset, through its page: a common password first, then a good one.
    request_reset(&app, &address).await;
    let link = mailed_link(&smtp, "/reset-password").await;
    let new_password = "tide pool lantern quietly";
    let report = crate::node::run("landing.mjs", &[&link, new_password], true)
        .await
        .expect("the tools were there a moment ago");
    assert_browser_saw_a_clean_page(&report, "Choose a new password");
    assert_eq!(
        report["seen"]["labels"],
        json!(["New password", "Repeat the new password"])
    );
    assert!(
        report["policyError"]
            .as_str()
            .unwrap_or_default()
            .contains("too common"),
        "{report}"
    );
    assert_eq!(report["rerenderedToken"], token_of(&link), "{report}");
    assert_eq!(report["result"]["status"], 200, "{report}");
    assert!(
        report["result"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Your password was changed. You can now log in."),
        "{report}"
    );
    let login = app.login(&address, new_password).await;
    assert!(login["errors"].is_null(), "{login}");
    assert!(login["data"]["login"]["accessToken"].is_string(), "{login}");
}

fn assert_browser_saw_a_clean_page(report: &serde_json::Value, heading: &str) {
    assert_eq!(report["firstStatus"], 200, "{report}");
    assert_eq!(report["seen"]["heading"], heading, "{report}");
    assert_eq!(
        report["seen"]["title"],
        format!("{heading} · Acme"),
        "{report}"
    );
    assert_eq!(report["seen"]["lang"], "en", "{report}");
    assert_eq!(report["seen"]["scripts"], 0, "{report}");
    assert_eq!(report["seen"]["unlabelled"], json!([]), "{report}");
    assert_eq!(
        report["seen"]["styled"], "416px",
        "the inline style applied: {report}"
    );
    assert_eq!(report["csp"], json!([]), "no CSP violation: {report}");
    assert_eq!(
        report["consoleErrors"],
        json!([]),
        "no console error: {report}"
    );
    assert_eq!(report["offsite"], json!([]), "{report}");
}

#[tokio::test]
async fn a_cross_site_post_spends_nothing_and_no_token_is_logged() {
    let (app, smtp) = app_with_mail(|_| {}).await;
    let address = email();
    let session = app.register(&address).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let link = mailed_link(&smtp, "/verify-email").await;
    let token = token_of(&link);
    // A page on another site auto-submitting the form it copied.
    for headers in [
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ][..],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")][..],
    ] {
        let response = post_form(&app, "/verify-email", &[("token", &token)], headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    assert!(!email_verified(&app, &access).await);
    // The owner's own click still works: nothing was spent.
    let response = post_form(
        &app,
        "/verify-email",
        &[("token", &token)],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(email_verified(&app, &access).await);
    assert!(
        !captured_logs().contains(&token),
        "the token is never logged (not even its request line)"
    );
}
