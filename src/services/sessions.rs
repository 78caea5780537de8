//! Sessions and refresh tokens: starting a session, rotating its refresh
//! token, catching replays, and ending sessions.
//!
//! # Rotation and reuse
//! Each `refresh` *claims* the presented token with one conditional UPDATE
//! (`… SET used_at = now WHERE id = ? AND used_at IS NULL`). Exactly one
//! caller can win that update, on SQLite and on Postgres, so concurrent
//! refreshes never fork a session. The winner's writes are in
//! [`crate::services::rotation`] (one statement on Postgres). A loser finds the token used and decides:
//! - within the reuse interval of the first use, with the successor still
//!   unused and the session alive: it gets the *same* successor (derived from
//!   the token, see [`crate::auth::opaque_token`]) — a retry or a second tab;
//! - otherwise the token was stolen or replayed late: the whole session is
//!   revoked and `REFRESH_TOKEN_REUSE_DETECTED` is written, and that
//!   transaction is committed before the request fails.

use chrono::{DateTime, Utc};
use entity::{refresh_token, session, user};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{jwt::Claims, limiter::Rule, opaque_token},
    clock::delta,
    db::FetchUnique,
    domain::{AuditEventKind, Role},
    error::{AppError, UnauthReason},
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        limits,
        rotation::{self, Claim, Outcome, Presented, Rotation},
        AuthOutcome,
    },
    state::AppState,
};

/// A caller whose access token verified and whose session is alive.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The account, as stored now (so a role change applies at once).
    pub user: user::Model,
    /// The session of the access token.
    pub session_id: Uuid,
}

impl AuthUser {
    /// The current role.
    pub fn role(&self) -> Role {
        Role::from_stored(&self.user.role)
    }
}

/// Why a session ended, as stored in `sessions.revoked_reason`.
#[derive(Clone, Copy, Debug)]
pub enum RevokeReason {
    /// `logout`.
    Logout,
    /// `logoutAllDevices`.
    LogoutAll,
    /// `logoutOtherDevices`.
    LogoutOthers,
    /// `revokeSession`.
    Revoked,
    /// `changePassword` ended the other sessions.
    PasswordChange,
    /// A refresh token was replayed.
    TokenReuse,
}

impl RevokeReason {
    /// The stored name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::LogoutOthers => "logout_others",
            Self::Revoked => "revoke_session",
            Self::PasswordChange => "password_change",
            Self::TokenReuse => "refresh_token_reuse",
        }
    }
}

/// A new session's first refresh token.
pub struct Started {
    /// The session.
    pub session_id: Uuid,
    /// Its first refresh token (only ever returned to the client).
    pub refresh_token: SecretString,
    /// When that token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Creates a session for `user_id` and its first refresh token, inside `txn`.
pub async fn start(
    txn: &DatabaseTransaction,
    state: &AppState,
    meta: &RequestMeta,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    let session_id = Uuid::now_v7();
    let session_expires = now + delta(state.config.session_max_age);
    session::Entity::insert(session::ActiveModel {
        id: Set(session_id),
        user_id: Set(user_id),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(session_expires),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        ip: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent.clone()),
    })
    .exec_without_returning(txn)
    .await?;
    let token = opaque_token::generate();
    let (row, expires) = token_row(state, session_id, session_expires, &token, now);
    refresh_token::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(Started {
        session_id,
        refresh_token: token,
        refresh_expires_at: expires,
    })
}

/// The row that stores the hash of a session's first `token`, and its
/// expiry (never past the session's).
fn token_row(
    state: &AppState,
    session_id: Uuid,
    session_expires: DateTime<Utc>,
    token: &SecretString,
    now: DateTime<Utc>,
) -> (refresh_token::ActiveModel, DateTime<Utc>) {
    let ttl = delta(state.config.refresh_token_ttl);
    let expires = rotation::token_expiry(now, ttl, session_expires);
    let hash = opaque_token::hash(token.expose_secret());
    let row = rotation::token_row(Uuid::now_v7(), session_id, hash, None, now, expires);
    (row, expires)
}

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
    limits::enforce(state, meta, Rule::RefreshIp, &limits::ip_key(meta)).await?;
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
    limits::enforce(state, meta, Rule::RefreshIp, &limits::ip_key(meta)).await?;
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

/// What a rotation does with a token that turns out to be reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnReuse {
    /// Revoke its session and audit it (the rule).
    Revoke,
    /// Write nothing and answer `REFRESH_TOKEN_REUSED`: the caller has
    /// other candidates to try first (see [`refresh_any`]).
    Spare,
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

enum Replay {
    /// A retry inside the grace interval: answer with the same successor.
    Grace { expires_at: DateTime<Utc> },
    /// Theft: the session is now revoked.
    Reused,
    /// Theft, but [`OnReuse::Spare`]: nothing was written.
    Spared,
}

/// A loser of the claim: a grace-period retry, or a replay to punish.
async fn replay(
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

/// Marks one session revoked; true when it was alive until now.
/// With `owner`, only a session of that user is touched: another user's
/// session id then behaves exactly like an unknown one.
pub async fn revoke<C: ConnectionTrait>(
    conn: &C,
    session_id: Uuid,
    owner: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(owner) = owner {
        update = update.filter(session::Column::UserId.eq(owner));
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// Ends the session `session_id` (if alive) and audits it. Idempotent.
async fn end_session(
    state: &AppState,
    meta: &RequestMeta,
    session_id: Uuid,
    user_id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let revoked = revoke(&txn, session_id, None, RevokeReason::Logout, now).await?;
    if revoked {
        audit::record(
            &txn,
            now,
            meta,
            Event::new(AuditEventKind::SessionRevoked)
                .user(user_id)
                .session(session_id)
                .detail(json!({ "reason": "logout" })),
        )
        .await?;
    }
    txn.commit().await?;
    if revoked {
        state
            .metrics
            .sessions_revoked
            .with_label_values(&[RevokeReason::Logout.as_str()])
            .inc();
    }
    Ok(())
}

/// `logout(refreshToken)`: ends that token's session. Always `true` for a
/// well-formed request, known token or not, so it is no oracle.
#[tracing::instrument(skip_all)]
pub async fn logout_by_refresh_token(
    state: &AppState,
    meta: &RequestMeta,
    presented: &str,
) -> Result<bool, AppError> {
    if !opaque_token::looks_valid(presented) {
        return Ok(true);
    }
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(opaque_token::hash(presented)))
        .find_also_related(session::Entity)
        .unique(state.db.read())
        .await?;
    if let Some((_, Some(session))) = found {
        end_session(state, meta, session.id, session.user_id).await?;
    }
    Ok(true)
}

/// `logout` with no argument: ends the session of the access token.
#[tracing::instrument(skip_all)]
pub async fn logout_by_access_token(
    state: &AppState,
    meta: &RequestMeta,
    claims: &Claims,
) -> Result<bool, AppError> {
    end_session(state, meta, claims.sid, claims.sub).await?;
    Ok(true)
}

/// Which of the caller's sessions a mass revocation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every session, the current one included (`logoutAllDevices`).
    All,
    /// Every session but the current one (`logoutOtherDevices`).
    Others,
}

/// `logoutAllDevices` and `logoutOtherDevices`: revokes the caller's live
/// sessions in `scope` and returns how many.
#[tracing::instrument(skip_all)]
pub async fn logout_many(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    scope: Scope,
) -> Result<u64, AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let reason = match scope {
        Scope::All => RevokeReason::LogoutAll,
        Scope::Others => RevokeReason::LogoutOthers,
    };
    let keep = (scope == Scope::Others).then_some(caller.session_id);
    let count = revoke_user_sessions(&txn, caller.user.id, keep, reason, now).await?;
    if scope == Scope::All {
        // "Log out everywhere" also ends every device's trust: a device
        // token that leaked with a session must not outlive it.
        super::trusted_devices::revoke_all(&txn, caller.user.id, now).await?;
    }
    let scope_name = if keep.is_some() { "others" } else { "all" };
    audit::record(
        &txn,
        now,
        meta,
        Event::new(AuditEventKind::AllSessionsRevoked)
            .user(caller.user.id)
            .session(caller.session_id)
            .detail(json!({ "count": count, "scope": scope_name })),
    )
    .await?;
    txn.commit().await?;
    state
        .metrics
        .sessions_revoked
        .with_label_values(&[reason.as_str()])
        .inc_by(count);
    Ok(count)
}

/// Revokes every live session of `user_id` except `keep`, inside the
/// caller's transaction; returns how many.
pub async fn revoke_user_sessions<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now));
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    Ok(update.exec(conn).await?.rows_affected)
}

/// Checks that the session behind verified `claims` is alive and loads its
/// user, on every authenticated request (batched with concurrent checks:
/// see [`crate::services::liveness`]).
pub async fn authenticate(state: &AppState, claims: &Claims) -> Result<AuthUser, AppError> {
    match state.session_checks.owner(claims.sid, claims.sub).await? {
        Some(user) => Ok(AuthUser {
            user,
            session_id: claims.sid,
        }),
        None => Err(AppError::Unauthenticated(UnauthReason::Revoked)),
    }
}
