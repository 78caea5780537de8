//! The templates: escaping, every kind's parts, links, overrides and the
//! refusals at start-up, one-line subjects.

use std::path::Path;

use lettre::{message::MultiPart, Message};

use super::*;

const XSS: &str = "<img src=x onerror=alert(1)>";
const QUOTES: &str = "\"&'";

fn config() -> Config {
    let mut config = Config::defaults().expect("defaults");
    config.app_url = Some("https://app.example.com/account".to_owned());
    config
}

fn values() -> MailValues {
    MailValues {
        token: Some("dG9rZW4tMTIz_-".to_owned()),
        code: Some("042917".to_owned()),
        username: Some("ada".to_owned()),
        new_email: Some("new@example.com".to_owned()),
        valid_for: Some("30 minutes".to_owned()),
    }
}

fn parts(config: &Config, kind: MailKind, values: &MailValues) -> (String, String, String) {
    let env = load(config).expect("templates load");
    render(
        &env,
        kind,
        &variables(config, kind, "old@example.com", values),
    )
    .expect("renders")
}

/// The HTML with the entities minijinja writes turned back into text.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn with_overrides(dir: &Path) -> Config {
    let mut config = config();
    config.mail_templates = Some(dir.to_owned());
    config
}

#[test]
fn every_inserted_value_is_escaped_in_html_and_raw_in_text() {
    let mut config = config();
    config.product_name = format!("Acme {QUOTES}");
    let values = MailValues {
        username: Some(XSS.to_owned()),
        new_email: Some(format!("{QUOTES}@example.com")),
        ..values()
    };
    for kind in MailKind::ALL {
        let (subject, text, html) = parts(&config, kind, &values);
        let name = kind.name();
        assert!(!html.contains("<img"), "{name}: raw tag in HTML");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{name}: {html}"
        );
        assert!(!html.contains(QUOTES), "{name}: raw quotes in HTML");
        assert!(html.contains("Acme &quot;&amp;&#x27;"), "{name}: {html}");
        assert!(text.contains(XSS), "{name}: text should be raw: {text}");
        assert!(text.contains(&format!("Acme {QUOTES}")), "{name}: {text}");
        assert!(!text.contains("&lt;") && !text.contains("&amp;"), "{name}");
        assert!(subject.contains(&format!("Acme {QUOTES}")), "{name}");
    }
    let (_, text, html) = parts(&config, MailKind::EmailChangeNotice, &values);
    assert!(text.contains("\"&'@example.com"));
    assert!(html.contains("&quot;&amp;&#x27;@example.com"));
}

#[test]
fn every_kind_names_the_product_in_its_subject_and_carries_its_link_and_code() {
    let mut config = config();
    config.product_name = "Acme Cloud".to_owned();
    for kind in MailKind::ALL {
        let (subject, text, html) = parts(&config, kind, &values());
        let name = kind.name();
        assert!(subject.contains("Acme Cloud"), "{name}: {subject}");
        assert!(
            !text.is_empty() && html.starts_with("<!doctype html>"),
            "{name}"
        );
        assert!(!html.contains("<style") && !html.contains("src="), "{name}");
        assert!(
            html.contains("Not you?") && text.contains("Not you?"),
            "{name}"
        );
        match kind.link_path() {
            Some(path) => {
                let link = format!("https://app.example.com/account/{path}?token=dG9rZW4tMTIz_-");
                assert!(text.contains(&link), "{name}: {text}");
                assert!(text.contains("042917") && html.contains("042917"), "{name}");
                let html = unescape(&html);
                assert!(html.contains(&format!("href=\"{link}\"")), "{name}");
                assert!(html.contains(&format!(">{link}</a>")), "{name}");
                assert!(text.contains("30 minutes") && html.contains("30 minutes"));
            }
            None => {
                assert!(
                    !text.contains("token=") && !html.contains("token="),
                    "{name}"
                );
                assert!(!text.contains("042917"), "{name}");
            }
        }
    }
    let (_, text, _) = parts(&config, MailKind::EmailChangeNotice, &values());
    assert!(text.contains("new@example.com"), "{text}");
}

#[test]
fn a_link_mail_without_a_code_says_only_the_link() {
    let values = MailValues {
        code: None,
        ..values()
    };
    let (_, text, html) = parts(&config(), MailKind::VerifyEmail, &values);
    assert!(!text.contains("code") && !html.contains("code"), "{text}");
    assert!(text.contains("The link works for 30 minutes"), "{text}");
}

#[test]
fn links_come_from_configuration_with_the_token_percent_encoded() {
    let mut config = config();
    let odd = "a+b/c=&next=https://evil.example#x";
    let link = link_for(&config, MailKind::PasswordReset, odd).expect("a link");
    assert_eq!(
        link,
        "https://app.example.com/account/reset-password?token=a%2Bb%2Fc%3D%26next%3Dhttps%3A%2F%2Fevil.example%23x"
    );
    assert_eq!(link_for(&config, MailKind::PasswordChanged, "t"), None);
    config.app_url = None;
    config.public_url = Some("https://auth.example.com".to_owned());
    assert_eq!(
        link_for(&config, MailKind::EmailChange, "t").as_deref(),
        Some("https://auth.example.com/confirm-email?token=t")
    );
}

#[test]
fn an_override_replaces_its_file_and_only_that_file() {
    let dir = dir_with(&[(
        "password-reset.subject",
        "{{ product }}: new password for {{ email }}\n",
    )]);
    let config = with_overrides(dir.path());
    let (subject, text, _) = parts(&config, MailKind::PasswordReset, &values());
    assert_eq!(subject, "Warden: new password for old@example.com");
    assert!(text.contains("reset-password?token="), "built-in text kept");
    let (subject, _, _) = parts(&config, MailKind::VerifyEmail, &values());
    assert_eq!(subject, "Verify your email address for Warden");
}

#[test]
fn an_unknown_file_refuses_start_up_naming_it() {
    let dir = dir_with(&[("password-reset.text", "hi")]);
    let err = load(&with_overrides(dir.path())).expect_err("refused");
    assert!(err.contains("WARDEN_MAIL_TEMPLATES"), "{err}");
    assert!(err.contains("password-reset.text"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_missing_directory_refuses_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gone = dir.path().join("nowhere");
    let err = load(&with_overrides(&gone)).expect_err("refused");
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_template_that_does_not_compile_refuses_start_up_naming_it() {
    let dir = dir_with(&[("verify-email.txt", "Hello {% if username %}\n")]);
    let err = load(&with_overrides(dir.path())).expect_err("refused");
    let path = dir.path().join("verify-email.txt");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_template_that_fails_with_sample_values_refuses_start_up_naming_it() {
    // Strict variables: a misspelt one, or one the kind does not get.
    for (file, text) in [
        ("email-change.txt", "{{ lnik }}"),
        ("password-changed.html", "{{ link }}"),
        ("layout.html", "{% block intro %}{% endblock %}{{ nope }}"),
    ] {
        let dir = dir_with(&[(file, text)]);
        let err = load(&with_overrides(dir.path())).expect_err("refused");
        let path = dir.path().join(file);
        assert!(err.contains(&path.display().to_string()), "{file}: {err}");
        assert!(err.contains("undefined"), "{file}: {err}");
    }
    let dir = dir_with(&[("verify-email.subject", "{% if false %}x{% endif %}\n")]);
    let err = load(&with_overrides(dir.path())).expect_err("refused");
    assert!(err.contains("verify-email.subject") && err.contains("empty subject"));
}

#[test]
fn line_breaks_in_values_never_start_a_second_header() {
    let dir = dir_with(&[(
        "password-reset.subject",
        "{{ username }}, reset your {{ product }} password",
    )]);
    let config = with_overrides(dir.path());
    let env = load(&config).expect("templates load");
    // Start-up refuses such a product name; rendering strips it anyway.
    let mut odd = config.clone();
    odd.product_name = "Acme\r\nBcc: evil@example.com".to_owned();
    let err = load(&odd).expect_err("refused");
    assert!(err.starts_with("WARDEN_PRODUCT_NAME"), "{err}");
    let values = MailValues {
        username: Some("ada\nX-Injected: 1\r\n\r\nbody".to_owned()),
        ..values()
    };
    for kind in MailKind::ALL {
        let vars = variables(&odd, kind, "old@example.com", &values);
        let (subject, text, html) = render(&env, kind, &vars).expect("renders");
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        let message = Message::builder()
            .from("Acme <no-reply@example.com>".parse().expect("from"))
            .to("old@example.com".parse().expect("to"))
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .expect("message");
        let formatted = String::from_utf8(message.formatted()).expect("utf-8");
        let head = formatted.split("\r\n\r\n").next().expect("head");
        for line in head.split("\r\n") {
            let name = line.split(':').next().unwrap_or_default();
            assert!(
                !["bcc", "x-injected"].contains(&name.to_ascii_lowercase().as_str()),
                "{}: {line}",
                kind.name()
            );
        }
    }
    let vars = variables(&odd, MailKind::PasswordReset, "old@example.com", &values);
    let (subject, _, _) = render(&env, MailKind::PasswordReset, &vars).expect("renders");
    assert_eq!(
        subject,
        "ada X-Injected: 1 body, reset your Acme Bcc: evil@example.com password"
    );
}
