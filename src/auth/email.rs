//! [`Email`]: a validated, normalized email address.

use crate::error::AppError;

/// Longest address accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// A trimmed, lowercase email address that passed [`Email::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims, lowercases and checks the shape `local@domain.tld`.
    ///
    /// Deliberately simple: the only proof an address works is a mail that
    /// arrives. This refuses what is certainly wrong (no `@`, spaces, control
    /// characters, oversize) and normalizes case so lookups and the unique
    /// index treat `Ada@Example.com` and `ada@example.com` as one account.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let bad = |message: &str| AppError::bad_input("email", message);
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(bad("email is required"));
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(bad("email must be at most 254 bytes"));
        }
        if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("email must not contain spaces or control characters"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(bad("email must look like name@example.com"));
        };
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty())
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(bad("email must look like name@example.com"));
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes into the normalized address.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM \n").map(Email::into_string);
        assert_eq!(email.ok().as_deref(), Some("ada.lovelace@example.com"));
    }

    #[test]
    fn malformed_emails_are_refused_with_the_field() {
        for raw in [
            "",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a\u{7}@example.com",
        ] {
            match Email::parse(raw) {
                Err(AppError::BadUserInput { field, .. }) => assert_eq!(field, "email", "{raw:?}"),
                other => unreachable!("{raw:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn oversize_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        let at_limit = format!("{}@{}.com", "a".repeat(64), "b".repeat(185));
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
    }
}
