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
//!
//! The files: `ring` loads the key ring and watches the table for changes;
//! `reconcile` records a change of configuration at start-up; `operator`
//! makes the changes of `warden keys`; `stored` turns rows into key records
//! and back. What they share (the key lock, the transaction that takes it,
//! the grace a replaced key keeps verifying) is here.

mod operator;
mod reconcile;
mod ring;
mod stored;

use chrono::TimeDelta;
use entity::signing_key;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};

use crate::{
    auth::signing::{JwtAlgorithm, RETIRE_LEEWAY},
    clock::delta,
    config::Config,
    db::Db,
    error::AppError,
};

pub use operator::{list, revoke, rotate, KeyStatus, Revoked, Rotated};
pub use reconcile::reconcile;
pub use ring::{load_ring, poll_once, reload, take_over, watch};

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
