//! Access-token signing keys, as a running server holds them: which key
//! signs now, which keys verify, and the JWKS document. No SQL and no
//! database types here: the rows come from [`crate::services::signing_keys`],
//! read through [`StoredKey`], and a new key is a [`KeyRecord`] the service
//! stores.
//!
//! Every token carries the `kid` of the key that signed it, and each key is
//! pinned to one algorithm: a token can only verify with the algorithm of
//! the key its `kid` names, so an `HS256` token cannot be "signed" with an
//! Ed25519 *public* key (the classic algorithm-confusion attack).
//!
//! A key's life is a matter of times, so every instance reaches the same
//! answer from the same rows without coordinating, and so the answer changes
//! on time even between reloads:
//! - it is published in JWKS from creation, and signs from `signs_from`
//!   (`warden keys rotate` sets that one JWKS cache age ahead, so a verifier
//!   that cached JWKS never meets an unknown `kid`);
//! - it signs until a newer key of its chain starts signing, and verifies
//!   for one access-token lifetime (plus leeway) after that ([`schedule`]);
//! - a change of source or algorithm retires it at an explicit
//!   `retire_after`, honoured at verification time;
//! - a revoked key is simply absent: it verifies nothing.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

mod record;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::error::AppError;

pub use record::{env_kid, env_record, new_key, new_kid, KeyRecord, KeySource, StoredKey};

/// How long verifiers may cache the JWKS document (its `Cache-Control:
/// max-age`).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// How often every instance looks for changed keys (a revocation, a
/// rotation): the bound on how long a revoked key can still verify here.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How far ahead of signing `warden keys rotate` publishes a key: the JWKS
/// cache age, plus two watch periods for every instance to have published
/// it (and for small clock differences between hosts).
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(JWKS_MAX_AGE.as_secs() + 2);

/// Leeway on top of the access-token lifetime before a replaced key stops
/// verifying: the 60 s the contract allows for clock skew.
pub const RETIRE_LEEWAY: TimeDelta = TimeDelta::seconds(60);

pub use crate::config::JwtAlgorithm;

/// The `jsonwebtoken` algorithm of a configured one.
fn jwt_algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// A key that verifies, pinned to its algorithm.
pub struct VerifyingKey {
    /// The only algorithm this key accepts.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
    /// From this moment the key verifies nothing; `None`: not scheduled.
    pub retire_at: Option<DateTime<Utc>>,
}

impl VerifyingKey {
    /// Whether the key still verifies at `now`.
    pub fn verifies_at(&self, now: DateTime<Utc>) -> bool {
        self.retire_at.is_none_or(|at| now < at)
    }
}

/// A key that may sign, and when.
pub struct Signer {
    /// Its id, written into every token header.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The key.
    pub key: EncodingKey,
    /// It signs from this moment (unless a newer signer has started).
    pub from: DateTime<Utc>,
    /// It signs nothing from this moment (it has retired).
    pub until: Option<DateTime<Utc>>,
}

/// Every key a server uses, built once per (re)load.
pub struct KeyRing {
    /// Keys that verify tokens (until their `retire_at`), by `kid`.
    pub verifying: HashMap<String, VerifyingKey>,
    /// Keys of the configured source and algorithm that may sign, newest
    /// `from` first.
    signers: Vec<Signer>,
    /// Public keys for JWKS, with when each retires.
    published: Vec<(Option<DateTime<Utc>>, Value)>,
    /// A digest of the rows this ring was built from (see [`fingerprint`]).
    pub version: u64,
}

/// The rows with the retirement that rotation implies written into
/// `retire_after`: in each chain of generated keys of one algorithm (those
/// neither revoked nor retired by a configuration change), a key stops
/// signing when the next one starts, and stops verifying `grace` (the
/// access-token lifetime plus leeway) later, once every token it signed has
/// expired. Deriving this instead of storing it means revoking a key that
/// was not signing yet hands the signing back to its predecessor.
pub fn schedule<K: StoredKey>(mut rows: Vec<K>, grace: TimeDelta) -> Vec<K> {
    let mut chain: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.source() == Some(KeySource::Generated)
                && r.revoked_at().is_none()
                && r.retire_after().is_none()
        })
        .map(|(i, _)| i)
        .collect();
    chain.sort_by_key(|&i| (rows[i].algorithm().to_owned(), rows[i].signing_from()));
    for pair in chain.windows(2) {
        let (older, newer) = (pair[0], pair[1]);
        if rows[older].algorithm() == rows[newer].algorithm() {
            let retire_after = rows[newer].signing_from() + grace;
            rows[older].set_retire_after(Some(retire_after));
        }
    }
    rows
}

/// A digest of what decides which keys sign and verify, so a watcher can
/// tell cheaply whether anything changed.
pub fn fingerprint<'a>(
    rows: impl IntoIterator<
        Item = (
            &'a str,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        ),
    >,
) -> u64 {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort();
    let mut hasher = DefaultHasher::new();
    rows.hash(&mut hasher);
    hasher.finish()
}

impl KeyRing {
    /// Builds the ring from stored keys (as [`schedule`] leaves them) and
    /// the environment secret, signing with `algorithm`. Revoked keys, and
    /// a revoked `WARDEN_JWT_SECRET`, are left out entirely.
    pub fn build(
        rows: &[KeyRecord],
        env_secret: Option<&SecretString>,
        algorithm: JwtAlgorithm,
    ) -> Result<Self, AppError> {
        let mut ring = Self {
            verifying: HashMap::new(),
            signers: Vec::new(),
            published: Vec::new(),
            version: 0,
        };
        if let Some(secret) = env_secret {
            ring.add_env_secret(rows, secret, algorithm);
        }
        for row in rows {
            if row.revoked_at.is_some() || row.source != KeySource::Generated {
                continue;
            }
            let Some(alg) = JwtAlgorithm::from_stored(&row.algorithm) else {
                continue;
            };
            // Never an HMAC key of no bytes (a wiped or damaged row).
            if row.private_key.is_empty() {
                continue;
            }
            let (decoding, encoding) = match alg {
                JwtAlgorithm::Hs256 => (
                    DecodingKey::from_secret(&row.private_key),
                    EncodingKey::from_secret(&row.private_key),
                ),
                JwtAlgorithm::EdDsa => {
                    let x = URL_SAFE_NO_PAD.encode(&row.public_key);
                    ring.published.push((
                        row.retire_after,
                        json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": row.kid, "alg": "EdDSA", "use": "sig" }),
                    ));
                    let decoding =
                        DecodingKey::from_ed_components(&x).map_err(AppError::internal)?;
                    (decoding, EncodingKey::from_ed_der(&row.private_key))
                }
            };
            ring.verifying.insert(
                row.kid.clone(),
                VerifyingKey {
                    algorithm: jwt_algorithm(alg),
                    key: decoding,
                    retire_at: row.retire_after,
                },
            );
            let env_signs = algorithm == JwtAlgorithm::Hs256 && env_secret.is_some();
            if alg == algorithm && !env_signs {
                ring.signers.push(Signer {
                    kid: row.kid.clone(),
                    algorithm: jwt_algorithm(alg),
                    key: encoding,
                    from: row.signing_from(),
                    until: row.retire_after,
                });
            }
        }
        ring.signers.sort_by_key(|s| std::cmp::Reverse(s.from));
        Ok(ring)
    }

    /// The environment secret verifies while it is configured to sign, or
    /// after a change of algorithm until its record's `retire_after`; a
    /// secret that never signed verifies nothing, and a revoked one neither
    /// verifies nor signs.
    fn add_env_secret(
        &mut self,
        rows: &[KeyRecord],
        secret: &SecretString,
        algorithm: JwtAlgorithm,
    ) {
        let kid = env_kid(secret);
        let record = rows
            .iter()
            .find(|r| r.kid == kid && r.source == KeySource::Env);
        let signs = algorithm == JwtAlgorithm::Hs256;
        let retire_at = match record {
            Some(r) if r.revoked_at.is_some() => return,
            Some(r) => r.retire_after,
            None if signs => None,
            None => return,
        };
        let bytes = secret.expose_secret().as_bytes();
        self.verifying.insert(
            kid.clone(),
            VerifyingKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(bytes),
                retire_at,
            },
        );
        if signs {
            self.signers.push(Signer {
                kid,
                algorithm: Algorithm::HS256,
                key: EncodingKey::from_secret(bytes),
                from: DateTime::<Utc>::MIN_UTC,
                until: retire_at,
            });
        }
    }

    /// Tags the ring with the [`fingerprint`] of its rows.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The key that signs at `now`: the newest that has started and not
    /// retired. `None` when every key was revoked or retired.
    pub fn signer(&self, now: DateTime<Utc>) -> Option<&Signer> {
        self.signers
            .iter()
            .find(|s| s.from <= now && s.until.is_none_or(|until| now < until))
    }

    /// The key `kid`, if it is known (it may have retired: see
    /// [`VerifyingKey::verifies_at`]).
    pub fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The JWKS document at `now`: the public keys that verify, including
    /// those that do not sign yet.
    pub fn jwks(&self, now: DateTime<Utc>) -> Value {
        let keys: Vec<&Value> = self
            .published
            .iter()
            .filter(|(retire_at, _)| retire_at.is_none_or(|at| now < at))
            .map(|(_, jwk)| jwk)
            .collect();
        json!({ "keys": keys })
    }
}

/// A ring with one freshly generated key of `algorithm`, kept nowhere: for
/// benchmarks and tests that need keys without a database.
pub fn ephemeral(algorithm: JwtAlgorithm, now: DateTime<Utc>) -> Result<KeyRing, AppError> {
    let row = new_key(algorithm, now, now)?;
    KeyRing::build(&[row], None, algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn row(kid: &str, algorithm: JwtAlgorithm, signs_from: i64) -> KeyRecord {
        let mut row = new_key(algorithm, at(signs_from), at(signs_from)).expect("keys");
        row.kid = kid.into();
        row
    }

    fn kids(ring: &KeyRing, now: DateTime<Utc>) -> Vec<String> {
        ring.jwks(now)["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    }

    const GRACE: TimeDelta = TimeDelta::seconds(960);

    #[test]
    fn a_rotated_key_is_published_at_once_and_signs_from_its_time() {
        let rows = schedule(
            vec![
                row("old", JwtAlgorithm::EdDsa, 0),
                row("new", JwtAlgorithm::EdDsa, 300),
                row("hs", JwtAlgorithm::Hs256, 0),
            ],
            GRACE,
        );
        let ring = KeyRing::build(&rows, None, JwtAlgorithm::EdDsa).expect("ring");
        assert_eq!(kids(&ring, at(1)), ["old", "new"], "only public keys");
        assert_eq!(ring.signer(at(299)).map(|s| s.kid.as_str()), Some("old"));
        assert_eq!(ring.signer(at(300)).map(|s| s.kid.as_str()), Some("new"));
        let old = ring.key("old").expect("known");
        assert!(old.verifies_at(at(300 + 959)) && !old.verifies_at(at(300 + 960)));
        assert_eq!(kids(&ring, at(300 + 960)), ["new"]);
        assert!(ring.key("hs").is_some_and(|k| k.verifies_at(at(10_000))));
    }

    #[test]
    fn revoking_a_key_that_does_not_sign_yet_hands_signing_back() {
        let mut rows = vec![
            row("old", JwtAlgorithm::Hs256, 0),
            row("new", JwtAlgorithm::Hs256, 300),
        ];
        rows[1].revoked_at = Some(at(10));
        let ring = KeyRing::build(&schedule(rows, GRACE), None, JwtAlgorithm::Hs256).expect("ring");
        assert!(ring.key("new").is_none(), "a revoked key is absent");
        assert_eq!(ring.signer(at(5000)).map(|s| s.kid.as_str()), Some("old"));
        assert!(ring.key("old").is_some_and(|k| k.verifies_at(at(5000))));
    }

    #[test]
    fn an_environment_secret_signs_hs256_under_a_derived_kid() {
        let secret = SecretString::from("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs".to_owned());
        let ring = KeyRing::build(&[], Some(&secret), JwtAlgorithm::Hs256).expect("ring");
        let signer = ring.signer(at(0)).expect("signs");
        assert!(signer.kid.starts_with("hs256-"));
        assert!(!signer.kid.contains("k3P9"));
        assert!(kids(&ring, at(0)).is_empty());
        let ring = KeyRing::build(&[], None, JwtAlgorithm::Hs256).expect("ring");
        assert!(ring.signer(at(0)).is_none(), "no key, nothing signs");
    }

    #[test]
    fn an_environment_secret_verifies_after_a_switch_only_until_its_record_retires() {
        let secret = SecretString::from("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs".to_owned());
        let mut record = env_record(&secret, at(0));
        let ed = row("ed", JwtAlgorithm::EdDsa, 0);
        let never = KeyRing::build(
            std::slice::from_ref(&ed),
            Some(&secret),
            JwtAlgorithm::EdDsa,
        )
        .expect("ring");
        assert!(
            never.key(&record.kid).is_none(),
            "a secret that never signed verifies nothing"
        );
        record.retire_after = Some(at(960));
        let rows = [ed.clone(), record.clone()];
        let ring = KeyRing::build(&rows, Some(&secret), JwtAlgorithm::EdDsa).expect("ring");
        let key = ring.key(&record.kid).expect("verifies for now");
        assert!(key.verifies_at(at(959)) && !key.verifies_at(at(960)));
        assert_eq!(ring.signer(at(1)).map(|s| s.kid.as_str()), Some("ed"));
        record.revoked_at = Some(at(5));
        let ring = KeyRing::build(&[ed, record.clone()], Some(&secret), JwtAlgorithm::Hs256)
            .expect("ring");
        assert!(ring.key(&record.kid).is_none() && ring.signer(at(6)).is_none());
    }
}
