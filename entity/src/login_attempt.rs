//! `login_attempts`: the lockout counter of one normalized email.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_attempts")]
pub struct Model {
    /// Normalized email, whether or not an account has it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub email: String,
    /// Attempts counted in the current window (reserved before the password
    /// is checked, so concurrent guesses cannot overshoot the threshold).
    pub attempts: i32,
    pub window_started_at: DateTimeUtc,
    /// While in the future, no password is checked for this email.
    pub locked_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
