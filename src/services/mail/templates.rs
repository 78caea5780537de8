//! What each kind of mail says: its subject, plain text and HTML, from the
//! values a flow hands over ([`MailValues`]). Links are built here, from
//! configuration only (`WARDEN_APP_URL`, else `WARDEN_PUBLIC_URL`), never
//! from a request's `Host` or `X-Forwarded-Host`.
//!
//! Every inserted value is escaped for HTML.

use crate::{error::AppError, state::AppState};

use super::Mail;

/// Every kind of mail Warden sends. Its [`name`](Self::name) is the
/// outbox's `kind` and the `kind` label of `warden_mail_sent_total`, so the
/// set is fixed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link and a code that verify an account's address.
    VerifyEmail,
    /// A link and a code that set a new password.
    PasswordReset,
    /// "Your password was changed" (after a reset).
    PasswordChanged,
    /// To the new address: a link and a code that confirm an email change.
    EmailChange,
    /// To the old address: someone asked to move the account elsewhere.
    EmailChangeNotice,
}

impl MailKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::VerifyEmail,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::EmailChange,
        Self::EmailChangeNotice,
    ];

    /// The stable name: outbox `kind`, metric label, template file stem.
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify-email",
            Self::PasswordReset => "password-reset",
            Self::PasswordChanged => "password-changed",
            Self::EmailChange => "email-change",
            Self::EmailChangeNotice => "email-change-notice",
        }
    }

    /// The page a link of this kind opens (`{base}/{path}?token=…`), if it
    /// carries one.
    pub fn link_path(self) -> Option<&'static str> {
        match self {
            Self::VerifyEmail => Some("verify-email"),
            Self::PasswordReset => Some("reset-password"),
            Self::EmailChange => Some("confirm-email"),
            Self::PasswordChanged | Self::EmailChangeNotice => None,
        }
    }
}

/// The values a message may show. Each is escaped where it is inserted.
#[derive(Clone, Default)]
pub struct MailValues {
    /// The single-use token of the link, when the kind has one.
    pub token: Option<String>,
    /// The 6-digit code, when the kind has one.
    pub code: Option<String>,
    /// The account's display name, if any.
    pub username: Option<String>,
    /// For an email change: the address the account moves to.
    pub new_email: Option<String>,
    /// How long the link and code work, in words ("30 minutes").
    pub valid_for: Option<String>,
}

/// The link a mail of `kind` carries for `token`: under `WARDEN_APP_URL`
/// when set, else Warden's own landing pages under `WARDEN_PUBLIC_URL`.
pub fn link(state: &AppState, kind: MailKind, token: &str) -> Option<String> {
    let path = kind.link_path()?;
    let base = match &state.config.app_url {
        Some(app) => app.clone(),
        None => state.config.public_url(),
    };
    Some(format!(
        "{}/{path}?token={token}",
        base.trim_end_matches('/')
    ))
}

/// The message of `kind` to `to`, ready for [`super::enqueue`].
pub fn compose(
    state: &AppState,
    kind: MailKind,
    to: &str,
    values: &MailValues,
) -> Result<Mail, AppError> {
    let product = &state.config.product_name;
    let link = values
        .token
        .as_deref()
        .and_then(|token| link(state, kind, token));
    let code = values.code.as_deref().unwrap_or_default();
    let valid_for = values.valid_for.as_deref().unwrap_or("a limited time");
    let (subject, lines): (String, Vec<String>) = match kind {
        MailKind::VerifyEmail => (
            format!("Verify your email for {product}"),
            vec![
                format!("Confirm that this address belongs to your {product} account."),
                format!("Open this link: {}", link.clone().unwrap_or_default()),
                format!("Or enter this code: {code}"),
                format!("The link and the code work for {valid_for}."),
            ],
        ),
        MailKind::PasswordReset => (
            format!("Reset your {product} password"),
            vec![
                format!("Someone asked to reset the password of your {product} account."),
                format!("Open this link: {}", link.clone().unwrap_or_default()),
                format!("Or enter this code: {code}"),
                format!("The link and the code work for {valid_for}. If you did not ask, ignore this mail."),
            ],
        ),
        MailKind::PasswordChanged => (
            format!("Your {product} password was changed"),
            vec![format!(
                "The password of your {product} account was just reset, and every session ended. If this was not you, reset it again now."
            )],
        ),
        MailKind::EmailChange => (
            format!("Confirm your new email for {product}"),
            vec![
                format!("Confirm that your {product} account should move to this address."),
                format!("Open this link: {}", link.clone().unwrap_or_default()),
                format!("Or enter this code: {code}"),
                format!("The link and the code work for {valid_for}."),
            ],
        ),
        MailKind::EmailChangeNotice => (
            format!("Your {product} email is about to change"),
            vec![format!(
                "Someone signed in to your {product} account asked to move it to {}. If this was not you, change your password now.",
                values.new_email.as_deref().unwrap_or_default()
            )],
        ),
    };
    let text = lines.join("\n\n") + "\n";
    let html = format!(
        "<!doctype html><html><body>{}</body></html>",
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", escape(l)))
            .collect::<String>()
    );
    Ok(Mail {
        kind: kind.name(),
        to: to.to_owned(),
        subject,
        text,
        html: Some(html),
    })
}

/// Escapes `s` for HTML text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
