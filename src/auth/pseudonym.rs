//! Email pseudonyms: the keyed hash under which email-keyed counters (the
//! lockout's rows, the per-IP-and-email rate-limit buckets) are stored.
//!
//! A counter must be found again from the email alone, so it cannot be
//! salted at random; a plain hash of an email is reversed by hashing a list
//! of addresses. `HMAC-SHA256` under a server key (generated once, kept in
//! `server_keys`, the same on every instance) is neither: without the key a
//! database or Redis dump reveals no address, not even which ones were tried.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use crate::auth::email::Email;

/// Hex characters kept: 128 bits, far past any collision a counter could meet.
const KEPT_HEX: usize = 32;

/// Turns emails into pseudonyms. Its key never leaves the server.
#[derive(Clone)]
pub struct EmailPseudonyms(SecretSlice<u8>);

impl std::fmt::Debug for EmailPseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailPseudonyms([redacted])")
    }
}

impl EmailPseudonyms {
    /// Wraps key material (32 bytes or more).
    pub fn new(key: Vec<u8>) -> Self {
        Self(SecretSlice::from(key))
    }

    /// The pseudonym of a normalized email: 32 lowercase hex characters.
    pub fn of(&self, email: &Email) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()) else {
            // HMAC takes keys of any length; this branch never runs.
            return String::new();
        };
        mac.update(b"warden email pseudonym v1\0");
        mac.update(email.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(KEPT_HEX);
        for byte in digest.iter().take(KEPT_HEX / 2) {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::opaque_token::random_bytes;

    #[test]
    fn pseudonyms_are_stable_per_key_and_hide_the_address() {
        let key = EmailPseudonyms::new(random_bytes(32));
        let other = EmailPseudonyms::new(random_bytes(32));
        let email = Email::parse("Alice@Example.com").unwrap();
        let same = Email::parse("alice@example.com").unwrap();
        let p = key.of(&email);
        assert_eq!(p, key.of(&same), "one normalized email, one pseudonym");
        assert_ne!(p, other.of(&email), "another key, another pseudonym");
        assert_eq!(p.len(), 32);
        assert!(p.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!p.contains("alice"));
    }
}
