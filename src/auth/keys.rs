//! Server key material, loaded once at start-up.
//!
//! With `WARDEN_JWT_SECRET` unset, a random 512-bit signing key is generated
//! the first time Warden starts and stored in `server_keys`, so restarts and
//! other instances on the same database keep accepting the tokens already
//! issued. The refresh-successor key is always kept there: it must be the
//! same on every instance for a replay to get the same successor anywhere.
//! Creation is `INSERT … ON CONFLICT DO NOTHING` then read back, so two
//! instances starting together agree on one key.

use entity::server_key;
use sea_orm::{sea_query::OnConflict, ActiveValue::Set, EntityTrait};
use secrecy::{ExposeSecret, SecretSlice};

use crate::{auth::refresh::random_bytes, clock::Clock, config::Config, db::Db, error::AppError};

const JWT_PURPOSE: &str = "jwt-hs256";
const SUCCESSOR_PURPOSE: &str = "refresh-successor";

/// The key material a running server needs.
pub struct ServerKeys {
    /// HS256 signing and verification key.
    pub jwt: SecretSlice<u8>,
    /// Key that derives refresh-token successors.
    pub successor: Vec<u8>,
    /// True when the JWT key came from the database rather than the environment.
    pub jwt_generated: bool,
}

impl ServerKeys {
    /// Reads `WARDEN_JWT_SECRET`, or loads (creating on first start) the stored keys.
    pub async fn load(db: &Db, config: &Config, clock: &Clock) -> Result<Self, AppError> {
        let successor = load_or_create(db, clock, SUCCESSOR_PURPOSE, 32).await?;
        let (jwt, jwt_generated) = match &config.jwt_secret {
            Some(secret) => (secret.expose_secret().as_bytes().to_vec(), false),
            None => (load_or_create(db, clock, JWT_PURPOSE, 64).await?, true),
        };
        Ok(Self {
            jwt: SecretSlice::from(jwt),
            successor,
            jwt_generated,
        })
    }
}

async fn load_or_create(
    db: &Db,
    clock: &Clock,
    purpose: &str,
    len: usize,
) -> Result<Vec<u8>, AppError> {
    let candidate = server_key::ActiveModel {
        purpose: Set(purpose.to_owned()),
        secret: Set(random_bytes(len)),
        created_at: Set(clock.now()),
    };
    server_key::Entity::insert(candidate)
        .on_conflict(
            OnConflict::column(server_key::Column::Purpose)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db.write())
        .await?;
    let stored = server_key::Entity::find_by_id(purpose.to_owned())
        .one(db.write())
        .await?
        .ok_or_else(|| AppError::internal(format!("server key {purpose} missing after insert")))?;
    Ok(stored.secret)
}
