//! `email_tokens`: a single-use token, and its 6-digit code, that a
//! verification, password-reset or email-change mail carries. Only keyed
//! hashes are stored (see `Debug`, which prints neither).

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account the token acts on.
    pub user_id: Uuid,
    /// `verify`, `reset` or `change`.
    pub purpose: String,
    /// Lowercase hex SHA-256 of the link token.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Lowercase hex keyed hash of the code, bound to this row's id.
    pub code_hash: String,
    /// Pseudonym (keyed hash) of the address the mail went to: the lookup
    /// key of `email` + `code`.
    pub email_key: String,
    /// For an email change, the address the account moves to.
    pub new_email: Option<String>,
    /// Wrong codes presented; the code is dead at the limit.
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set once, when the token was used or a newer mail superseded it.
    pub used_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("attempts", &self.attempts)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
