//! Signing-key storage: the `signing_keys` rows every instance reads, and
//! the changes an operator makes to them (a change of configuration at
//! start-up, `warden keys rotate`, `warden keys revoke`), each audited in
//! the transaction that makes it.
//!
//! Instances learn about changes by polling ([`watch`]): once a second each
//! reads four small columns of this table (a handful of rows) and rebuilds
//! its key ring only when their digest changed. That is what bounds "a
//! revoked key stops verifying on every instance" to about a second, with
//! no broadcast channel to configure or lose. Measured (debug build, busy
//! 2-core machine): about 0.5 ms per poll on SQLite and 1 ms on Postgres
//! over loopback, one query per second per instance.

mod stored;

use chrono::{DateTime, TimeDelta, Utc};
use entity::signing_key::{self, SOURCE_ENV, SOURCE_GENERATED};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};
use serde_json::json;

use crate::{
    auth::{
        jwt::AccessTokens,
        signing::{
            env_kid, env_record, fingerprint, new_key, schedule, JwtAlgorithm, KeyRecord, KeyRing,
            PUBLISH_AHEAD, RETIRE_LEEWAY, WATCH_EVERY,
        },
    },
    clock::delta,
    clock::Clock,
    config::Config,
    db::Db,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
    state::AppState,
};

/// Advisory lock held (Postgres) while signing keys change, so instances
/// starting together and the CLI never interleave.
const KEYS_LOCK: i64 = 7_795_434_836_001;

/// How long a replaced key keeps verifying: the access-token lifetime plus
/// leeway, so every token it signed runs to its end.
pub fn grace(config: &Config) -> TimeDelta {
    delta(config.access_token_ttl) + RETIRE_LEEWAY
}

/// True when `WARDEN_JWT_SECRET` signs (HS256 with a secret set).
fn env_signs(config: &Config) -> bool {
    config.jwt_algorithm == JwtAlgorithm::Hs256 && config.jwt_secret.is_some()
}

async fn begin(db: &Db) -> Result<DatabaseTransaction, AppError> {
    let txn = db.begin().await?;
    if !db.is_sqlite() {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({KEYS_LOCK})"))
            .await?;
    }
    Ok(txn)
}

async fn all<C: ConnectionTrait>(conn: &C) -> Result<Vec<signing_key::Model>, AppError> {
    Ok(signing_key::Entity::find().all(conn).await?)
}

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

/// Makes sure the chain of generated `algorithm` keys has a key neither
/// revoked nor retired, creating one that signs from `now` if not.
async fn ensure_chain(
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
/// every instance within [`WATCH_EVERY`], and leaves JWKS; its private key
/// is wiped. If it is the key that signs, a new key of its algorithm
/// signs at once in its place (as `rotate --now`), so the servers are never
/// left without a signing key. The `WARDEN_JWT_SECRET` that signs cannot be
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
