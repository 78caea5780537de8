//! What the email-flow tests share: an app wired to a real SMTP server
//! (`crate::smtp`), the received mail parsed as a mail client would
//! (`mailparse`: MIME parts, quoted-printable and base64, charsets), the
//! link's token and the 6-digit code taken out of it, and the flows'
//! GraphQL operations.

use std::{ops::Deref, time::Duration};

use entity::{audit_event, email_token, mail_outbox};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{json, Value};
use warden::config::{Config, RateQuota};

use crate::{
    helpers::{spawn_app_with, TestApp},
    smtp::Smtp,
};

/// A test app whose mail goes to a real SMTP server on loopback.
pub struct MailApp {
    pub app: TestApp,
    pub smtp: Smtp,
}

impl Deref for MailApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub fn quota(q: &str) -> RateQuota {
    q.parse().expect("quota")
}

/// An app with SMTP, the mail rules raised (tests of a limit set their own).
pub async fn mail_app() -> MailApp {
    mail_app_with(|_| {}).await
}

/// [`mail_app`] with `tweak` applied last.
pub async fn mail_app_with(tweak: impl FnOnce(&mut Config)) -> MailApp {
    let (smtp, port) = Smtp::start_free("127.0.0.1").await;
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
        c.mail_from = "Warden Test <no-reply@warden.test>".to_owned();
        let generous = quota("100000/s");
        c.rates.rate_mail_ip = generous;
        c.rates.rate_mail_email = generous;
        c.rates.rate_email_token_ip = generous;
        c.rates.rate_email_code = generous;
        tweak(c);
    })
    .await;
    MailApp { app, smtp }
}

/// One received message, decoded.
#[derive(Clone, Debug)]
pub struct Received {
    /// The envelope recipient (aiosmtpd's `X-RcptTo`).
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The text/plain part, decoded.
    pub text: String,
    /// The text/html part, decoded (empty when there is none).
    pub html: String,
    pub raw: String,
}

impl Received {
    pub fn parse(raw: &str) -> Received {
        let mail = mailparse::parse_mail(raw.as_bytes()).expect("a parsable RFC 5322 message");
        let header = |name: &str| {
            mail.headers
                .iter()
                .find(|h| h.get_key_ref().eq_ignore_ascii_case(name))
                .map(|h| h.get_value().trim().to_owned())
                .unwrap_or_default()
        };
        let mut text = String::new();
        let mut html = String::new();
        for part in mail.parts() {
            if !part.subparts.is_empty() {
                continue;
            }
            let body = part.get_body().expect("a decodable body");
            match part.ctype.mimetype.as_str() {
                "text/plain" => text.push_str(&body),
                "text/html" => html.push_str(&body),
                _ => {}
            }
        }
        let to = header("X-RcptTo");
        Received {
            to: if to.is_empty() { header("To") } else { to },
            subject: header("Subject"),
            message_id: header("Message-ID"),
            text,
            html,
            raw: raw.to_owned(),
        }
    }

    /// The link in the plain text (`…/path?token=…`), checked to be the
    /// same in the HTML part.
    pub fn link(&self) -> String {
        let link = link_in(&self.text).unwrap_or_else(|| panic!("no link in {}", self.text));
        if !self.html.is_empty() {
            // The HTML part escapes `/` too (`&#x2f;`), as MiniJinja does.
            let unescaped = self.html.replace("&#x2f;", "/").replace("&amp;", "&");
            let html_link =
                link_in(&unescaped).unwrap_or_else(|| panic!("no link in the HTML: {}", self.html));
            assert_eq!(html_link, link, "text and HTML carry the same link");
        }
        link
    }

    /// The link's path: `verify-email`, `reset-password`, `confirm-email`.
    pub fn link_path(&self) -> Option<String> {
        let link = link_in(&self.text)?;
        let before = link.split('?').next()?;
        Some(before.rsplit('/').next()?.to_owned())
    }

    /// The link's token.
    pub fn token(&self) -> String {
        let link = self.link();
        let (_, token) = link.split_once("?token=").expect("?token=");
        token.to_owned()
    }

    /// The 6-digit code: the one run of exactly six digits outside the
    /// link, the same in the HTML part.
    pub fn code(&self) -> String {
        let code = code_in(&self.text).unwrap_or_else(|| panic!("no code in {}", self.text));
        if !self.html.is_empty() {
            // The HTML's visible text: tags (and the colours in their
            // inline styles) removed.
            let mut visible = String::new();
            let mut in_tag = false;
            for c in self.html.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => {
                        in_tag = false;
                        visible.push(' ');
                    }
                    c if !in_tag => visible.push(c),
                    _ => {}
                }
            }
            assert_eq!(code_in(&visible).as_deref(), Some(code.as_str()));
        }
        code
    }
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.~%".contains(c)
}

/// The first `http(s)://…?token=…` in `text`.
fn link_in(text: &str) -> Option<String> {
    let at = text.find("?token=")?;
    let start = text[..at].rfind("http")?;
    let rest = &text[at + "?token=".len()..];
    let len = rest.find(|c: char| !token_char(c)).unwrap_or(rest.len());
    (len > 0).then(|| text[start..at + "?token=".len() + len].to_owned())
}

/// The six-digit words in `text`, links removed.
fn code_in(text: &str) -> Option<String> {
    let mut text = text.to_owned();
    while let Some(link) = link_in(&text) {
        text = text.replace(&link, " ");
    }
    // A code stands alone: a word of six digits (not digits inside an
    // address or an id, which the mail may also show).
    let mut codes: Vec<String> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == '>' || c == '<') {
        let word = word.trim_matches(|c: char| ".,:;()\"'".contains(c));
        if word.len() == 6
            && word.bytes().all(|b| b.is_ascii_digit())
            && !codes.iter().any(|c| c == word)
        {
            codes.push(word.to_owned());
        }
    }
    assert!(
        codes.len() <= 1,
        "more than one code-like number: {codes:?}"
    );
    codes.pop()
}

impl MailApp {
    /// Every message received so far for `to`, oldest first (Message-IDs
    /// are time-ordered UUIDv7s).
    pub fn mails_to(&self, to: &str) -> Vec<Received> {
        let mut got: Vec<Received> = self
            .smtp
            .messages()
            .iter()
            .map(|m| Received::parse(m))
            .filter(|m| m.to.eq_ignore_ascii_case(to))
            .collect();
        got.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        got
    }

    /// Waits (up to 30 s) for `n` messages to `to`; returns them, oldest first.
    pub async fn wait_mails(&self, to: &str, n: usize) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.mails_to(to);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages to {to}, got {:?}", self.mails_to(to));
    }

    /// Waits for the `n`-th message to `to` (1-based) and returns it.
    pub async fn nth_mail(&self, to: &str, n: usize) -> Received {
        self.wait_mails(to, n).await[n - 1].clone()
    }

    /// Gives the sender time to deliver anything pending: sends a marker
    /// mail through the same outbox and waits for it (mail is claimed in
    /// `next_attempt_at` order, so what was due before it has gone too).
    pub async fn settle(&self) {
        let marker = format!("marker-{}@example.com", uuid::Uuid::new_v4().simple());
        let mail = warden::services::mail::Mail {
            kind: "test",
            to: marker.clone(),
            subject: "marker".to_owned(),
            text: "marker".to_owned(),
            html: None,
        };
        warden::services::mail::enqueue_now(&self.state, mail)
            .await
            .expect("marker enqueued");
        self.wait_mails(&marker, 1).await;
    }
}

pub const SEND_VERIFICATION: &str = "mutation { sendVerificationEmail }";
pub const VERIFY: &str = "mutation($i: EmailTokenInput!) { verifyEmail(input: $i) }";
pub const REQUEST_RESET: &str = "mutation($e: String!) { requestPasswordReset(email: $e) }";
pub const RESET: &str =
    "mutation($i: EmailTokenInput!, $p: String!) { resetPassword(input: $i, newPassword: $p) }";
pub const REQUEST_CHANGE: &str =
    "mutation($e: String!, $p: String!) { requestEmailChange(newEmail: $e, currentPassword: $p) }";
pub const CONFIRM_CHANGE: &str = "mutation($i: EmailTokenInput!) { confirmEmailChange(input: $i) }";

/// `{ token }` as an `EmailTokenInput`.
pub fn by_token(token: &str) -> Value {
    json!({ "token": token })
}

/// `{ email, code }` as an `EmailTokenInput`.
pub fn by_code(email: &str, code: &str) -> Value {
    json!({ "email": email, "code": code })
}

/// A 6-digit code that is not `code`.
pub fn wrong_code(code: &str) -> String {
    let n: u32 = code.parse().expect("digits");
    format!("{:06}", (n + 1) % 1_000_000)
}

/// A fresh password that passes the policy.
pub fn new_password() -> String {
    format!("fresh meadow lantern {}", uuid::Uuid::new_v4().simple())
}

impl MailApp {
    pub async fn verify(&self, input: Value) -> Value {
        self.gql(None, VERIFY, json!({ "i": input })).await
    }

    pub async fn reset(&self, input: Value, password: &str) -> Value {
        self.gql(None, RESET, json!({ "i": input, "p": password }))
            .await
    }

    pub async fn request_reset(&self, email: &str) -> Value {
        self.gql(None, REQUEST_RESET, json!({ "e": email })).await
    }

    pub async fn request_change(&self, bearer: Option<&str>, new: &str, password: &str) -> Value {
        self.gql(bearer, REQUEST_CHANGE, json!({ "e": new, "p": password }))
            .await
    }

    pub async fn confirm_change(&self, bearer: Option<&str>, input: Value) -> Value {
        self.gql(bearer, CONFIRM_CHANGE, json!({ "i": input }))
            .await
    }

    /// `me { emailVerified }` with `token`.
    pub async fn email_verified(&self, token: &str) -> Value {
        let body = self
            .gql(Some(token), "{ me { email emailVerified } }", json!({}))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        body["data"]["me"]["emailVerified"].clone()
    }

    /// The kinds of the audit rows of `user_id`, oldest first.
    pub async fn audit_kinds(&self, user_id: &str) -> Vec<String> {
        let id: uuid::Uuid = user_id.parse().expect("user id");
        let mut rows = audit_event::Entity::find()
            .filter(audit_event::Column::UserId.eq(id))
            .all(self.state.db.read())
            .await
            .expect("audit rows");
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(|r| r.kind).collect()
    }

    pub async fn all_audit(&self) -> Vec<audit_event::Model> {
        audit_event::Entity::find()
            .all(self.state.db.read())
            .await
            .expect("audit rows")
    }

    pub async fn outbox(&self) -> Vec<mail_outbox::Model> {
        mail_outbox::Entity::find()
            .all(self.state.db.write())
            .await
            .expect("outbox rows")
    }

    pub async fn email_tokens(&self) -> Vec<email_token::Model> {
        email_token::Entity::find()
            .all(self.state.db.write())
            .await
            .expect("email tokens")
    }
}

/// The `extensions.code` of every error of `body`.
pub fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// POSTs each of `requests` (a document and its variables) from its own
/// tokio task, all released at once by a barrier; returns the answers in
/// order. The caller's test should run on a multi-thread runtime.
pub async fn race_gql(address: &str, requests: Vec<(String, Option<String>, Value)>) -> Vec<Value> {
    let client = reqwest::Client::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(query, bearer, variables)| {
            let (client, start) = (client.clone(), start.clone());
            let url = format!("{address}/graphql");
            tokio::spawn(async move {
                let mut request = client
                    .post(url)
                    .json(&json!({ "query": query, "variables": variables }));
                if let Some(bearer) = bearer {
                    request = request.bearer_auth(bearer);
                }
                start.wait().await;
                let answer: Value = request
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("JSON");
                answer
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
