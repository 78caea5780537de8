//! The bearer token: taken from `Authorization`, verified as Warden
//! verifies an HS256 access token from `WARDEN_JWT_SECRET`
//! (`src/auth/jwt.rs`, `src/http/graphql.rs`).
//!
//! The algorithm is pinned to HS256 (a token that says `none` or another
//! algorithm is refused); `exp`, `iss`, `aud` and `sub` are required, `iss`
//! and `aud` must be Warden's; the header's `kid` must be the one Warden
//! derives from the secret; every claim Warden's `Claims` has must be there
//! with its type (`sub`, `sid` and `jti` UUIDs, `role` `USER` or `ADMIN`,
//! `iat` and `exp` integers, `amr` a list of strings when present); `iat`
//! may be at most 30 s ahead, and `exp` is checked with a 30 s leeway,
//! after the signature: a genuine lapsed token is `EXPIRED`, anything else
//! `INVALID`. The key and the validation are built once.
//!
//! Warden reads the header once more (`decode_header`, to pick the key by
//! `kid` before the signature): with one key there is nothing to pick, so
//! the floor reads the `kid` from the header `decode` already parsed.

use hyper::header::HeaderValue;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Clock skew tolerated on `exp` and `iat`, in seconds (Warden's `LEEWAY_SECS`).
const LEEWAY_SECS: i64 = 30;

/// Why a request is not authenticated: Warden's `extensions.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization` header.
    Missing,
    /// Not a bearer token, forged, malformed, wrong issuer or audience.
    Invalid,
    /// Genuine, past `exp` plus the leeway.
    Expired,
    /// Genuine and current, but its session is not alive.
    Revoked,
}

/// Warden's roles, as its `Role` deserialises them from a token.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Role {
    User,
    Admin,
}

/// The claims of a Warden access token, with the types Warden's `Claims`
/// gives them: a token Warden refuses for its shape is refused here too.
/// Only `sub`, `sid`, `iat` and `exp` are used; the rest are parsed to be
/// checked, as Warden parses them.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Claims {
    iss: String,
    aud: String,
    sub: Uuid,
    sid: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
    jti: Uuid,
    #[serde(default)]
    amr: Vec<String>,
}

/// What a verified token names: the session to check and its user.
#[derive(Clone, Copy, Debug)]
pub struct Verified {
    pub session: Uuid,
    pub user: Uuid,
}

/// Verifies HS256 access tokens signed with one secret.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    kid: String,
}

impl Verifier {
    pub fn new(secret: &str, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry and `iat` are checked below, with Warden's leeway and order.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            kid: env_kid(secret),
        }
    }

    /// The session and user of the request's bearer token, `now` in Unix seconds.
    pub fn verify(
        &self,
        authorization: Option<&HeaderValue>,
        now: i64,
    ) -> Result<Verified, Refused> {
        let value = authorization.ok_or(Refused::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refused::Invalid)?;
        let data =
            decode::<Claims>(token, &self.key, &self.validation).map_err(|_| Refused::Invalid)?;
        // A token under another key: Warden knows no such `kid` (after a
        // reload at most once a second) and calls it invalid.
        if data.header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(Refused::Invalid);
        }
        let claims = data.claims;
        if claims.iat > now + LEEWAY_SECS {
            return Err(Refused::Invalid);
        }
        if claims.exp + LEEWAY_SECS < now {
            return Err(Refused::Expired);
        }
        Ok(Verified {
            session: claims.sid,
            user: claims.sub,
        })
    }
}

/// The `kid` Warden gives the key of `WARDEN_JWT_SECRET`: `hs256-` and the
/// first 8 bytes of the secret's SHA-256 in hex (`env_kid`).
fn env_kid(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("hs256-{hex}")
}
