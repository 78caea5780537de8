//! Loading the templates once, at start-up: the built-in files of
//! `assets/mail/`, then the overrides of `WARDEN_MAIL_TEMPLATES`, then a
//! trial render of every kind with sample values. Any failure is one line
//! naming the file, and the server does not start.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use minijinja::{syntax::SyntaxConfig, Environment, UndefinedBehavior};

use crate::config::Config;

use super::{render, variables, MailKind, MailValues};

macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../../assets/mail/", $name)))),*]
    };
}

/// Every template file, by name, with its built-in text. These are the only
/// names an override directory may hold.
pub const FILES: &[(&str, &str)] = built_in![
    "layout.html",
    "verify-email.subject",
    "verify-email.txt",
    "verify-email.html",
    "password-reset.subject",
    "password-reset.txt",
    "password-reset.html",
    "password-changed.subject",
    "password-changed.txt",
    "password-changed.html",
    "recovery-code-used.subject",
    "recovery-code-used.txt",
    "recovery-code-used.html",
    "passkey-added.subject",
    "passkey-added.txt",
    "passkey-added.html",
    "mfa-enabled.subject",
    "mfa-enabled.txt",
    "mfa-enabled.html",
    "mfa-disabled.subject",
    "mfa-disabled.txt",
    "mfa-disabled.html",
    "factors-reset.subject",
    "factors-reset.txt",
    "factors-reset.html",
    "email-change.subject",
    "email-change.txt",
    "email-change.html",
    "email-change-notice.subject",
    "email-change-notice.txt",
    "email-change-notice.html",
];

/// The compiled templates: the built-in ones, each replaced by the file of
/// the same name in `config.mail_templates` when there is one. Every kind is
/// rendered once with sample values, so a template that cannot render (a
/// misspelt variable, a missing block) stops start-up here.
///
/// The error is one line, naming the file.
pub fn load(config: &Config) -> Result<Environment<'static>, String> {
    // The product name goes into the `From` header as well as subjects:
    // a line break there would make every mail unformattable (or forge a
    // header), so it is refused here, where every mail starts.
    if config
        .product_name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(
            "WARDEN_PRODUCT_NAME: no control characters or line breaks (it goes into mail headers)"
                .to_owned(),
        );
    }
    let mut env = Environment::new();
    // `.html` → HTML escaping, anything else (`.subject`, `.txt`) → none:
    // minijinja's default callback, by file extension.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A tag alone on its line leaves no blank line behind (`.txt` files).
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| format!("mail templates: {e}"))?;
    env.set_syntax(syntax);
    for (name, source) in FILES {
        env.add_template(name, source)
            .map_err(|e| format!("built-in mail template {name}: {}", one_line_error(&e)))?;
    }
    let overrides = match &config.mail_templates {
        Some(dir) => add_overrides(&mut env, dir)?,
        None => BTreeMap::new(),
    };
    let shown = |name: &str| match overrides.get(name) {
        Some(path) => format!("WARDEN_MAIL_TEMPLATES: {}", path.display()),
        None => format!("built-in mail template {name}"),
    };
    for kind in MailKind::ALL {
        for values in samples() {
            let vars = variables(config, kind, "someone@example.com", &values);
            match render(&env, kind, &vars) {
                Ok((subject, _, _)) if subject.is_empty() => {
                    return Err(format!(
                        "{}: renders an empty subject",
                        shown(&format!("{}.subject", kind.name()))
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    // The error names the template it happened in (a
                    // layout error surfaces while rendering a kind).
                    let name = e.name().unwrap_or(kind.name()).to_owned();
                    return Err(format!("{}: {}", shown(&name), one_line_error(&e)));
                }
            }
        }
    }
    Ok(env)
}

/// Adds every file of `dir`, refusing a name that is not a template's.
/// Returns where each override came from.
fn add_overrides(
    env: &mut Environment<'static>,
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "WARDEN_MAIL_TEMPLATES: cannot read the directory {}: {e}",
            dir.display()
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("WARDEN_MAIL_TEMPLATES: {}: {e}", dir.display()))?;
    paths.sort();
    let mut overrides = BTreeMap::new();
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| FILES.iter().find(|(known, _)| *known == n))
            .map(|(known, _)| *known)
            .ok_or_else(|| {
                format!(
                    "WARDEN_MAIL_TEMPLATES: {}: not a mail template's name (expected layout.html or \
                     <kind>.subject, <kind>.txt, <kind>.html for a kind of {})",
                    path.display(),
                    MailKind::ALL.map(MailKind::name).join(", ")
                )
            })?;
        let source = std::fs::read_to_string(&path)
            .map_err(|e| format!("WARDEN_MAIL_TEMPLATES: {}: {e}", path.display()))?;
        env.add_template_owned(name, source).map_err(|e| {
            format!(
                "WARDEN_MAIL_TEMPLATES: {}: {}",
                path.display(),
                one_line_error(&e)
            )
        })?;
        overrides.insert(name.to_owned(), path);
    }
    Ok(overrides)
}

/// The sample values of the trial render: everything set, then every
/// optional value missing, as flows send them.
fn samples() -> [MailValues; 2] {
    [
        MailValues {
            token: Some("c2FtcGxlLXRva2Vu".to_owned()),
            code: Some("123456".to_owned()),
            username: Some("ada".to_owned()),
            new_email: Some("new@example.com".to_owned()),
            valid_for: Some("30 minutes".to_owned()),
        },
        MailValues {
            token: Some("c2FtcGxlLXRva2Vu".to_owned()),
            ..MailValues::default()
        },
    ]
}

/// A template error on one line (minijinja's text may span several).
fn one_line_error(e: &minijinja::Error) -> String {
    super::one_line(&e.to_string())
}
