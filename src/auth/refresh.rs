//! Refresh tokens: 256 random bits from the OS, URL-safe, stored only as SHA-256.
//!
//! A token's successor is not random but `HMAC-SHA256(successor key, token)`.
//! That lets a replay inside the grace interval be answered with the *same*
//! successor (a lost response or a second tab must not log the user out)
//! without ever storing a token: the server recomputes it from the token the
//! client presents. Without the server key nobody can compute it.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rand::{rngs::OsRng, RngCore, TryRngCore};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::{Digest, Sha256};

/// Bytes of randomness in a refresh token.
pub const TOKEN_BYTES: usize = 32;

/// A fresh random token, base64url without padding (43 characters).
pub fn random_token() -> SecretString {
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

/// The stored form of a token: lowercase hex SHA-256.
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

/// Derives successors. Its key never leaves the server.
#[derive(Clone)]
pub struct SuccessorKey(SecretSlice<u8>);

impl std::fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuccessorKey([redacted])")
    }
}

impl SuccessorKey {
    /// Wraps key material (32 bytes or more).
    pub fn new(key: Vec<u8>) -> Self {
        Self(SecretSlice::from(key))
    }

    /// The one successor `parent` can ever rotate into.
    pub fn successor(&self, parent: &str) -> SecretString {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"warden refresh successor v1\0");
        mac.update(parent.as_bytes());
        SecretString::from(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// HMAC accepts keys of any length, so `new_from_slice` cannot fail.
#[allow(clippy::unreachable)]
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC-SHA256 takes keys of any length")
}

/// True when `raw` has the shape of a Warden refresh token, so malformed
/// input is refused without a database round trip.
pub fn looks_valid(raw: &str) -> bool {
    raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_url_safe_and_unique() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.expose_secret().len(), 43);
        assert!(looks_valid(a.expose_secret()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn successors_are_deterministic_per_key_and_look_like_tokens() {
        let key = SuccessorKey::new(random_bytes(32));
        let other = SuccessorKey::new(random_bytes(32));
        let parent = random_token();
        let s1 = key.successor(parent.expose_secret());
        let s2 = key.successor(parent.expose_secret());
        assert_eq!(s1.expose_secret(), s2.expose_secret());
        assert_ne!(
            s1.expose_secret(),
            other.successor(parent.expose_secret()).expose_secret()
        );
        assert!(looks_valid(s1.expose_secret()));
    }

    /// A fixed token, and the key material `0, 1, 2, …` of a given length.
    const PARENT: &str = "q1w2e3r4t5y6u7i8o9p0-_ASDFGHJKLzxcvbnmQWERT";
    fn counting_key(len: u8) -> SuccessorKey {
        SuccessorKey::new((0..len).collect())
    }

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
}
