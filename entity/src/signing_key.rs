//! `signing_keys`: access-token keys by `kid`, and when each signs, retires
//! or was revoked.

use sea_orm::entity::prelude::*;

/// Where a key's material lives.
pub const SOURCE_GENERATED: &str = "generated";
/// A `WARDEN_JWT_SECRET`: the row is only a record (empty `private_key`),
/// so its retirement and revocation reach every instance.
pub const SOURCE_ENV: &str = "env";

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// The secret (HS256) or PKCS#8 private key (EdDSA); never logged.
    /// Empty for a `WARDEN_JWT_SECRET` record.
    pub private_key: Vec<u8>,
    /// The Ed25519 public key; empty for HS256.
    pub public_key: Vec<u8>,
    /// Written `true` for a new key and `false` once it is retired or
    /// revoked, for people reading the table; Warden decides from the times.
    pub active: bool,
    pub created_at: DateTimeUtc,
    /// After this the key no longer verifies: set when a change of
    /// configuration retires it. A key replaced by a rotation retires one
    /// access-token lifetime after its successor's `signs_from` (derived).
    pub retire_after: Option<DateTimeUtc>,
    /// From when the key may sign (it is published in JWKS from creation);
    /// `None`: from `created_at`.
    pub signs_from: Option<DateTimeUtc>,
    /// Revoked: verifies nothing from this moment, on every instance.
    pub revoked_at: Option<DateTimeUtc>,
    /// [`SOURCE_GENERATED`] or [`SOURCE_ENV`].
    pub source: String,
}

impl Model {
    /// When the key starts signing.
    pub fn signing_from(&self) -> DateTimeUtc {
        self.signs_from.unwrap_or(self.created_at)
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("source", &self.source)
            .field("signs_from", &self.signs_from)
            .field("retire_after", &self.retire_after)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
