//! `signing_keys`: access-token keys by `kid`.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// `HS256` or `EdDSA`.
    pub algorithm: String,
    /// The secret (HS256) or PKCS#8 private key (EdDSA); never logged.
    pub private_key: Vec<u8>,
    /// The Ed25519 public key; empty for HS256.
    pub public_key: Vec<u8>,
    /// The one key that signs new tokens.
    pub active: bool,
    pub created_at: DateTimeUtc,
    /// After this the key no longer verifies (set when it stops signing).
    pub retire_after: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
