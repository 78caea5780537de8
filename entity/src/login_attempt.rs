//! `login_attempts`: one lockout counter: of an email from every client, or
//! of an email from one client (an IP bucket, or a trusted device).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_attempts")]
pub struct Model {
    /// The counter's key (the column kept its first name): the email's
    /// pseudonym (a keyed hash, never the address) for the email's counter,
    /// `<pseudonym>|ip:<bucket>` or `<pseudonym>|device:<id>` for a client's.
    /// Kept whether or not an account has the email.
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
