//! A loser of the refresh claim: a retry inside the grace interval gets the
//! same successor; anything else is a replay, and its session is revoked.

use chrono::{DateTime, Utc};
use entity::{refresh_token, session};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde_json::json;

use super::{end::revoke, RevokeReason};
use crate::{
    clock::delta,
    db::FetchUnique,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        rotation::Presented,
    },
    state::AppState,
};

/// What a rotation does with a token that turns out to be reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnReuse {
    /// Revoke its session and audit it (the rule).
    Revoke,
    /// Write nothing and answer `REFRESH_TOKEN_REUSED`: the caller has
    /// other candidates to try first (see [`super::refresh_any`]).
    Spare,
}

/// How [`replay`] judged a loser of the claim.
pub(super) enum Replay {
    /// A retry inside the grace interval: answer with the same successor.
    Grace { expires_at: DateTime<Utc> },
    /// Theft: the session is now revoked.
    Reused,
    /// Theft, but [`OnReuse::Spare`]: nothing was written.
    Spared,
}

/// A loser of the claim: a grace-period retry, or a replay to punish.
pub(super) async fn replay(
    txn: &DatabaseTransaction,
    state: &AppState,
    meta: &RequestMeta,
    found: &Presented,
    now: DateTime<Utc>,
    on_reuse: OnReuse,
) -> Result<Replay, AppError> {
    let (token_id, session_id, user_id) = (found.token_id, found.session_id, found.user.id);
    let used_at = refresh_token::Entity::find_by_id(token_id)
        .unique(txn)
        .await?
        .and_then(|t| t.used_at);
    let child = refresh_token::Entity::find()
        .filter(refresh_token::Column::ParentId.eq(token_id))
        .one(txn)
        .await?;
    let live_session = session::Entity::find_by_id(session_id)
        .filter(session::Column::RevokedAt.is_null())
        .unique(txn)
        .await?
        .is_some();
    // Judged against the winner's `used_at`. Our `now` was read before we
    // lost the claim, so it may precede `used_at`: such a loser arrived
    // while the winner was rotating, which is "inside" any nonzero
    // interval (elapsed counts as zero) but never inside a zero one —
    // `0s` means no grace at all, whatever the order of the clock reads.
    let interval = delta(state.config.refresh_reuse_interval);
    let within = interval > chrono::TimeDelta::zero()
        && used_at.is_some_and(|used| (now - used).max(chrono::TimeDelta::zero()) < interval);
    if let (true, true, Some(child)) = (within, live_session, &child) {
        if child.used_at.is_none() {
            audit::record(
                txn,
                now,
                meta,
                Event::new(AuditEventKind::TokenRefreshed)
                    .user(user_id)
                    .session(session_id)
                    .detail(json!({ "retry": true })),
            )
            .await?;
            return Ok(Replay::Grace {
                expires_at: child.expires_at,
            });
        }
    }
    if !live_session {
        return Err(AppError::InvalidRefreshToken);
    }
    if on_reuse == OnReuse::Spare {
        return Ok(Replay::Spared);
    }
    revoke(txn, session_id, None, RevokeReason::TokenReuse, now).await?;
    audit::record(
        txn,
        now,
        meta,
        Event::new(AuditEventKind::RefreshTokenReuseDetected)
            .user(user_id)
            .session(session_id)
            .detail(json!({ "reason": if within { "successor_already_used" } else { "after_reuse_interval" } })),
    )
    .await?;
    Ok(Replay::Reused)
}
