//! Opaque tokens: bearer secrets that mean nothing by themselves and are
//! looked up by their hash. Refresh tokens and trusted-device tokens today;
//! the same helper serves email-verification, password-reset and API-key
//! tokens.
//!
//! A token is 256 random bits from the OS, base64url without padding (43
//! characters). Only its SHA-256, as lowercase hex, is ever stored, so a
//! leaked table holds nothing a client could present. [`looks_valid`] checks
//! the shape before any lookup, so malformed input costs no database round
//! trip. A lookup by hash in SQL gives nothing away by its timing: a client
//! chooses the token but not its SHA-256, so how close a guess came in the
//! index says nothing about a stored token. Where a presented token is
//! compared with a stored value in Rust, [`matches()`] compares the hashes
//! in constant time.
//!
//! # Keyed successors
//! A refresh token's successor is not random but `HMAC-SHA256(successor key,
//! label ‖ token)` ([`SuccessorKey`]). That lets a replay inside the grace
//! interval be answered with the *same* successor (a lost response or a
//! second tab must not log the user out) without ever storing a token: the
//! server recomputes it from the token the client presents. Without the
//! server key nobody can compute it.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{
    digest::{Key, KeyInit},
    Hmac, Mac,
};
use rand::{rngs::OsRng, RngCore, TryRngCore};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of randomness in a token.
pub const TOKEN_BYTES: usize = 32;

/// Characters in a token: [`TOKEN_BYTES`] in base64url without padding.
pub const TOKEN_LEN: usize = 43;

/// A fresh random token, base64url without padding ([`TOKEN_LEN`] characters).
pub fn generate() -> SecretString {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// `n` random bytes from the OS, for server keys.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    bytes
}

/// The stored form of a token: lowercase hex SHA-256 (64 characters).
pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// True when `raw` has the shape of a Warden token, so malformed input is
/// refused without a database round trip.
pub fn looks_valid(raw: &str) -> bool {
    raw.len() == TOKEN_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// True when `token` is the token whose stored hash is `stored_hash`. The
/// hashes are compared in constant time, so the time taken says nothing
/// about how much of a guess was right.
pub fn matches(token: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash(token).as_bytes(), stored_hash.as_bytes())
}

/// `a == b` in time that depends only on the lengths (which are not secret:
/// slices of different lengths are unequal at once).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Derives refresh-token successors. Its key never leaves the server.
#[derive(Clone)]
pub struct SuccessorKey(SecretSlice<u8>);

impl std::fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuccessorKey([redacted])")
    }
}

/// Domain separation: a successor can never equal an HMAC the same key
/// computes for another purpose.
const SUCCESSOR_LABEL: &[u8] = b"warden refresh successor v1\0";

impl SuccessorKey {
    /// Wraps key material (32 bytes or more; any length works).
    ///
    /// HMAC takes keys of any length: one longer than SHA-256's block is
    /// hashed first, a shorter one padded with zeros (RFC 2104, section 2).
    /// That is done here, once, into a block-sized key, so deriving a
    /// successor has no error path (`Hmac::new_from_slice` returns a
    /// `Result` that can only ever be `Ok`).
    pub fn new(key: Vec<u8>) -> Self {
        let key = SecretSlice::from(key);
        let mut block = Key::<Hmac<Sha256>>::default();
        if key.expose_secret().len() > block.len() {
            copy_into(&mut block, &Sha256::digest(key.expose_secret()));
        } else {
            copy_into(&mut block, key.expose_secret());
        }
        Self(SecretSlice::from(block.to_vec()))
    }

    /// The one successor `parent` can ever rotate into: a token of the same
    /// shape ([`looks_valid`]).
    pub fn successor(&self, parent: &str) -> SecretString {
        let mut block = Key::<Hmac<Sha256>>::default();
        copy_into(&mut block, self.0.expose_secret());
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&block);
        mac.update(SUCCESSOR_LABEL);
        mac.update(parent.as_bytes());
        SecretString::from(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// Copies `src` to the start of `dst`, as much as fits (the rest stays zero).
fn copy_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed token, and the key material `0, 1, 2, …` of a given length.
    const PARENT: &str = "q1w2e3r4t5y6u7i8o9p0-_ASDFGHJKLzxcvbnmQWERT";
    fn counting_key(len: u8) -> SuccessorKey {
        SuccessorKey::new((0..len).collect())
    }

    #[test]
    fn tokens_are_256_bits_url_safe_and_unique() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose_secret().len(), TOKEN_LEN);
        assert!(looks_valid(a.expose_secret()));
        assert_ne!(a.expose_secret(), b.expose_secret());
        let decoded = URL_SAFE_NO_PAD.decode(a.expose_secret()).unwrap();
        assert_eq!(decoded.len(), TOKEN_BYTES);
    }

    #[test]
    fn only_43_url_safe_characters_look_valid() {
        assert!(looks_valid(PARENT));
        assert!(!looks_valid(&PARENT[1..]));
        assert!(!looks_valid(&format!("{PARENT}A")));
        assert!(!looks_valid(&PARENT.replacen('q', "+", 1)));
        assert!(!looks_valid(&PARENT.replacen('q', "=", 1)));
        assert!(!looks_valid(""));
    }

    #[test]
    fn successors_are_deterministic_per_key_and_look_like_tokens() {
        let key = SuccessorKey::new(random_bytes(32));
        let other = SuccessorKey::new(random_bytes(32));
        let parent = generate();
        let s1 = key.successor(parent.expose_secret());
        let s2 = key.successor(parent.expose_secret());
        assert_eq!(s1.expose_secret(), s2.expose_secret());
        assert_ne!(
            s1.expose_secret(),
            other.successor(parent.expose_secret()).expose_secret()
        );
        assert!(looks_valid(s1.expose_secret()));
    }

    /// The values `auth::refresh` derived before this module replaced it
    /// (and Python's `hmac` agrees): tokens issued before stay valid.
    #[test]
    fn successors_match_fixed_vectors_for_short_block_and_long_keys() {
        for (len, expected) in [
            (32, "n65Dl8I3M4k12iRmLks0u40a226Mht8abbp8ypO8rec"),
            (64, "tvqLRaEkDtg8V6nnjhLDpkHhGrVzV7r3GSYneF8TJaY"),
            (100, "N82FiX3nxLcElQdoy83dTUDTjlE3r4d0Zecq5a-ddBU"),
        ] {
            assert_eq!(
                counting_key(len).successor(PARENT).expose_secret(),
                expected,
                "{len}-byte key"
            );
        }
    }

    /// Stored hashes from before still match.
    #[test]
    fn the_stored_hash_of_a_fixed_token_is_stable() {
        assert_eq!(
            hash(PARENT),
            "a900958432a76d47979e791d053dd98e56ee28d27920f50f422da8b80e9c1049"
        );
    }

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_compare_tells_equal_unequal_and_other_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"same bytes", b"same bytes"));
        assert!(!constant_time_eq(b"same bytes", b"same bytez"));
        assert!(!constant_time_eq(b"Same bytes", b"same bytes"));
        assert!(!constant_time_eq(b"same bytes", b"same byte"));
        assert!(!constant_time_eq(b"same", b"same bytes"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_token_matches_its_stored_hash_only() {
        let token = generate();
        let stored = hash(token.expose_secret());
        assert!(matches(token.expose_secret(), &stored));
        assert!(!matches(generate().expose_secret(), &stored));
        assert!(!matches(token.expose_secret(), &stored[..63]));
        assert!(!matches(token.expose_secret(), &stored.to_uppercase()));
    }
}
