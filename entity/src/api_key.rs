//! `api_keys`: an account's API keys. The key itself is never stored, only
//! its SHA-256 (`secret_hash`), which `Debug` redacts.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The owner's label for it.
    pub name: String,
    /// The key's first characters, shown to the owner.
    pub prefix: String,
    /// Lowercase hex SHA-256 of the key.
    #[sea_orm(unique)]
    pub secret_hash: String,
    /// Space-separated scopes: `USER`, `ADMIN`, `INTROSPECT`.
    pub scopes: String,
    pub created_at: DateTimeUtc,
    /// Updated at most once an hour.
    pub last_used_at: Option<DateTimeUtc>,
    /// None: the key does not expire.
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("api_key::Model")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("prefix", &self.prefix)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
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

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}
