//! Recovery codes: the one-time codes that stand in for a lost
//! authenticator. Ten characters from a 30-character alphabet without look-alike
//! characters (49 bits each), shown as `xxxxx-xxxxx`. What a user types is
//! [`normalize`]d (dashes and spaces dropped, case folded) before it is
//! hashed, so a code copied with or without its dash works.
//!
//! At rest each is a keyed hash bound to its row
//! ([`super::email_code::CodeKey`] under its own server key): 49 bits are too
//! few for a plain hash to survive a leaked table.

use rand::{rngs::OsRng, Rng, TryRngCore};
use secrecy::SecretString;

/// Codes handed out at once.
pub const COUNT: usize = 10;

/// Characters of a code, dash excluded.
pub const LEN: usize = 10;

/// Digits and lowercase letters without `0 1 i l o u` (read alike, or
/// spell words): 30 characters, so a code holds 49 bits.
const ALPHABET: &[u8; 30] = b"23456789abcdefghjkmnpqrstvwxyz";

/// A fresh code, as shown: `xxxxx-xxxxx`.
pub fn generate() -> SecretString {
    let a = ALPHABET;
    let mut rng = OsRng.unwrap_err();
    let mut code = String::with_capacity(LEN + 1);
    for i in 0..LEN {
        if i == LEN / 2 {
            code.push('-');
        }
        code.push(char::from(a[rng.random_range(0..a.len())]));
    }
    SecretString::from(code)
}

/// The canonical form of what a user typed (dashes and spaces dropped,
/// lowercase), or `None` when it cannot be a code.
pub fn normalize(raw: &str) -> Option<String> {
    let code: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn codes_are_ten_unambiguous_characters_and_survive_retyping() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let code = generate();
            let shown = code.expose_secret();
            assert_eq!(shown.len(), LEN + 1);
            assert_eq!(&shown[5..6], "-");
            let canonical = normalize(shown).expect("a generated code normalizes");
            assert!(!canonical.contains(['0', 'o', '1', 'l', 'i', 'u']));
            assert_eq!(normalize(&shown.to_uppercase()), Some(canonical.clone()));
            assert_eq!(normalize(&canonical), Some(canonical.clone()));
            seen.insert(canonical);
        }
        assert!(seen.len() > 195, "codes repeat: {}", seen.len());
        assert_eq!(normalize("abcde-fghj"), None, "too short");
        assert_eq!(
            normalize("abcde-fghj0"),
            None,
            "a zero is not in the alphabet"
        );
        assert_eq!(
            normalize("123456"),
            None,
            "a TOTP code is not a recovery code"
        );
    }
}
