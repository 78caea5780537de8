//! The 6-digit codes that verification, reset and email-change mails carry
//! beside their link, for a user who reads the mail on another device.
//!
//! A code has only a million values, so its plain SHA-256 would fall to a
//! table in a second: it is stored as `HMAC-SHA256(code key, label ‖ row
//! id ‖ code)` ([`CodeKey::digest`]), under a server key that never leaves
//! the server and bound to its row, so neither a leaked table nor a copied
//! hash is worth anything. Guessing online is what is left, and that is
//! bounded elsewhere (five tries per code, a rate limit per address).

use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, Rng, TryRngCore};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::opaque_token::constant_time_eq;

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// Keys the stored hashes of codes.
#[derive(Clone)]
pub struct CodeKey(SecretSlice<u8>);

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey([redacted])")
    }
}

impl CodeKey {
    /// Wraps key material (32 bytes or more).
    pub fn new(key: Vec<u8>) -> Self {
        Self(SecretSlice::from(key))
    }

    /// The stored form of `code` for row `id`: lowercase hex (64 characters).
    pub fn digest(&self, id: Uuid, code: &str) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()) else {
            // HMAC takes keys of any length; this branch never runs.
            return String::new();
        };
        mac.update(b"warden email code v1\0");
        mac.update(id.as_bytes());
        mac.update(code.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// True when `code` is the code stored as `stored` for row `id`,
    /// compared in constant time.
    pub fn matches(&self, id: Uuid, code: &str, stored: &str) -> bool {
        constant_time_eq(self.digest(id, code).as_bytes(), stored.as_bytes())
    }
}

/// A fresh code: six decimal digits, uniform, from the OS.
pub fn generate() -> SecretString {
    let n: u32 = OsRng.unwrap_err().random_range(0..1_000_000);
    SecretString::from(format!("{n:0width$}", width = CODE_DIGITS))
}

/// True when `raw` has the shape of a code (six ASCII digits), so other
/// input is refused before any lookup.
pub fn looks_valid(raw: &str) -> bool {
    raw.len() == CODE_DIGITS && raw.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::opaque_token::random_bytes;

    #[test]
    fn codes_are_six_digits_and_bound_to_their_row_and_key() {
        for _ in 0..100 {
            let code = generate();
            assert!(
                looks_valid(code.expose_secret()),
                "{}",
                code.expose_secret()
            );
        }
        let key = CodeKey::new(random_bytes(32));
        let other = CodeKey::new(random_bytes(32));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let stored = key.digest(a, "042917");
        assert_eq!(stored.len(), 64);
        assert!(key.matches(a, "042917", &stored));
        assert!(!key.matches(a, "042918", &stored));
        assert!(!key.matches(b, "042917", &stored), "bound to its row");
        assert!(!other.matches(a, "042917", &stored), "bound to its key");
        assert!(!stored.contains("042917"));
        for bad in ["12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345"] {
            assert!(!looks_valid(bad), "{bad}");
        }
    }
}
