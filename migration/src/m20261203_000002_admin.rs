//! Administration of accounts.
//!
//! - `users.disabled_at` and `users.disabled_reason`: an administrator's
//!   `disableUser` (NULL: the account may sign in). The reason is the
//!   administrator's note, shown to administrators only.
//! - Indexes for the admin `users` search: on Postgres, `email` and
//!   `lower(username)` with `text_pattern_ops`, so a prefix `LIKE` walks an
//!   index whatever the database's collation (the unique index on `email`
//!   uses the collation's order, which `LIKE 'ab%'` cannot use outside the C
//!   locale). On SQLite, an index on `lower(username)` (email prefixes use
//!   the unique index through a range, see `services::admin::users`).
//! - `idx_users_role`: the last-admin check counts the active admins.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one change per ALTER TABLE.
        for column in [
            timestamp_with_time_zone_null("disabled_at"),
            string_len_null("disabled_reason", 500),
        ] {
            manager
                .alter_table(Table::alter().table("users").add_column(column).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_users_role")
                    .table("users")
                    .col("role")
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_users_email_pattern \
                     ON users (email text_pattern_ops)",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_users_username_pattern \
                     ON users (lower(username) text_pattern_ops)",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_users_username_lower \
                     ON users (lower(username))",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in [
            "idx_users_email_pattern",
            "idx_users_username_pattern",
            "idx_users_username_lower",
            "idx_users_role",
        ] {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {index}"))
                .await?;
        }
        for column in ["disabled_reason", "disabled_at"] {
            manager
                .alter_table(Table::alter().table("users").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
