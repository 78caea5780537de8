//! Accounts: the `users` table's use cases, one file each.
//!
//! - `register.rs`: `register` and what it reads ([`NewAccount`],
//!   [`parse_username`]), and the insert `warden admin create` shares;
//! - `password.rs`: `changePassword`, and [`refuse_breached`] for every flow
//!   that sets a password;
//! - `admin.rs`: the CLI's [`create_admin`] and [`set_role`], and the
//!   last-active-admin guard ([`lock_active_admins`], [`keep_an_admin`]);
//! - `delete.rs`: [`delete_account_data`], for `deleteUser` and `deleteAccount`;
//! - `lookup.rs`: [`find_by_email`], older spellings included;
//! - `sign_in.rs`: [`sign_in()`], the last step of a `register` or a login.
//!
//! `login` itself has its own room, [`crate::services::login`], which uses
//! this one.

mod admin;
mod delete;
mod lookup;
mod password;
mod register;
mod sign_in;

pub use admin::{create_admin, keep_an_admin, lock_active_admins, set_role};
pub use delete::{delete_account_data, escape_like};
pub use lookup::find_by_email;
pub use password::{
    change_password, check_current_password, refuse_breached, MAX_LOGIN_PASSWORD_BYTES,
};
pub use register::{parse_username, register, NewAccount, MAX_USERNAME_CHARS};
pub use sign_in::sign_in;
