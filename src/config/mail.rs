//! Parsers of the outbound-mail settings (`WARDEN_SMTP_URL`, `WARDEN_MAIL_FROM`).

use secrecy::SecretString;

/// An `smtp://` or `smtps://` URL with a host; userinfo may carry credentials.
pub(super) fn parse_smtp_url(s: &str) -> Result<SecretString, String> {
    let url = reqwest::Url::parse(s)
        .map_err(|_| "expected smtp://[user[:password]@]host[:port] or smtps://…".to_owned())?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(format!(
            "scheme {}: expected smtp:// (STARTTLS, plain only on loopback) or smtps:// (implicit TLS)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the SMTP URL has no host".to_owned());
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() {
        return Err("the SMTP URL takes no path or query".to_owned());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// A sender mailbox, like `Warden <no-reply@example.com>`.
pub(super) fn parse_mail_from(s: &str) -> Result<String, String> {
    s.parse::<lettre::message::Mailbox>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a mailbox ({e}); expected like `Warden <no-reply@example.com>`"))
}

/// The frontend's base URL: `http(s)://host[:port][/path]`, no query or
/// fragment; kept without a trailing slash.
pub(super) fn parse_app_url(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|_| {
        "expected an http:// or https:// URL, like https://app.example.com".to_owned()
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("the app URL takes no query, fragment or credentials".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A non-empty secret.
pub(super) fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(SecretString::from(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_smtp_and_smtps_urls_with_a_host() {
        assert!(parse_smtp_url("smtp://mail.example.com").is_ok());
        assert!(parse_smtp_url("smtps://u:p@mail.example.com:465").is_ok());
        for bad in [
            "http://mail.example.com",
            "mail.example.com",
            "smtp://",
            "smtp://mail.example.com/path",
            "smtp://mail.example.com?tls=none",
        ] {
            assert!(parse_smtp_url(bad).is_err(), "{bad}");
        }
        assert!(parse_mail_from("Acme <no-reply@example.com>").is_ok());
        assert!(parse_mail_from("not an address").is_err());
        assert!(parse_secret("").is_err());
        assert_eq!(
            parse_app_url("https://example.com/account/").as_deref(),
            Ok("https://example.com/account")
        );
        assert_eq!(
            parse_app_url("http://localhost:3000").as_deref(),
            Ok("http://localhost:3000")
        );
        for bad in [
            "ftp://x",
            "https://x/?a=1",
            "https://x/#f",
            "https://u@x",
            "x",
        ] {
            assert!(parse_app_url(bad).is_err(), "{bad}");
        }
    }
}
