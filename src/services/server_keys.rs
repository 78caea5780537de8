//! Storage of the server's key material other than token-signing keys
//! (those are [`crate::services::signing_keys`]): loaded, and created on
//! first start, once at start-up. The keys themselves, and what they do,
//! are mechanism and live in `auth/` ([`crate::auth::opaque_token::SuccessorKey`],
//! [`crate::auth::pseudonym::EmailPseudonyms`]).
//!
//! The refresh-successor key (and the email-pseudonym, outbox, TOTP-sealing and recovery-code keys) is generated
//! once and kept in `server_keys`: it must be the same on every instance,
//! and across restarts, for a replay to get the same successor anywhere. Creation is `INSERT … ON CONFLICT DO
//! NOTHING` then read back, so two instances starting together agree.

use entity::server_key;
use sea_orm::{sea_query::OnConflict, ActiveValue::Set, EntityTrait};

use crate::{
    auth::opaque_token::random_bytes,
    clock::Clock,
    db::{Db, FetchUnique},
    error::AppError,
};

const SUCCESSOR_PURPOSE: &str = "refresh-successor";
const PSEUDONYM_PURPOSE: &str = "email-pseudonym";
const OUTBOX_PURPOSE: &str = "mail-outbox";
const CODE_PURPOSE: &str = "email-code";
const TOTP_PURPOSE: &str = "totp-secret";
const RECOVERY_PURPOSE: &str = "recovery-code";

/// The key material a running server needs besides its signing keys.
pub struct ServerKeys {
    /// Key that derives refresh-token successors.
    pub successor: Vec<u8>,
    /// Key of the email pseudonyms that key lockout and rate-limit counters.
    pub pseudonym: Vec<u8>,
    /// Key that seals the bodies of unsent outbox rows.
    pub outbox: Vec<u8>,
    /// Key of the stored hashes of mailed 6-digit codes.
    pub code: Vec<u8>,
    /// Key that seals TOTP secrets at rest.
    pub totp: Vec<u8>,
    /// Key of the stored hashes of recovery codes.
    pub recovery: Vec<u8>,
}

impl ServerKeys {
    /// Loads (creating on first start) the stored keys.
    pub async fn load(db: &Db, clock: &Clock) -> Result<Self, AppError> {
        let successor = load_or_create(db, clock, SUCCESSOR_PURPOSE, 32).await?;
        let pseudonym = load_or_create(db, clock, PSEUDONYM_PURPOSE, 32).await?;
        let outbox = load_or_create(db, clock, OUTBOX_PURPOSE, 32).await?;
        let code = load_or_create(db, clock, CODE_PURPOSE, 32).await?;
        let totp = load_or_create(db, clock, TOTP_PURPOSE, 32).await?;
        let recovery = load_or_create(db, clock, RECOVERY_PURPOSE, 32).await?;
        Ok(Self {
            successor,
            pseudonym,
            outbox,
            code,
            totp,
            recovery,
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
        .unique(db.write())
        .await?
        .ok_or_else(|| AppError::internal(format!("server key {purpose} missing after insert")))?;
    Ok(stored.secret)
}
