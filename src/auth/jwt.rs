//! Access tokens: short-lived JWTs, HS256 by default or EdDSA.
//!
//! Verification is strict on purpose. The token's `kid` picks the key and
//! the key pins the algorithm (a token that says `none`, or another
//! algorithm than its key's, is refused before any signature check); `exp`,
//! `iss`, `aud`, `sub` and `sid` are required; expiry is checked against the
//! injected clock with a 30 s leeway (the contract allows at most 60 s). The
//! session behind `sid` is checked by the caller on every request, so a
//! logout takes effect immediately. Keys are built once per key-ring load,
//! never per request.

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{decode, decode_header, encode, Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    auth::signing::KeyRing,
    domain::Role,
    error::{AppError, UnauthReason},
};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// How often an unknown `kid` may trigger a reload of the keys (another
/// instance may have rotated them a moment ago).
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

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
    /// How the session's login proved who the user is (RFC 8176 values:
    /// `pwd`, `otp`, `hwk`, `swk`, `user`, `mfa`). Tokens minted before
    /// Warden knew `amr` have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// Why a token did not verify, before it becomes a client-facing reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// Refused for this reason.
    Refused(UnauthReason),
    /// Signed with a key this server does not know (yet): worth reloading.
    UnknownKid,
}

/// Mints and verifies access tokens with the current [`KeyRing`].
pub struct AccessTokens {
    ring: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Option<Instant>>,
    hs256: Validation,
    eddsa: Validation,
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

fn validation(algorithm: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Expiry is checked against the injected clock in `verify`.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation
}

impl AccessTokens {
    /// A minter and verifier over `ring`.
    pub fn new(ring: KeyRing, issuer: &str, audience: &str, ttl: TimeDelta) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            last_reload: Mutex::new(None),
            hs256: validation(Algorithm::HS256, issuer, audience),
            eddsa: validation(Algorithm::EdDSA, issuer, audience),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps in freshly loaded keys.
    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// True at most once per second: whether an unknown `kid` may reload.
    pub fn may_reload(&self) -> bool {
        let mut last = self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < RELOAD_AT_MOST_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The JWKS document of the keys that verify at `now`.
    pub fn jwks(&self, now: DateTime<Utc>) -> serde_json::Value {
        self.ring().jwks(now)
    }

    /// The `kid` tokens minted at `now` are signed with, if any key signs.
    pub fn signing_kid(&self, now: DateTime<Utc>) -> Option<String> {
        self.ring().signer(now).map(|s| s.kid.clone())
    }

    /// Whether some key signs at `now`.
    pub fn can_sign(&self, now: DateTime<Utc>) -> bool {
        self.ring().signer(now).is_some()
    }

    /// The [`KeyRing::version`] of the keys in use.
    pub fn version(&self) -> u64 {
        self.ring().version
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
        amr: &str,
        now: DateTime<Utc>,
    ) -> Result<Minted, AppError> {
        let ring = self.ring();
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
            amr: amr.split_whitespace().map(str::to_owned).collect(),
        };
        // Fail closed: with every key revoked or retired, no token at all
        // rather than one under a key the operator withdrew.
        let signer = ring
            .signer(now)
            .ok_or_else(|| AppError::internal("no signing key signs now"))?;
        let mut header = Header::new(signer.algorithm);
        header.kid = Some(signer.kid.clone());
        let token = encode(&header, &claims, &signer.key).map_err(AppError::internal)?;
        Ok(Minted {
            token,
            expires_at,
            lifetime_secs: self.ttl.num_seconds(),
        })
    }

    /// Signature, `kid`, algorithm and claims; not expiry. With `now`, the
    /// key must not have retired by then.
    fn check(&self, token: &str, now: Option<DateTime<Utc>>) -> Result<Claims, VerifyError> {
        let invalid = VerifyError::Refused(UnauthReason::Invalid);
        let header = decode_header(token).map_err(|_| invalid)?;
        let kid = header.kid.ok_or(invalid)?;
        let ring = self.ring();
        let key = ring.key(&kid).ok_or(VerifyError::UnknownKid)?;
        // Retirement is checked here, on every request, not only when the
        // ring is reloaded: a retired key's tokens stop on time everywhere.
        if now.is_some_and(|now| !key.verifies_at(now)) {
            return Err(invalid);
        }
        // The key's algorithm, not the header's: decode refuses any mismatch.
        let validation = match key.algorithm {
            Algorithm::EdDSA => &self.eddsa,
            _ => &self.hs256,
        };
        decode::<Claims>(token, &key.key, validation)
            .map(|data| data.claims)
            .map_err(|_| invalid)
    }

    /// Checks everything but expiry: for `logout` with a lapsed token. Only
    /// called after [`verify`](Self::verify) said `Expired`, so the key had
    /// not retired; a revoked key is refused here too (it is not in the ring).
    pub fn verify_ignoring_expiry(&self, token: &str) -> Result<Claims, UnauthReason> {
        self.check(token, None).map_err(|e| match e {
            VerifyError::Refused(reason) => reason,
            VerifyError::UnknownKid => UnauthReason::Invalid,
        })
    }

    /// Checks signature, algorithm, claims and expiry. Says why a token is
    /// refused, so the client knows whether refreshing can help.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, VerifyError> {
        let claims = self.check(token, Some(now))?;
        let now = now.timestamp();
        if claims.iat > now + LEEWAY_SECS {
            return Err(VerifyError::Refused(UnauthReason::Invalid));
        }
        if claims.exp + LEEWAY_SECS < now {
            return Err(VerifyError::Refused(UnauthReason::Expired));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    fn tokens(secret: &str) -> AccessTokens {
        let secret = secrecy::SecretString::from(secret.to_owned());
        let ring = KeyRing::build(
            &[],
            Some(&secret),
            crate::auth::signing::JwtAlgorithm::Hs256,
        )
        .expect("ring");
        AccessTokens::new(ring, "warden", "warden", TimeDelta::minutes(15))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_minted_token_verifies_with_all_its_claims() {
        let t = tokens("seven-seven-seven-seven-seven-77");
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let minted = t
            .mint(user, session, Role::Admin, "pwd otp mfa", now())
            .expect("minted");
        let claims = t.verify(&minted.token, now()).expect("valid");
        assert_eq!(
            (claims.sub, claims.sid, claims.role),
            (user, session, Role::Admin)
        );
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn expiry_follows_the_injected_clock_with_leeway() {
        let t = tokens("seven-seven-seven-seven-seven-77");
        let minted = t
            .mint(Uuid::new_v4(), Uuid::new_v4(), Role::User, "pwd", now())
            .expect("minted");
        assert!(t
            .verify(&minted.token, now() + TimeDelta::seconds(900 + LEEWAY_SECS))
            .is_ok());
        assert_eq!(
            t.verify(&minted.token, now() + TimeDelta::seconds(901 + LEEWAY_SECS)),
            Err(VerifyError::Refused(UnauthReason::Expired))
        );
    }

    #[test]
    fn another_key_or_a_none_algorithm_is_invalid() {
        let t = tokens("seven-seven-seven-seven-seven-77");
        let minted = t
            .mint(Uuid::new_v4(), Uuid::new_v4(), Role::User, "pwd", now())
            .expect("minted");
        assert_eq!(
            tokens("eight-eight-eight-eight-eight-88").verify(&minted.token, now()),
            Err(VerifyError::UnknownKid)
        );
        let payload = minted.token.split('.').nth(1).unwrap_or_default();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert_eq!(
            t.verify(&none, now()),
            Err(VerifyError::Refused(UnauthReason::Invalid))
        );
    }
}
