//! Start-up reconciliation with the configuration: the keys of a source or
//! algorithm no longer configured retire after [`grace`], a configured
//! `WARDEN_JWT_SECRET` is stored, and a generated configuration gets the
//! first key of its chain ([`ensure_chain`], which [`reload`](super::reload)
//! also uses when nothing of this instance's configuration signs any more).

use chrono::{DateTime, Utc};
use entity::signing_key::{self, SOURCE_ENV, SOURCE_GENERATED};
use sea_orm::{
    sea_query::Expr, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde_json::json;

use super::{all, begin, env_signs, grace, stored};
use crate::{
    auth::signing::{env_kid, env_record, new_key, JwtAlgorithm, RETIRE_LEEWAY},
    clock::Clock,
    config::Config,
    db::Db,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
};

/// Makes sure the chain of generated `algorithm` keys has a key neither
/// revoked nor retired, creating one that signs from `now` if not.
pub(super) async fn ensure_chain(
    txn: &DatabaseTransaction,
    algorithm: JwtAlgorithm,
    now: DateTime<Utc>,
) -> Result<Option<String>, AppError> {
    let existing = signing_key::Entity::find()
        .filter(signing_key::Column::Source.eq(SOURCE_GENERATED))
        .filter(signing_key::Column::Algorithm.eq(algorithm.name()))
        .filter(signing_key::Column::RevokedAt.is_null())
        .filter(signing_key::Column::RetireAfter.is_null())
        .one(txn)
        .await?;
    if existing.is_some() {
        return Ok(None);
    }
    // The first key of a chain signs from a little before now: an instance
    // whose clock lags the one that made it must not find it "not yet
    // signing" (and refuse to start). Nothing of this chain signs earlier.
    let row = stored::row_of(new_key(algorithm, now, now - RETIRE_LEEWAY)?);
    let kid = row.kid.clone();
    signing_key::Entity::insert(row.into_active_model())
        .exec_without_returning(txn)
        .await?;
    Ok(Some(kid))
}

/// Start-up: when the configured source or algorithm differs from what
/// signed before (a `WARDEN_JWT_SECRET` set after a generated key, or
/// removed; EdDSA after HS256), every key of the old configuration gets
/// `retire_after` = now + [`grace`]: nobody is logged out by the change,
/// and the old keys stop verifying, on every instance, once their tokens
/// have expired. Creates the first key of a generated configuration.
pub async fn reconcile(
    db: &Db,
    config: &Config,
    clock: &Clock,
    meta: &RequestMeta,
) -> Result<(), AppError> {
    let txn = begin(db).await?;
    // The time is read holding the key lock, so instances starting together
    // see each other's keys in the order of their clocks.
    let now = clock.now();
    let rows = all(&txn).await?;
    let algorithm = config.jwt_algorithm;
    let env = config.jwt_secret.as_ref().filter(|_| env_signs(config));
    let env_kid = env.map(env_kid);
    if let (Some(secret), Some(kid)) = (env, &env_kid) {
        match rows.iter().find(|r| &r.kid == kid) {
            None => {
                let row = stored::row_of(env_record(secret, now));
                signing_key::Entity::insert(row.into_active_model())
                    .exec_without_returning(&txn)
                    .await?;
            }
            Some(r) if r.revoked_at.is_some() => {
                return Err(AppError::bad_input(
                    "WARDEN_JWT_SECRET",
                    format!("WARDEN_JWT_SECRET (key {kid}) was revoked; set a new secret"),
                ));
            }
            // Configured again after a switch away: it signs, so it
            // must not retire under the instances that sign with it.
            Some(r) if r.retire_after.is_some() => {
                signing_key::Entity::update_many()
                    .col_expr(
                        signing_key::Column::RetireAfter,
                        Expr::value(None::<DateTime<Utc>>),
                    )
                    .col_expr(signing_key::Column::Active, Expr::value(true))
                    .filter(signing_key::Column::Kid.eq(kid.as_str()))
                    .exec(&txn)
                    .await?;
            }
            Some(_) => {}
        }
    }
    let current = |r: &signing_key::Model| match &env_kid {
        Some(kid) => &r.kid == kid,
        None => r.source == SOURCE_GENERATED && r.algorithm == algorithm.name(),
    };
    let retired: Vec<String> = rows
        .iter()
        .filter(|r| !current(r) && r.retire_after.is_none() && r.revoked_at.is_none())
        .map(|r| r.kid.clone())
        .collect();
    if !retired.is_empty() {
        let retire_after = now + grace(config);
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetireAfter, Expr::value(retire_after))
            .col_expr(signing_key::Column::Active, Expr::value(false))
            .filter(signing_key::Column::Kid.is_in(retired.clone()))
            .exec(&txn)
            .await?;
        let source = if env.is_some() {
            SOURCE_ENV
        } else {
            SOURCE_GENERATED
        };
        let event = Event::new(AuditEventKind::SigningKeyRotated).detail(json!({
            "reason": "configuration",
            "algorithm": algorithm.name(),
            "source": source,
            "retired": retired,
            "retireAfter": retire_after,
        }));
        audit::record(&txn, now, meta, event).await?;
    }
    if env.is_none() {
        ensure_chain(&txn, algorithm, now).await?;
    }
    txn.commit().await?;
    Ok(())
}
