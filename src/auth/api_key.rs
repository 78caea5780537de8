//! API keys: long-lived bearer secrets for scripts and services, in a shape
//! secret scanners recognise.
//!
//! A key is `wdn_`, 43 random base62 characters (43 × log2 62 ≈ 256.03
//! bits from the OS), then 6 base62 characters of the CRC32 of the random
//! part (GitHub's token format, so a leaked key is recognisable and a typo
//! is refused here, before any database lookup). 53 characters in all.
//!
//! Only the key's SHA-256 (lowercase hex, [`opaque_token::hash`]) is
//! stored; its first [`PREFIX_LEN`] characters are kept in clear so the
//! owner can tell keys apart. The rate limiter keys a presented key's
//! bucket by a separate, domain-separated hash ([`PresentedKey::rate_key`]),
//! so Redis never holds the value the database is searched by.

use rand::{rngs::OsRng, TryRngCore};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::opaque_token;

/// What every key starts with.
pub const PREFIX: &str = "wdn_";

/// Random base62 characters in a key.
pub const RANDOM_LEN: usize = 43;

/// Base62 characters of the checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;

/// Characters in a whole key.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// Characters of a key shown to its owner (`wdn_` and 8 more).
pub const PREFIX_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the secret (shown once) and what is stored.
pub struct NewKey {
    /// The whole key, for the owner, once.
    pub secret: SecretString,
    /// Its stored hash.
    pub hash: String,
    /// Its first [`PREFIX_LEN`] characters.
    pub prefix: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A new random key.
pub fn generate() -> NewKey {
    let mut rng = OsRng.unwrap_err();
    let mut random = String::with_capacity(RANDOM_LEN);
    while random.len() < RANDOM_LEN {
        let mut byte = [0u8; 1];
        rand::RngCore::fill_bytes(&mut rng, &mut byte);
        // 62 × 4 = 248: rejecting bytes from 248 up keeps every character
        // equally likely.
        if byte[0] < 248 {
            random.push(char::from(BASE62[usize::from(byte[0] % 62)]));
        }
    }
    let key = format!("{PREFIX}{random}{}", checksum(&random));
    NewKey {
        hash: opaque_token::hash(&key),
        prefix: key[..PREFIX_LEN].to_owned(),
        secret: SecretString::from(key),
    }
}

/// The base62 CRC32 of a key's random part, left-padded with `0`.
fn checksum(random: &str) -> String {
    let mut n = crc32(random.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// True when `raw` starts like an API key (and so is not a JWT): the
/// `Authorization` header is read as a key from here on.
pub fn is_api_key(raw: &str) -> bool {
    raw.starts_with(PREFIX)
}

/// A presented key whose shape and checksum are right; nothing about it
/// has been looked up yet.
#[derive(Clone)]
pub struct PresentedKey {
    hash: String,
    rate_key: String,
}

impl std::fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedKey([redacted])")
    }
}

/// Domain separation for the rate limiter's bucket key.
const RATE_LABEL: &[u8] = b"warden api key rate v1\0";

impl PresentedKey {
    /// Checks the shape and the checksum of `raw`: `None` for anything that
    /// cannot be a key Warden issued (no database lookup needed).
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(PREFIX)?;
        if rest.len() != RANDOM_LEN + CHECKSUM_LEN
            || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
        let (random, sum) = rest.split_at(RANDOM_LEN);
        let expected = checksum(random);
        if !opaque_token::constant_time_eq(expected.as_bytes(), sum.as_bytes()) {
            return None;
        }
        let digest = Sha256::new()
            .chain_update(RATE_LABEL)
            .chain_update(raw.as_bytes())
            .finalize();
        let rate_key = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            hash: opaque_token::hash(raw),
            rate_key,
        })
    }

    /// The stored hash this key is found by.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The rate limiter's bucket key: 32 hex characters of a hash apart
    /// from [`hash`](Self::hash).
    pub fn rate_key(&self) -> &str {
        &self.rate_key
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_generated_key_has_the_documented_shape_and_parses() {
        let key = generate();
        let secret = key.secret.expose_secret();
        assert_eq!(secret.len(), KEY_LEN);
        assert!(secret.starts_with("wdn_"));
        assert!(secret[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(key.prefix, &secret[..PREFIX_LEN]);
        let presented = PresentedKey::parse(secret).unwrap();
        assert_eq!(presented.hash(), key.hash);
        assert_eq!(key.hash, opaque_token::hash(secret));
        assert_eq!(presented.rate_key().len(), 32);
        assert_ne!(presented.rate_key(), &key.hash[..32]);
        assert!(!format!("{key:?}{presented:?}").contains(&secret[PREFIX_LEN..]));
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(
            generate().secret.expose_secret(),
            generate().secret.expose_secret()
        );
    }

    #[test]
    fn crc32_is_zlib_s() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(checksum(""), "000000");
        // 0xCBF43926 = 3421780262 in base 62, six digits.
        assert_eq!(checksum("123456789"), "3jZRME");
    }

    #[test]
    fn a_typo_or_a_wrong_shape_is_refused_before_any_lookup() {
        let key = generate();
        let secret = key.secret.expose_secret().to_owned();
        // One character changed in the random part: the checksum no longer matches.
        let mut typo = secret.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(PresentedKey::parse(&typo).is_none());
        // The checksum changed.
        let mut bad_sum = secret.clone().into_bytes();
        let last = bad_sum.len() - 1;
        bad_sum[last] = if bad_sum[last] == b'a' { b'b' } else { b'a' };
        assert!(PresentedKey::parse(&String::from_utf8(bad_sum).unwrap()).is_none());
        for bad in [
            "",
            "wdn_",
            &secret[..secret.len() - 1],
            &format!("{secret}x"),
            &secret.replacen("wdn_", "wdx_", 1),
            &secret.replacen("wdn_", "WDN_", 1),
            &format!("wdn_{}", "-".repeat(RANDOM_LEN + CHECKSUM_LEN)),
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }
}
