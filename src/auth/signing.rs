//! Access-token signing keys: which key signs, which keys verify, the JWKS
//! document, and rotation.
//!
//! Every token carries the `kid` of the key that signed it, and each key is
//! pinned to one algorithm: a token can only verify with the algorithm of
//! the key its `kid` names, so an `HS256` token cannot be "signed" with an
//! Ed25519 *public* key (the classic algorithm-confusion attack).
//!
//! Keys live in `signing_keys` (except a `WARDEN_JWT_SECRET`, which lives in
//! the environment). `warden keys rotate` adds a new active key; the old one
//! stops signing at once and keeps verifying until every token it signed has
//! expired (`retire_after` = rotation + access-token lifetime + leeway).

use std::collections::HashMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::{pkcs8::EncodePrivateKey, SigningKey};
use entity::signing_key;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    auth::{jwt::AccessTokens, refresh::random_bytes},
    config::Config,
    db::Db,
    error::AppError,
};

/// The signing algorithm, from `WARDEN_JWT_ALGORITHM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret: fastest; only Warden can verify.
    Hs256,
    /// Ed25519: anyone can verify with the public keys from JWKS.
    EdDsa,
}

impl JwtAlgorithm {
    /// The stored and configured name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn from_stored(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hs256" => Ok(Self::Hs256),
            "eddsa" | "ed25519" => Ok(Self::EdDsa),
            _ => Err(format!("`{s}` is not HS256 or EdDSA")),
        }
    }
}

/// A key that verifies, pinned to its algorithm.
pub struct VerifyingKey {
    /// The only algorithm this key accepts.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

/// The key that signs new tokens.
pub struct ActiveKey {
    /// Its id, written into every token header.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The key.
    pub key: EncodingKey,
}

/// Every key a server uses, built once per (re)load.
pub struct KeyRing {
    /// Signs new tokens.
    pub active: ActiveKey,
    /// Verify tokens, by `kid`.
    pub verifying: HashMap<String, VerifyingKey>,
    /// The JWKS document: the public keys still verifying.
    pub jwks: Value,
}

/// The `kid` of a secret from the environment: derived, so it is stable
/// across instances, and a hash, so it reveals nothing.
fn env_kid(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("hs256-{hex}")
}

/// A fresh random `kid`.
fn new_kid(algorithm: JwtAlgorithm) -> String {
    let prefix = if algorithm == JwtAlgorithm::EdDsa {
        "ed"
    } else {
        "hs"
    };
    format!("{prefix}-{}", URL_SAFE_NO_PAD.encode(random_bytes(9)))
}

impl KeyRing {
    /// Builds the ring from stored rows (already filtered to unretired keys)
    /// and the environment secret, signing with `algorithm`.
    pub fn build(
        rows: &[signing_key::Model],
        env_secret: Option<&SecretString>,
        algorithm: JwtAlgorithm,
    ) -> Result<Self, AppError> {
        let mut verifying = HashMap::new();
        let mut public = Vec::new();
        let mut active = None;
        if let Some(secret) = env_secret.filter(|_| algorithm == JwtAlgorithm::Hs256) {
            let kid = env_kid(secret.expose_secret());
            let bytes = secret.expose_secret().as_bytes();
            verifying.insert(
                kid.clone(),
                VerifyingKey {
                    algorithm: Algorithm::HS256,
                    key: DecodingKey::from_secret(bytes),
                },
            );
            active = Some(ActiveKey {
                kid,
                algorithm: Algorithm::HS256,
                key: EncodingKey::from_secret(bytes),
            });
        }
        for row in rows {
            let Some(alg) = JwtAlgorithm::from_stored(&row.algorithm) else {
                continue;
            };
            let (decoding, encoding) = match alg {
                JwtAlgorithm::Hs256 => (
                    DecodingKey::from_secret(&row.private_key),
                    EncodingKey::from_secret(&row.private_key),
                ),
                JwtAlgorithm::EdDsa => {
                    let x = URL_SAFE_NO_PAD.encode(&row.public_key);
                    public.push(json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": row.kid, "alg": "EdDSA", "use": "sig" }));
                    let decoding =
                        DecodingKey::from_ed_components(&x).map_err(AppError::internal)?;
                    (decoding, EncodingKey::from_ed_der(&row.private_key))
                }
            };
            verifying.insert(
                row.kid.clone(),
                VerifyingKey {
                    algorithm: alg.jwt(),
                    key: decoding,
                },
            );
            if row.active && alg == algorithm && active.is_none() {
                active = Some(ActiveKey {
                    kid: row.kid.clone(),
                    algorithm: alg.jwt(),
                    key: encoding,
                });
            }
        }
        let active = active.ok_or_else(|| {
            AppError::internal(format!("no active {} signing key", algorithm.name()))
        })?;
        Ok(Self {
            active,
            verifying,
            jwks: json!({ "keys": public }),
        })
    }
}

/// The key ring a server should use now: the environment secret, or the
/// stored keys (creating the first one of the configured algorithm).
pub async fn load_ring(db: &Db, config: &Config, now: DateTime<Utc>) -> Result<KeyRing, AppError> {
    let algorithm = config.jwt_algorithm;
    let from_env = algorithm == JwtAlgorithm::Hs256 && config.jwt_secret.is_some();
    if !from_env {
        ensure_active(db, algorithm, now).await?;
    }
    let rows = load(db, now).await?;
    KeyRing::build(&rows, config.jwt_secret.as_ref(), algorithm)
}

/// Reloads the ring into `tokens` (after a rotation by another process).
pub async fn reload(
    db: &Db,
    config: &Config,
    tokens: &AccessTokens,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    tokens.replace(load_ring(db, config, now).await?);
    Ok(())
}

/// A ring with one freshly generated key of `algorithm`, kept nowhere: for
/// benchmarks and tests that need keys without a database.
pub fn ephemeral(algorithm: JwtAlgorithm, now: DateTime<Utc>) -> Result<KeyRing, AppError> {
    let (private_key, public_key) = generate(algorithm)?;
    let row = signing_key::Model {
        kid: new_kid(algorithm),
        algorithm: algorithm.name().to_owned(),
        private_key,
        public_key,
        active: true,
        created_at: now,
        retire_after: None,
    };
    KeyRing::build(&[row], None, algorithm)
}

/// Generates key material for `algorithm`: (private, public).
fn generate(algorithm: JwtAlgorithm) -> Result<(Vec<u8>, Vec<u8>), AppError> {
    match algorithm {
        JwtAlgorithm::Hs256 => Ok((random_bytes(64), Vec::new())),
        JwtAlgorithm::EdDsa => {
            let seed: [u8; 32] = random_bytes(32)
                .try_into()
                .map_err(|_| AppError::internal("random seed of the wrong size"))?;
            let key = SigningKey::from_bytes(&seed);
            let der = key
                .to_pkcs8_der()
                .map_err(|e| AppError::internal(e.to_string()))?;
            Ok((
                der.as_bytes().to_vec(),
                key.verifying_key().to_bytes().to_vec(),
            ))
        }
    }
}

/// The keys that still verify at `now`.
pub async fn load(db: &Db, now: DateTime<Utc>) -> Result<Vec<signing_key::Model>, AppError> {
    Ok(signing_key::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(signing_key::Column::RetireAfter.is_null())
                .add(signing_key::Column::RetireAfter.gt(now)),
        )
        .all(db.read())
        .await?)
}

/// Makes sure an active key of `algorithm` exists, creating one on first
/// start. Runs in a write transaction (Postgres: under an advisory lock),
/// so instances starting together create exactly one.
pub async fn ensure_active(
    db: &Db,
    algorithm: JwtAlgorithm,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let txn = db.begin().await?;
    if !db.is_sqlite() {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7795434836001)")
            .await?;
    }
    let existing = signing_key::Entity::find()
        .filter(signing_key::Column::Active.eq(true))
        .filter(signing_key::Column::Algorithm.eq(algorithm.name()))
        .one(&txn)
        .await?;
    if existing.is_none() {
        insert_active(&txn, algorithm, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn insert_active<C: ConnectionTrait>(
    conn: &C,
    algorithm: JwtAlgorithm,
    now: DateTime<Utc>,
) -> Result<String, AppError> {
    let (private_key, public_key) = generate(algorithm)?;
    let kid = new_kid(algorithm);
    signing_key::Entity::insert(signing_key::ActiveModel {
        kid: Set(kid.clone()),
        algorithm: Set(algorithm.name().to_owned()),
        private_key: Set(private_key),
        public_key: Set(public_key),
        active: Set(true),
        created_at: Set(now),
        retire_after: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(kid)
}

/// `warden keys rotate`: a new active key of `algorithm`; every other
/// active key stops signing and retires after `grace` (the access-token
/// lifetime plus leeway, so the tokens it signed stay valid to their end).
pub async fn rotate(
    db: &Db,
    algorithm: JwtAlgorithm,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Result<String, AppError> {
    let txn = db.begin().await?;
    if !db.is_sqlite() {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7795434836001)")
            .await?;
    }
    signing_key::Entity::update_many()
        .col_expr(signing_key::Column::Active, Expr::value(false))
        .col_expr(signing_key::Column::RetireAfter, Expr::value(now + grace))
        .filter(signing_key::Column::Active.eq(true))
        .exec(&txn)
        .await?;
    let kid = insert_active(&txn, algorithm, now).await?;
    txn.commit().await?;
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, algorithm: JwtAlgorithm, active: bool) -> signing_key::Model {
        let (private_key, public_key) = generate(algorithm).expect("keys");
        signing_key::Model {
            kid: kid.into(),
            algorithm: algorithm.name().into(),
            private_key,
            public_key,
            active,
            created_at: crate::clock::Clock::system().now(),
            retire_after: None,
        }
    }

    #[test]
    fn the_ring_signs_with_the_active_key_of_the_configured_algorithm() {
        let rows = [
            row("old", JwtAlgorithm::EdDsa, false),
            row("new", JwtAlgorithm::EdDsa, true),
            row("hs", JwtAlgorithm::Hs256, true),
        ];
        let ring = KeyRing::build(&rows, None, JwtAlgorithm::EdDsa).expect("ring");
        assert_eq!(ring.active.kid, "new");
        assert_eq!(ring.verifying.len(), 3);
        let kids: Vec<&str> = ring.jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert_eq!(kids, ["old", "new"], "only public keys are published");
    }

    #[test]
    fn an_environment_secret_signs_hs256_under_a_derived_kid() {
        let secret = SecretString::from("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs".to_owned());
        let ring = KeyRing::build(&[], Some(&secret), JwtAlgorithm::Hs256).expect("ring");
        assert!(ring.active.kid.starts_with("hs256-"));
        assert!(!ring.active.kid.contains("k3P9"));
        assert_eq!(ring.jwks["keys"].as_array().map(Vec::len), Some(0));
        assert!(
            KeyRing::build(&[], None, JwtAlgorithm::Hs256).is_err(),
            "no key, no ring"
        );
    }
}
