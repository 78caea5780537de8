//! The operator's changes, each audited in the transaction that makes it:
//! `warden keys rotate` ([`rotate`]), `warden keys revoke` ([`revoke`]),
//! and what `warden keys list` shows ([`list`]).

use chrono::{DateTime, Utc};
use entity::signing_key::{self, SOURCE_ENV, SOURCE_GENERATED};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::json;

use super::{all, begin, env_signs, grace, stored};
use crate::{
    auth::signing::{env_kid, new_key, schedule, JwtAlgorithm, PUBLISH_AHEAD},
    clock::delta,
    config::Config,
    db::Db,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
};

/// What `warden keys rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// The new key.
    pub kid: String,
    /// When it starts signing (it is published at once).
    pub signs_from: DateTime<Utc>,
}

/// `warden keys rotate [--now]`: a new key of the configured algorithm,
/// published at once and signing [`PUBLISH_AHEAD`] later (at once with
/// `at_once`); the key it replaces keeps verifying for [`grace`] after that.
pub async fn rotate(
    db: &Db,
    config: &Config,
    now: DateTime<Utc>,
    at_once: bool,
    meta: &RequestMeta,
) -> Result<Rotated, AppError> {
    if env_signs(config) {
        return Err(AppError::bad_input(
            "WARDEN_JWT_SECRET",
            "the signing key is WARDEN_JWT_SECRET: set a new secret and restart every instance \
             (the old one keeps verifying for one access-token lifetime)",
        ));
    }
    let algorithm = config.jwt_algorithm;
    let signs_from = if at_once {
        now
    } else {
        now + delta(PUBLISH_AHEAD)
    };
    let txn = begin(db).await?;
    // A key of an algorithm the servers do not sign with would never sign,
    // yet verify until the next restart: most likely the command ran
    // without the servers' settings.
    let chain = signing_key::Entity::find()
        .filter(signing_key::Column::Source.eq(SOURCE_GENERATED))
        .filter(signing_key::Column::Algorithm.eq(algorithm.name()))
        .filter(signing_key::Column::RevokedAt.is_null())
        .filter(signing_key::Column::RetireAfter.is_null())
        .one(&txn)
        .await?;
    if chain.is_none() {
        return Err(AppError::bad_input(
            "WARDEN_JWT_ALGORITHM",
            format!(
                "no generated {} key signs here: run this with the servers' WARDEN_JWT_ALGORITHM \
                 and WARDEN_JWT_SECRET",
                algorithm.name()
            ),
        ));
    }
    let row = stored::row_of(new_key(algorithm, now, signs_from)?);
    let kid = row.kid.clone();
    signing_key::Entity::insert(row.into_active_model())
        .exec_without_returning(&txn)
        .await?;
    let event = Event::new(AuditEventKind::SigningKeyRotated).detail(json!({
        "reason": if at_once { "rotate --now" } else { "rotate" },
        "kid": kid,
        "algorithm": algorithm.name(),
        "signsFrom": signs_from,
    }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(Rotated { kid, signs_from })
}

/// What `warden keys revoke` did.
#[derive(Debug)]
pub struct Revoked {
    /// The key that signs in its place, when it was the one signing.
    pub replaced_by: Option<String>,
    /// It had been revoked before; nothing changed.
    pub already: bool,
}

/// The generated key of `rows`' `algorithm` chain that signs at `now`.
fn chain_signer<'a>(
    scheduled: &'a [signing_key::Model],
    algorithm: &str,
    now: DateTime<Utc>,
) -> Option<&'a signing_key::Model> {
    scheduled
        .iter()
        .filter(|r| {
            r.source == SOURCE_GENERATED
                && r.algorithm == algorithm
                && r.revoked_at.is_none()
                && r.signing_from() <= now
                && r.retire_after.is_none_or(|at| now < at)
        })
        .max_by_key(|r| r.signing_from())
}

/// `warden keys revoke <kid>`: the key verifies nothing from now on, on
/// every instance within [`WATCH_EVERY`](crate::auth::signing::WATCH_EVERY),
/// and leaves JWKS; its private key is wiped. If it is the key that signs,
/// a new key of its algorithm signs at once in its place (as `rotate
/// --now`), so the servers are never left without a signing key. The `WARDEN_JWT_SECRET` that signs cannot be
/// revoked: only replacing the variable replaces it.
pub async fn revoke(
    db: &Db,
    config: &Config,
    kid: &str,
    now: DateTime<Utc>,
    meta: &RequestMeta,
) -> Result<Revoked, AppError> {
    let txn = begin(db).await?;
    let rows = all(&txn).await?;
    let Some(row) = rows.iter().find(|r| r.kid == kid).cloned() else {
        return Err(AppError::bad_input(
            "kid",
            format!("there is no signing key {kid} (`warden keys list` shows them)"),
        ));
    };
    if row.revoked_at.is_some() {
        return Ok(Revoked {
            replaced_by: None,
            already: true,
        });
    }
    let configured = config
        .jwt_secret
        .as_ref()
        .filter(|_| env_signs(config))
        .map(env_kid);
    if row.source == SOURCE_ENV
        && (row.retire_after.is_none() || configured.as_deref() == Some(kid))
    {
        return Err(AppError::bad_input(
            "kid",
            format!(
                "{kid} is the WARDEN_JWT_SECRET the servers sign with: set a new secret and restart \
                 every instance, then revoke {kid}"
            ),
        ));
    }
    let scheduled = schedule(rows, grace(config));
    let signing = chain_signer(&scheduled, &row.algorithm, now).is_some_and(|s| s.kid == kid);
    let replaced_by = match (signing, JwtAlgorithm::from_stored(&row.algorithm)) {
        (true, Some(algorithm)) => {
            let fresh = stored::row_of(new_key(algorithm, now, now)?);
            let fresh_kid = fresh.kid.clone();
            signing_key::Entity::insert(fresh.into_active_model())
                .exec_without_returning(&txn)
                .await?;
            Some(fresh_kid)
        }
        _ => None,
    };
    let mut revoked = row.clone().into_active_model();
    revoked.revoked_at = Set(Some(now));
    revoked.active = Set(false);
    // Nothing will ever sign or verify with it again: keep no copy to leak.
    revoked.private_key = Set(Vec::new());
    signing_key::Entity::update(revoked).exec(&txn).await?;
    let event = Event::new(AuditEventKind::SigningKeyRevoked).detail(json!({
        "kid": kid,
        "algorithm": row.algorithm,
        "replacedBy": replaced_by,
    }));
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(Revoked {
        replaced_by,
        already: false,
    })
}

/// One line of `warden keys list`.
#[derive(Debug)]
pub struct KeyStatus {
    /// The key id.
    pub kid: String,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// `generated` or `env`.
    pub source: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it is in its life at the time asked, in words.
    pub state: String,
}

/// Every stored key and its state at `now`, oldest first.
pub async fn list(
    db: &Db,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<KeyStatus>, AppError> {
    let scheduled = schedule(all(db.read()).await?, grace(config));
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut out: Vec<KeyStatus> = scheduled
        .iter()
        .map(|r| {
            let signing = r.source == SOURCE_GENERATED
                && chain_signer(&scheduled, &r.algorithm, now).is_some_and(|s| s.kid == r.kid);
            let state = match (r.revoked_at, r.retire_after) {
                (Some(at), _) => format!("revoked {}", fmt(at)),
                (None, Some(at)) if at <= now => format!("retired {}", fmt(at)),
                _ if r.source == SOURCE_ENV && r.retire_after.is_none() => {
                    "signing (WARDEN_JWT_SECRET)".to_owned()
                }
                _ if signing => match r.retire_after {
                    Some(at) => format!("signing, verifies until {}", fmt(at)),
                    None => "signing".to_owned(),
                },
                _ if r.signing_from() > now => {
                    format!("published, signs from {}", fmt(r.signing_from()))
                }
                (None, Some(at)) => format!("verifies until {}", fmt(at)),
                (None, None) => "verifies".to_owned(),
            };
            KeyStatus {
                kid: r.kid.clone(),
                algorithm: r.algorithm.clone(),
                source: r.source.clone(),
                created_at: r.created_at,
                state,
            }
        })
        .collect();
    out.sort_by_key(|k| k.created_at);
    Ok(out)
}
