//! `refresh`: rotating a presented refresh token into its successor, and
//! what the client hears when that fails. The claim itself is
//! [`crate::services::rotation`]; a loser of the claim is judged in
//! `reuse.rs`. See the module docs of [`crate::services::sessions`].

use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

use super::{
    reuse::{replay, OnReuse, Replay},
    RevokeReason,
};
use crate::{
    auth::{limiter::Rule, opaque_token},
    clock::delta,
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        limits::{self, KeyFacts},
        rotation::{self, Claim, Outcome, Rotation},
        AuthOutcome,
    },
    state::AppState,
};

/// Records a refused refresh and returns the error the client sees.
async fn refuse(state: &AppState, meta: &RequestMeta, event: Event) -> AppError {
    if let Err(err) = audit::record(state.db.write(), state.clock.now(), meta, event).await {
        return err.into();
    }
    AppError::InvalidRefreshToken
}

/// Rotates `presented` into its successor. See the module docs.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: &AppState,
    meta: &RequestMeta,
    presented: Option<&str>,
) -> Result<AuthOutcome, AppError> {
    limits::enforce_rule(state, meta, Rule::RefreshIp, KeyFacts::of(meta)).await?;
    rotate(state, meta, presented, OnReuse::Revoke).await
}

/// [`refresh`] with the first of several candidates that rotates: the
/// refresh cookies of one request (a stale cookie at another path or
/// domain, or one planted by a sibling subdomain, travel beside the good
/// one). One unit of the rate limit for the request, whatever the count.
///
/// Reuse detection waits until every candidate was tried: a spent token
/// riding along beside a live one must not end the live one's session
/// (that would let anyone who can plant a cookie log a victim out with a
/// token the victim already rotated). Only when no candidate rotates is the
/// first spent one judged as usual, revoking its session — exactly what it
/// would have done alone. Unknown, expired and malformed candidates write
/// their `REFRESH_FAILED` row each, as they would alone.
#[tracing::instrument(skip_all, fields(candidates = candidates.len()))]
pub async fn refresh_any(
    state: &AppState,
    meta: &RequestMeta,
    candidates: &[String],
) -> Result<AuthOutcome, AppError> {
    limits::enforce_rule(state, meta, Rule::RefreshIp, KeyFacts::of(meta)).await?;
    let mut spent = None;
    for candidate in candidates {
        match rotate(state, meta, Some(candidate), OnReuse::Spare).await {
            Ok(outcome) => return Ok(outcome),
            Err(AppError::RefreshTokenReused) => {
                spent.get_or_insert(candidate);
            }
            Err(AppError::InvalidRefreshToken) => {}
            Err(other) => return Err(other),
        }
    }
    match spent {
        Some(candidate) => rotate(state, meta, Some(candidate), OnReuse::Revoke).await,
        None if candidates.is_empty() => rotate(state, meta, None, OnReuse::Revoke).await,
        None => Err(AppError::InvalidRefreshToken),
    }
}

async fn rotate(
    state: &AppState,
    meta: &RequestMeta,
    presented: Option<&str>,
    on_reuse: OnReuse,
) -> Result<AuthOutcome, AppError> {
    let failed = || Event::new(AuditEventKind::RefreshFailed);
    let Some(presented) = presented.filter(|t| opaque_token::looks_valid(t)) else {
        let reason = if presented.is_some() {
            "malformed"
        } else {
            "missing"
        };
        return Err(refuse(state, meta, failed().detail(json!({ "reason": reason }))).await);
    };
    let now = state.clock.now();
    let ttl = delta(state.config.refresh_token_ttl);
    let successor = state.successors.successor(presented);
    let refreshed = Event::new(AuditEventKind::TokenRefreshed);
    let rotation = Rotation {
        presented_hash: opaque_token::hash(presented),
        successor_id: Uuid::now_v7(),
        successor_hash: opaque_token::hash(successor.expose_secret()),
        successor_ttl: ttl,
        audit: audit::row(now, meta, &refreshed),
        now,
    };
    let (found, claim) = match rotation::run(&state.db, rotation).await? {
        Outcome::Unknown => {
            return Err(refuse(state, meta, failed().detail(json!({ "reason": "unknown" }))).await)
        }
        Outcome::Refused { presented, reason } => {
            let event = failed()
                .user(presented.user.id)
                .session(presented.session_id)
                .detail(json!({ "reason": reason }));
            return Err(refuse(state, meta, event).await);
        }
        Outcome::Tried { presented, claim } => (presented, claim),
    };
    let (refresh_expires_at, outcome) = match claim {
        Claim::Rotated => {
            audit::log(
                meta,
                &refreshed.user(found.user.id).session(found.session_id),
            );
            (found.successor_expires_at(now, ttl), "rotated")
        }
        // A logout committed between our read and our claim.
        Claim::SessionEnded => return Err(AppError::InvalidRefreshToken),
        Claim::Lost => {
            let txn = state.db.begin().await?;
            let replayed = replay(&txn, state, meta, &found, now, on_reuse).await?;
            // Committed either way: a revocation for reuse must stand
            // although the request fails.
            txn.commit().await?;
            match replayed {
                Replay::Grace { expires_at } => (expires_at, "retry"),
                Replay::Spared => return Err(AppError::RefreshTokenReused),
                Replay::Reused => {
                    state.metrics.reuse_detections.inc();
                    state
                        .metrics
                        .sessions_revoked
                        .with_label_values(&[RevokeReason::TokenReuse.as_str()])
                        .inc();
                    return Err(AppError::RefreshTokenReused);
                }
            }
        }
    };
    state.metrics.refreshes.with_label_values(&[outcome]).inc();
    let access = state.tokens.mint(
        found.user.id,
        found.session_id,
        Role::from_stored(&found.user.role),
        &found.session_amr,
        now,
    )?;
    Ok(AuthOutcome {
        session_id: found.session_id,
        user: found.user,
        access,
        refresh_token: successor,
        refresh_expires_at,
        device_token: None,
    })
}
