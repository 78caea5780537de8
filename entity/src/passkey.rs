//! `passkeys`: an account's WebAuthn credentials. Public data only (the
//! private key stays in the authenticator); `credential` is the
//! webauthn-rs `Passkey` as JSON, kept current after every use.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The account's random WebAuthn user handle (never its email).
    pub user_handle: Uuid,
    /// The credential id, base64url without padding.
    #[sea_orm(unique)]
    pub credential_id: String,
    /// The owner's label for it.
    pub name: String,
    /// The webauthn-rs `Passkey`, serialised.
    pub credential: String,
    /// The authenticator's last signature counter (0: it keeps none).
    pub sign_count: i64,
    /// The key may be synced to other devices.
    pub backup_eligible: bool,
    /// The key is synced (backed up) now.
    pub backup_state: bool,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
