//! `users`: one row per account.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Trimmed and lowercase; unique.
    #[sea_orm(unique)]
    pub email: String,
    pub username: Option<String>,
    /// bcrypt hash (never logged: see the `Debug` impl).
    pub password_hash: String,
    /// `USER` or `ADMIN`.
    pub role: String,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    /// When the address was proven to reach the account's owner (a
    /// verification, a password reset or an email change); `None`: unverified.
    pub email_verified_at: Option<DateTimeUtc>,
    /// When a second factor was turned on; `None`: the password alone signs
    /// in. Written in the transaction that confirms or removes the factor.
    pub mfa_enabled_at: Option<DateTimeUtc>,
    /// When an administrator disabled the account (`disableUser`); `None`:
    /// it may sign in. Set in the transaction that ends its sessions.
    pub disabled_at: Option<DateTimeUtc>,
    /// The administrator's note on why, for administrators only.
    pub disabled_reason: Option<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The columns of `users` in the order of [`Column`](crate::user::Column), each prefixed `u.`:
/// the select list of hand-written SQL that reads a [`Model`](crate::user::Model) from `users u`
/// (Warden's one-statement refresh rotation on Postgres and its in-place
/// session check on SQLite). A macro rather than a `const` so that
/// `concat!` can build those statements as constants. Warden's tests fail
/// when `Column` has a column this list lacks.
#[macro_export]
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.username, u.password_hash, u.role, u.created_at, u.last_login_at, u.email_verified_at, u.mfa_enabled_at, u.disabled_at, u.disabled_reason"
    };
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Sessions,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
