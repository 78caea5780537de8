//! [`Email`]: a validated, normalized email address.
//!
//! Normalization, and what it deliberately does not do:
//! - trimmed, and lowercased (Unicode lowercase), as before;
//! - refused when it holds a control, invisible, format, bidi-control,
//!   private-use or variation-selector character ([`charset::hidden_char`]):
//!   those make two addresses that look the same, or one that reads as
//!   another, and no real mailbox needs them;
//! - the domain is stored in its ASCII form (IDNA, UTS #46 ToASCII with the
//!   STD3 rules): `BÜCHER.example`, `bücher.example` and
//!   `xn--bcher-kva.example` are one domain in DNS, so they are one account
//!   here. A domain IDNA cannot convert is `BAD_USER_INPUT`;
//! - the local part is kept as written, only put in Unicode NFC (canonical
//!   composition: `e` + U+0301 and `é` are the same text, RFC 6532 §3.1).
//!   No NFKC, no dot or `+tag` folding: only the receiving mail server knows
//!   which local parts are one mailbox (RFC 5321 §2.4), and folding would
//!   merge addresses that belong to different people;
//! - a local part that mixes look-alike scripts (Latin with Cyrillic, Greek
//!   or Cherokee: `pаypal` with a Cyrillic `а`) is refused
//!   ([`charset::mixed_scripts`]). A local part written wholly in one such
//!   script (`аdа`, all Cyrillic) is accepted: it is a different, real
//!   mailbox, and it is shown as it is written.

use unicode_normalization::UnicodeNormalization;

use crate::{auth::charset, error::AppError};

/// Longest address accepted, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest local part, in bytes (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_BYTES: usize = 64;

/// A trimmed, lowercase email address that passed [`Email::parse`]: NFC
/// local part, ASCII (punycode) domain.
#[derive(Clone, Debug)]
pub struct Email {
    address: String,
    /// The address as Warden stored it before domains were converted to
    /// ASCII (trimmed and lowercased only), when that differs: an account
    /// registered then is still found by the same spelling.
    legacy: Option<String>,
    /// The address with its domain in Unicode (`ada@bücher.example`), when
    /// the domain is an IDN: the spelling an older Warden stored when the
    /// user typed it that way.
    unicode: Option<String>,
}

impl Email {
    /// Trims, lowercases, checks the shape `local@domain.tld` and the
    /// characters, and converts the domain to ASCII.
    ///
    /// Deliberately simple: the only proof an address works is a mail that
    /// arrives. This refuses what is certainly wrong (no `@`, spaces, control
    /// or invisible characters, oversize, a domain that is not a host name)
    /// and normalizes case so lookups and the unique index treat
    /// `Ada@Example.com` and `ada@example.com` as one account.
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let bad = |message: &str| AppError::bad_input("email", message);
        let lowered = raw.trim().to_lowercase();
        if lowered.is_empty() {
            return Err(bad("email is required"));
        }
        if lowered.len() > MAX_EMAIL_BYTES * 4 {
            // Far past any limit: refused before any Unicode work.
            return Err(bad("email must be at most 254 bytes"));
        }
        if lowered.chars().any(char::is_whitespace) {
            return Err(bad("email must not contain spaces or control characters"));
        }
        if let Some(c) = charset::hidden_char(&lowered) {
            return Err(bad(&format!(
                "email must not contain control, invisible or formatting characters (U+{:04X})",
                u32::from(c)
            )));
        }
        let Some((local, domain)) = lowered.rsplit_once('@') else {
            return Err(bad("email must look like name@example.com"));
        };
        let local: String = local.nfc().collect();
        if local.is_empty() || local.len() > MAX_LOCAL_BYTES || local.contains('@') {
            return Err(bad("email must look like name@example.com"));
        }
        if charset::mixed_scripts(&local) {
            return Err(bad(
                "email must not mix look-alike scripts (such as Latin and Cyrillic) before the @",
            ));
        }
        let domain = ascii_domain(domain)
            .ok_or_else(|| bad("email's domain must be a valid host name like example.com"))?;
        let address = format!("{local}@{domain}");
        if address.len() > MAX_EMAIL_BYTES {
            return Err(bad("email must be at most 254 bytes"));
        }
        let unicode = domain
            .contains("xn--")
            .then(|| idna::domain_to_unicode(&domain).0)
            .map(|unicode| format!("{local}@{unicode}"))
            .filter(|spelled| *spelled != address && *spelled != lowered);
        let legacy = (lowered != address).then_some(lowered);
        Ok(Self {
            address,
            legacy,
            unicode,
        })
    }

    /// For looking up an account that exists, not for creating one: the
    /// strict [`parse`](Self::parse), or, when that refuses, the rules an
    /// older Warden registered addresses under (trimmed, lowercased, no
    /// spaces or controls, `local@domain.tld`, at most 254 bytes), so an
    /// account registered before the stricter rules can still log in,
    /// change its password and be promoted. Such an address can no longer
    /// be registered, so it names an old account or none.
    pub fn parse_existing(raw: &str) -> Result<Self, AppError> {
        let strict = Self::parse(raw);
        if strict.is_ok() {
            return strict;
        }
        let lowered = raw.trim().to_lowercase();
        let old_shape = lowered.len() <= MAX_EMAIL_BYTES
            && !lowered.chars().any(|c| c.is_control() || c.is_whitespace())
            && lowered.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= MAX_LOCAL_BYTES
                    && !local.contains('@')
                    && domain.contains('.')
                    && domain.split('.').all(|label| !label.is_empty())
            });
        if !old_shape {
            return strict;
        }
        Ok(Self {
            address: lowered,
            legacy: None,
            unicode: None,
        })
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The spelling an older Warden stored for the same input, when it
    /// differs from [`as_str`](Self::as_str); lookups try it second.
    pub fn legacy(&self) -> Option<&str> {
        self.legacy.as_deref()
    }

    /// Every other spelling an older Warden may have stored for this
    /// address: the input as typed (lowercased) and the domain in Unicode.
    /// Lookups and `register`'s check try them after the address itself.
    pub fn older_spellings(&self) -> impl Iterator<Item = &str> {
        self.legacy
            .iter()
            .chain(self.unicode.iter())
            .map(String::as_str)
    }

    /// Consumes into the normalized address.
    pub fn into_string(self) -> String {
        self.address
    }
}

// One address is one email, however it was spelled when parsed: equality
// and hashing look at the normalized address only, never the old spelling.
impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
    }
}

impl Eq for Email {}

impl std::hash::Hash for Email {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.address.hash(state);
    }
}

/// `domain` in ASCII, by UTS #46 ToASCII (nontransitional, STD3 rules: only
/// letters, digits and inner hyphens; labels of 1 to 63 bytes, at most 253
/// in all), with at least two labels. `None` when it does not convert.
fn ascii_domain(domain: &str) -> Option<String> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    let ascii = Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::CheckFirstLast,
            DnsLength::Verify,
        )
        .ok()?;
    let ascii = ascii.to_ascii_lowercase();
    let labels_ok = ascii.contains('.') && ascii.split('.').all(|label| !label.is_empty());
    labels_ok.then_some(ascii)
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
                other => panic!("{raw:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn invisible_format_and_bidi_characters_are_refused() {
        for raw in [
            "ada\u{200B}@example.com",
            "ada@exa\u{200D}mple.com",
            "\u{202E}moc.elpmaxe@ada",
            "ada\u{AD}@example.com",
            "ada\u{FEFF}@example.com",
            "ada\u{2066}x\u{2069}@example.com",
            "ada\u{FE0F}@example.com",
            "ada\u{E0041}@example.com",
            "ada\u{E000}@example.com",
            "ada\u{A0}@example.com",
        ] {
            match Email::parse(raw) {
                Err(AppError::BadUserInput { field, .. }) => assert_eq!(field, "email", "{raw:?}"),
                other => panic!("{raw:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_domain_is_stored_in_ascii_and_every_spelling_is_one_address() {
        let ascii = |raw: &str| Email::parse(raw).map(Email::into_string).ok();
        let want = Some("ada@xn--bcher-kva.example".to_owned());
        assert_eq!(ascii("Ada@BÜCHER.example"), want);
        assert_eq!(ascii("ada@bücher.example"), want);
        assert_eq!(ascii("ada@XN--BCHER-KVA.example"), want);
        assert_eq!(ascii("ada@bücher\u{3002}example"), want); // ideographic full stop
        let old = Email::parse("Ada@BÜCHER.example").ok();
        assert_eq!(
            old.as_ref().and_then(Email::legacy),
            Some("ada@bücher.example")
        );
        assert_eq!(
            Email::parse("ada@example.com")
                .ok()
                .and_then(|e| e.legacy().map(str::to_owned)),
            None
        );
        for bad in [
            "ada@exa_mple.com",
            "ada@-example.com",
            "ada@example.com.",
            "ada@xn--zz.example",
            "ada@ex\u{2603}ample..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_parts_are_composed_and_lookalike_mixes_refused() {
        let decomposed = Email::parse("jose\u{301}@example.com")
            .map(Email::into_string)
            .ok();
        assert_eq!(decomposed.as_deref(), Some("josé@example.com"));
        assert_eq!(
            Email::parse("ada@BÜCHER.example").ok(),
            Email::parse("ada@xn--bcher-kva.example").ok()
        );
        assert!(Email::parse("p\u{430}ypal@example.com").is_err()); // Cyrillic а among Latin
        assert!(Email::parse("\u{43c}\u{430}\u{440}\u{438}\u{44f}@example.com").is_ok()); // all Cyrillic
        assert!(Email::parse("zoë.o'neil+tag@example.com").is_ok());
    }

    #[test]
    fn oversize_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        // DNS labels are at most 63 bytes, so the longest domain has several.
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let at_limit = format!("{}@{domain}", "a".repeat(64));
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
    }
}
