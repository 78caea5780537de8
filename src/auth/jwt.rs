//! Access tokens: short-lived HS256 JWTs.
//!
//! Verification is strict on purpose. The algorithm is pinned to HS256 (a
//! token that says `none`, or another HMAC size, is refused before any
//! signature check); `exp`, `iss`, `aud`, `sub` and `sid` are required; expiry
//! is checked against the injected clock with a 30 s leeway (the contract
//! allows at most 60 s). The session behind `sid` is checked by the caller on
//! every request, so a logout takes effect immediately.

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::Role,
    error::{AppError, UnauthReason},
};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// The claims of a Warden access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: `WARDEN_ISSUER`.
    pub iss: String,
    /// Audience: `WARDEN_AUDIENCE`.
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id; checked against the database on every request.
    pub sid: Uuid,
    /// The user's role when the token was minted.
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique token id.
    pub jti: Uuid,
}

/// Mints and verifies access tokens. Keys are built once, not per request.
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: TimeDelta,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A freshly minted access token.
pub struct Minted {
    /// The compact JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: DateTime<Utc>,
    /// Seconds from issue to `exp`.
    pub lifetime_secs: i64,
}

impl AccessTokens {
    /// Builds the signer and verifier for `secret`.
    pub fn new(secret: &SecretSlice<u8>, issuer: &str, audience: &str, ttl: TimeDelta) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the injected clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            encoding: EncodingKey::from_secret(secret.expose_secret()),
            decoding: DecodingKey::from_secret(secret.expose_secret()),
            header: Header::new(Algorithm::HS256),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    /// How long a minted token lives.
    pub fn ttl(&self) -> TimeDelta {
        self.ttl
    }

    /// Mints a token for `user` in `session`, issued `now`.
    pub fn mint(
        &self,
        user: Uuid,
        session: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Minted, AppError> {
        let expires_at = now + self.ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user,
            sid: session,
            role,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: Uuid::new_v4(),
        };
        let token = encode(&self.header, &claims, &self.encoding).map_err(AppError::internal)?;
        Ok(Minted {
            token,
            expires_at,
            lifetime_secs: self.ttl.num_seconds(),
        })
    }

    /// Checks everything but expiry: for `logout` with a lapsed token.
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<Claims, UnauthReason> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| UnauthReason::Invalid)
    }

    /// Checks signature, algorithm, claims and expiry. Says why a token is
    /// refused, so the client knows whether refreshing can help.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, UnauthReason> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| UnauthReason::Invalid)?
            .claims;
        let now = now.timestamp();
        if claims.iat > now + LEEWAY_SECS {
            return Err(UnauthReason::Invalid);
        }
        if claims.exp + LEEWAY_SECS < now {
            return Err(UnauthReason::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    fn tokens(secret: &[u8]) -> AccessTokens {
        AccessTokens::new(
            &SecretSlice::from(secret.to_vec()),
            "warden",
            "warden",
            TimeDelta::minutes(15),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_minted_token_verifies_with_all_its_claims() {
        let t = tokens(&[7; 32]);
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let minted = t.mint(user, session, Role::Admin, now()).expect("minted");
        let claims = t.verify(&minted.token, now()).expect("valid");
        assert_eq!(
            (claims.sub, claims.sid, claims.role),
            (user, session, Role::Admin)
        );
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn expiry_follows_the_injected_clock_with_leeway() {
        let t = tokens(&[7; 32]);
        let minted = t
            .mint(Uuid::new_v4(), Uuid::new_v4(), Role::User, now())
            .expect("minted");
        assert!(t
            .verify(&minted.token, now() + TimeDelta::seconds(900 + LEEWAY_SECS))
            .is_ok());
        assert_eq!(
            t.verify(&minted.token, now() + TimeDelta::seconds(901 + LEEWAY_SECS)),
            Err(UnauthReason::Expired)
        );
    }

    #[test]
    fn another_key_or_a_none_algorithm_is_invalid() {
        let t = tokens(&[7; 32]);
        let minted = t
            .mint(Uuid::new_v4(), Uuid::new_v4(), Role::User, now())
            .expect("minted");
        assert_eq!(
            tokens(&[8; 32]).verify(&minted.token, now()),
            Err(UnauthReason::Invalid)
        );
        let payload = minted.token.split('.').nth(1).unwrap_or_default();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert_eq!(t.verify(&none, now()), Err(UnauthReason::Invalid));
    }
}
