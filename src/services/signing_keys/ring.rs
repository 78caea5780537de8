//! The key ring an instance signs and verifies with: built from the stored
//! rows at start-up ([`take_over`]) or for a CLI command ([`load_ring`]),
//! and rebuilt when the once-a-second look at the table ([`watch`],
//! [`poll_once`]) sees that a key changed ([`reload`]).

use chrono::{DateTime, Utc};
use entity::signing_key;
use sea_orm::{EntityTrait, QuerySelect};

use super::{
    all, begin, env_signs, grace,
    reconcile::{ensure_chain, reconcile},
    stored,
};
use crate::{
    auth::{
        jwt::AccessTokens,
        signing::{fingerprint, schedule, KeyRecord, KeyRing, WATCH_EVERY},
    },
    clock::Clock,
    config::Config,
    db::Db,
    error::AppError,
    meta::RequestMeta,
    state::AppState,
};

fn version_of(rows: &[signing_key::Model]) -> u64 {
    fingerprint(
        rows.iter()
            .map(|r| (r.kid.as_str(), r.signs_from, r.retire_after, r.revoked_at)),
    )
}

fn ring_from(rows: Vec<signing_key::Model>, config: &Config) -> Result<KeyRing, AppError> {
    let version = version_of(&rows);
    let records: Vec<KeyRecord> = schedule(rows, grace(config))
        .into_iter()
        .filter_map(stored::record_of)
        .collect();
    Ok(
        KeyRing::build(&records, config.jwt_secret.as_ref(), config.jwt_algorithm)?
            .with_version(version),
    )
}

/// The ring the stored rows give, changing nothing: what a CLI command
/// builds its state with (its settings may differ from the servers', so it
/// must not act on them).
pub async fn load_ring(db: &Db, config: &Config) -> Result<KeyRing, AppError> {
    ring_from(all(db.read()).await?, config)
}

/// A server starting: records a change of configuration (see
/// [`reconcile`]) and loads the keys into `tokens`. Refuses to start when
/// nothing can sign.
pub async fn take_over(
    db: &Db,
    config: &Config,
    tokens: &AccessTokens,
    clock: &Clock,
) -> Result<(), AppError> {
    reconcile(db, config, clock, &RequestMeta::local("startup")).await?;
    // Read after `reconcile` waited for the key lock: an instance starting
    // beside this one may have made the first key, signing from its own
    // (later) clock read, while this one waited.
    let now = clock.now();
    tokens.replace(ring_from(all(db.write()).await?, config)?);
    if !tokens.can_sign(now) {
        return Err(AppError::bad_input(
            "WARDEN_JWT_SECRET",
            "no signing key can sign: the configured WARDEN_JWT_SECRET was revoked; set a new one",
        ));
    }
    Ok(())
}

/// Rebuilds `tokens`' ring from the stored rows. When nothing signs any
/// more (another instance started with another source or algorithm and
/// retired this one's keys: a rolling change of configuration), a fresh
/// key of this instance's configuration is created so logins keep working.
pub async fn reload(
    db: &Db,
    config: &Config,
    tokens: &AccessTokens,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let mut ring = ring_from(all(db.read()).await?, config)?;
    if ring.signer(now).is_none() && !env_signs(config) {
        let txn = begin(db).await?;
        if let Some(kid) = ensure_chain(&txn, config.jwt_algorithm, now).await? {
            tracing::warn!(
                kid,
                "no signing key of this instance's configuration was left; created one"
            );
        }
        txn.commit().await?;
        ring = ring_from(all(db.write()).await?, config)?;
    }
    if ring.signer(now).is_none() {
        tracing::error!("no signing key can sign: logins fail until WARDEN_JWT_SECRET is replaced");
    }
    tokens.replace(ring);
    Ok(())
}

/// One look at the table: reloads when a key was added, rotated, retired
/// or revoked since the ring was built. Returns whether it reloaded.
pub async fn poll_once(
    db: &Db,
    config: &Config,
    tokens: &AccessTokens,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    type Stamp = (
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let stamps: Vec<Stamp> = signing_key::Entity::find()
        .select_only()
        .columns([
            signing_key::Column::Kid,
            signing_key::Column::SignsFrom,
            signing_key::Column::RetireAfter,
            signing_key::Column::RevokedAt,
        ])
        .into_tuple()
        .all(db.read())
        .await?;
    let version = fingerprint(stamps.iter().map(|(k, a, b, c)| (k.as_str(), *a, *b, *c)));
    let healable = !tokens.can_sign(now) && !env_signs(config);
    if version == tokens.version() && !healable {
        return Ok(false);
    }
    reload(db, config, tokens, now).await?;
    Ok(true)
}

/// Polls every [`WATCH_EVERY`] for the life of the server. A failing
/// database is logged when it starts and stops failing, not every second.
pub async fn watch(state: AppState) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let now = state.clock.now();
        match poll_once(&state.db, &state.config, &state.tokens, now).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("signing keys readable again");
            }
            Ok(_) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "could not check signing keys; still using the last ones");
            }
            Err(_) => {}
        }
    }
}
