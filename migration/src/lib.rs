//! Warden's schema, as an ordered list of migrations.
//!
//! One change per file, named `mYYYYMMDD_NNNNNN_<what>.rs`. Migrations run at
//! start-up (`warden serve`) and with `warden migrate`; they are written with
//! sea-query so the same files serve SQLite and Postgres.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_users;
mod m20261123_000002_create_sessions;
mod m20261123_000003_create_refresh_tokens;
mod m20261123_000004_create_audit_events;
mod m20261123_000005_create_server_keys;
mod m20261123_000006_create_login_attempts;
mod m20261123_000007_create_signing_keys;
mod m20261202_000001_create_trusted_devices;
mod m20261202_000002_signing_key_lifecycle;
mod m20261202_000003_create_mail_outbox;
mod m20261202_000004_email_lifecycle;
mod m20261202_000005_second_factors;
mod m20261203_000001_passkeys;
mod m20261203_000002_admin;
mod m20261203_000003_api_keys;
mod m20261203_000004_session_views;
mod m20261203_000005_outbox_waiting;
mod m20261203_000006_cleanup_indexes;
mod m20261204_000001_session_views_at;
mod m20261204_000002_user_search_covering;
mod m20261204_000003_user_filter_indexes;

/// The list of every migration, in the order they apply.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_users::Migration),
            Box::new(m20261123_000002_create_sessions::Migration),
            Box::new(m20261123_000003_create_refresh_tokens::Migration),
            Box::new(m20261123_000004_create_audit_events::Migration),
            Box::new(m20261123_000005_create_server_keys::Migration),
            Box::new(m20261123_000006_create_login_attempts::Migration),
            Box::new(m20261123_000007_create_signing_keys::Migration),
            Box::new(m20261202_000001_create_trusted_devices::Migration),
            Box::new(m20261202_000002_signing_key_lifecycle::Migration),
            Box::new(m20261202_000003_create_mail_outbox::Migration),
            Box::new(m20261202_000004_email_lifecycle::Migration),
            Box::new(m20261202_000005_second_factors::Migration),
            Box::new(m20261203_000001_passkeys::Migration),
            Box::new(m20261203_000002_admin::Migration),
            Box::new(m20261203_000003_api_keys::Migration),
            Box::new(m20261203_000004_session_views::Migration),
            Box::new(m20261203_000005_outbox_waiting::Migration),
            Box::new(m20261203_000006_cleanup_indexes::Migration),
            Box::new(m20261204_000001_session_views_at::Migration),
            Box::new(m20261204_000002_user_search_covering::Migration),
            Box::new(m20261204_000003_user_filter_indexes::Migration),
        ]
    }
}
