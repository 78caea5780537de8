//! A presented API key to its owner.
//!
//! The key's own bucket (`WARDEN_RATE_API_KEY`) is spent before anything
//! is looked up, so a flood with one key (leaked or made up) stops costing
//! database round trips once it is empty. A key whose shape or checksum is
//! wrong never gets here: [`PresentedKey::parse`] refused it.
//!
//! Recording use is sampled: `last_used_at` moves, and `API_KEY_USED` is
//! written, at most once an hour per key, by one conditional UPDATE that
//! only one request of the hour wins; the other requests write nothing.

use chrono::{DateTime, Duration, Utc};
use entity::{api_key, user};
use sea_orm::{sea_query::Expr, ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{
    auth::{api_key::PresentedKey, limiter::Rule},
    domain::{ApiKeyScope, AuditEventKind},
    error::{AppError, UnauthReason},
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::{AuthUser, KeyGrant},
        limits::{self, KeyFacts},
    },
    state::AppState,
};

/// How often a key's use is recorded, at most.
pub const USE_SAMPLE: Duration = Duration::hours(1);

/// The caller of a GraphQL request that presents `presented`: its owner,
/// within the key's scopes. A key with neither `USER` nor `ADMIN` (an
/// introspection key) may not run GraphQL operations: `FORBIDDEN`.
pub async fn caller(
    state: &AppState,
    meta: &RequestMeta,
    presented: &PresentedKey,
) -> Result<AuthUser, AppError> {
    let (user, key) = authenticate(state, meta, presented).await?;
    let scopes = ApiKeyScope::parse_stored(&key.scopes);
    if !scopes
        .iter()
        .any(|s| matches!(s, ApiKeyScope::User | ApiKeyScope::Admin))
    {
        return Err(AppError::Forbidden);
    }
    Ok(AuthUser::by_key(
        user,
        KeyGrant {
            key_id: key.id,
            scopes,
        },
    ))
}

/// The owner and row of a live key: `RATE_LIMITED` when the key's bucket
/// is empty, `UNAUTHENTICATED` (`INVALID`) for an unknown key, (`REVOKED`)
/// for a revoked or expired one.
pub async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    presented: &PresentedKey,
) -> Result<(user::Model, api_key::Model), AppError> {
    authenticate_under(state, meta, presented, Rule::ApiKey).await
}

/// [`authenticate`], spending `rule`'s bucket for the key (`api_key` for
/// GraphQL, `introspect_key` for `/oauth/introspect`).
#[tracing::instrument(skip_all)]
pub async fn authenticate_under(
    state: &AppState,
    meta: &RequestMeta,
    presented: &PresentedKey,
    rule: Rule,
) -> Result<(user::Model, api_key::Model), AppError> {
    let facts = KeyFacts::of(meta).with_api_key(presented);
    limits::enforce_rule(state, meta, rule, facts).await?;
    let now = state.clock.now();
    let Some((key, user)) = live(state, presented, now).await? else {
        return Err(AppError::Unauthenticated(UnauthReason::Revoked));
    };
    record_use(state, meta, &key, now).await?;
    Ok((user, key))
}

/// The row and owner of `presented` if it is live at `now`: `Ok(None)`
/// when revoked, expired or its owner is gone; `UNAUTHENTICATED`
/// (`INVALID`) when no such key was ever issued.
pub(super) async fn live(
    state: &AppState,
    presented: &PresentedKey,
    now: DateTime<Utc>,
) -> Result<Option<(api_key::Model, user::Model)>, AppError> {
    // On a SQLite file, read in place like the session check; else (or if
    // that read fails) one query through the pool.
    let found = match state.session_checks.api_key_in_place(presented.hash()) {
        Some(found) => found,
        None => {
            api_key::Entity::find()
                .filter(api_key::Column::SecretHash.eq(presented.hash()))
                .find_also_related(user::Entity)
                .one(state.db.read())
                .await?
        }
    };
    let Some((key, user)) = found else {
        return Err(AppError::Unauthenticated(UnauthReason::Invalid));
    };
    let ended = key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now);
    Ok(match user {
        // A disabled account acts through none of its keys.
        Some(user) if !ended && user.disabled_at.is_none() => Some((key, user)),
        _ => None,
    })
}

/// Moves `last_used_at` and writes `API_KEY_USED` if the key's last
/// recorded use is an hour old (or there is none).
async fn record_use(
    state: &AppState,
    meta: &RequestMeta,
    key: &api_key::Model,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let cutoff = now - USE_SAMPLE;
    if key.last_used_at.is_some_and(|at| at > cutoff) {
        return Ok(());
    }
    let txn = state.db.begin().await?;
    let updated = api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(key.id))
        .filter(
            Condition::any()
                .add(api_key::Column::LastUsedAt.is_null())
                .add(api_key::Column::LastUsedAt.lte(cutoff)),
        )
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1 {
        let event = Event::new(AuditEventKind::ApiKeyUsed)
            .user(key.user_id)
            .detail(json!({ "api_key_id": key.id, "prefix": key.prefix }));
        audit::record(&txn, now, meta, event).await?;
    }
    txn.commit().await?;
    Ok(())
}
