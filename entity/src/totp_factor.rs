//! `totp_factors`: an account's authenticator-app secret, sealed under a
//! server key (never stored in clear; `Debug` prints none of it).

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    /// One factor per account: a new enrollment replaces a pending one.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The secret, sealed (ChaCha20-Poly1305, bound to the account's id).
    pub secret_sealed: Vec<u8>,
    pub created_at: DateTimeUtc,
    /// `None`: pending (enrollment started, no code confirmed yet); the
    /// factor protects logins only once set.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The last step a code was accepted for: a code of this step or an
    /// earlier one is refused (replay). Raised by a conditional UPDATE, so
    /// of two concurrent uses of one code exactly one wins.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
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
