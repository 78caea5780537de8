//! What each kind of mail says: its subject, plain text and HTML, rendered
//! from templates ([`minijinja`]) with the values a flow hands over
//! ([`MailValues`]).
//!
//! - The built-in templates are the files of `assets/mail/`, compiled into
//!   the binary; `WARDEN_MAIL_TEMPLATES` names a directory whose files
//!   replace them file by file. [`load`] compiles them once at start-up and
//!   renders each with sample values, so a bad template stops the server
//!   before it takes a request rather than failing a flow later.
//! - Escaping is by file extension: in `*.html` every inserted value is
//!   HTML-escaped (attribute-safe too); `*.txt` is plain text, inserted raw.
//!   A subject is one line: control characters (CR and LF above all) are
//!   taken out of every value before it goes into a subject, and out of the
//!   rendered subject, so no value can start a second header.
//! - Undefined variables are errors (strict), so a typo in an override is
//!   caught at start-up; each kind gets only the variables it has (see
//!   [`variables`] and the README's "Mail templates").
//! - Links are built here, from configuration only (`WARDEN_APP_URL`, else
//!   `WARDEN_PUBLIC_URL`), never from a request's `Host` or
//!   `X-Forwarded-Host`.

use std::collections::BTreeMap;

use minijinja::{Environment, Value};

use crate::{config::Config, error::AppError, state::AppState};

use super::Mail;

mod load;
#[cfg(test)]
mod tests;

pub use load::{load, FILES};

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
    /// A recovery code signed in instead of the authenticator app.
    RecoveryCodeUsed,
    /// A passkey was added to the account.
    PasskeyAdded,
    /// An authenticator app was turned on.
    MfaEnabled,
    /// The authenticator app was turned off.
    MfaDisabled,
    /// An administrator removed the account's second factors and passkeys.
    FactorsReset,
}

impl MailKind {
    /// Every kind.
    pub const ALL: [Self; 10] = [
        Self::VerifyEmail,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::EmailChange,
        Self::EmailChangeNotice,
        Self::RecoveryCodeUsed,
        Self::PasskeyAdded,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::FactorsReset,
    ];

    /// The stable name: outbox `kind`, metric label, template file stem.
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify-email",
            Self::PasswordReset => "password-reset",
            Self::PasswordChanged => "password-changed",
            Self::EmailChange => "email-change",
            Self::EmailChangeNotice => "email-change-notice",
            Self::RecoveryCodeUsed => "recovery-code-used",
            Self::PasskeyAdded => "passkey-added",
            Self::MfaEnabled => "mfa-enabled",
            Self::MfaDisabled => "mfa-disabled",
            Self::FactorsReset => "factors-reset",
        }
    }

    /// The page a link of this kind opens (`{base}/{path}?token=…`), if it
    /// carries one.
    pub fn link_path(self) -> Option<&'static str> {
        match self {
            Self::VerifyEmail => Some("verify-email"),
            Self::PasswordReset => Some("reset-password"),
            Self::EmailChange => Some("confirm-email"),
            Self::PasswordChanged
            | Self::EmailChangeNotice
            | Self::RecoveryCodeUsed
            | Self::PasskeyAdded
            | Self::MfaEnabled
            | Self::MfaDisabled
            | Self::FactorsReset => None,
        }
    }

    /// Whether the kind's templates get `new_email`.
    fn has_new_email(self) -> bool {
        matches!(self, Self::EmailChange | Self::EmailChangeNotice)
    }
}

/// The values a message may show. Each is escaped where it is inserted.
#[derive(Clone, Default)]
pub struct MailValues {
    /// The single-use token of the link: required by the kinds with a
    /// [`link_path`](MailKind::link_path).
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
    link_for(&state.config, kind, token)
}

fn link_for(config: &Config, kind: MailKind, token: &str) -> Option<String> {
    let path = kind.link_path()?;
    let base = match &config.app_url {
        Some(app) => app.clone(),
        None => config.public_url(),
    };
    // The token is URL-safe base64 already; encoding it anyway means no
    // token, whatever it holds, can add a parameter or end the query.
    let query = serde_urlencoded::to_string([("token", token)]).ok()?;
    Some(format!("{}/{path}?{query}", base.trim_end_matches('/')))
}

/// The message of `kind` to `to`, ready for [`super::enqueue`].
pub fn compose(
    state: &AppState,
    kind: MailKind,
    to: &str,
    values: &MailValues,
) -> Result<Mail, AppError> {
    if kind.link_path().is_some() && values.token.is_none() {
        // A link mail without its link would tell the user nothing.
        return Err(AppError::internal(format!(
            "mail {}: no token to link to",
            kind.name()
        )));
    }
    let vars = variables(&state.config, kind, to, values);
    let (subject, text, html) = render(&state.mail_templates, kind, &vars)
        .map_err(|e| AppError::internal(format!("mail {}: {e}", kind.name())))?;
    Ok(Mail {
        kind: kind.name(),
        to: to.to_owned(),
        subject,
        text,
        html: Some(html),
    })
}

/// The variables the templates of `kind` get. Every kind: `product`
/// (WARDEN_PRODUCT_NAME), `email` (the recipient) and `username` (none when
/// the account has none). Kinds with a link: `link`, `code` (none when the
/// flow sent none) and `valid_for`. `email-change` and
/// `email-change-notice`: `new_email`.
pub(crate) fn variables(
    config: &Config,
    kind: MailKind,
    to: &str,
    values: &MailValues,
) -> BTreeMap<&'static str, Value> {
    let opt = |v: &Option<String>| v.as_deref().map_or(Value::from(()), Value::from);
    let mut vars = BTreeMap::from([
        ("product", Value::from(config.product_name.as_str())),
        ("email", Value::from(to)),
        ("username", opt(&values.username)),
    ]);
    if kind.link_path().is_some() {
        let link = values
            .token
            .as_deref()
            .and_then(|token| link_for(config, kind, token));
        vars.insert("link", link.map_or(Value::from(()), Value::from));
        vars.insert("code", opt(&values.code));
        vars.insert(
            "valid_for",
            Value::from(values.valid_for.as_deref().unwrap_or("a limited time")),
        );
    }
    if kind.has_new_email() {
        vars.insert("new_email", opt(&values.new_email));
    }
    vars
}

/// Renders the subject, text and HTML of `kind`.
pub(crate) fn render(
    env: &Environment<'static>,
    kind: MailKind,
    vars: &BTreeMap<&'static str, Value>,
) -> Result<(String, String, String), minijinja::Error> {
    let name = kind.name();
    let one_line_vars: BTreeMap<&str, Value> = vars
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => (*k, Value::from(one_line(s))),
            None => (*k, v.clone()),
        })
        .collect();
    let subject = env
        .get_template(&format!("{name}.subject"))?
        .render(&one_line_vars)?;
    let text = env.get_template(&format!("{name}.txt"))?.render(vars)?;
    let html = env.get_template(&format!("{name}.html"))?.render(vars)?;
    Ok((one_line(&subject), text, html))
}

/// `s` on one line: every control character (CR, LF, tab, …) and Unicode
/// line or paragraph separator becomes a space, runs of spaces become one,
/// and the ends are trimmed.
pub(crate) fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
