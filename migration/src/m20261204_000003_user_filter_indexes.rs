//! The admin `users` filters read the accounts they match through indexes
//! of their own, in id order (the page's order), instead of walking the
//! primary key until a page is found.
//!
//! Among a million accounts with a handful of administrators,
//! `users(filter: {role: ADMIN})` read the whole table in id order; so did
//! `disabled: true`, `mfaEnabled: true` and `emailVerified: false` when few
//! accounts are so (`tests/api/admin/search_plans.rs` checks the plans).
//! The value most accounts have (an ordinary, enabled, verified account)
//! needs no index: walking the primary key finds a page of them at once.
//!
//! - `idx_users_role_id (role, id)` replaces `idx_users_role (role)`, which
//!   served only the last-admin check (it counts the active
//!   administrators, as well served by this one).
//! - Partial indexes on the id: `idx_users_rare_disabled` (disabled
//!   accounts), `idx_users_rare_mfa` (a second factor on),
//!   `idx_users_rare_unverified` (an address not yet verified). Each holds
//!   only the accounts it names, so it costs nothing while they are few.
//!
//! Postgres builds them with no statement timeout (the migration's
//! transaction has the pool's). A build blocks writes to `users`, not reads,
//! for as long as it takes (under 2 s for all four over 1M accounts here);
//! dropping the old index blocks reads too, until the migrations commit, so
//! it comes last.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The indexes, the same on both stores.
const UP: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS idx_users_role_id ON users (role, id)",
    "CREATE INDEX IF NOT EXISTS idx_users_rare_disabled ON users (id) \
     WHERE disabled_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_users_rare_mfa ON users (id) \
     WHERE mfa_enabled_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_users_rare_unverified ON users (id) \
     WHERE email_verified_at IS NULL",
    "DROP INDEX IF EXISTS idx_users_role",
];

/// Back: the old index first, then the new ones go.
const DOWN: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS idx_users_role ON users (role)",
    "DROP INDEX IF EXISTS idx_users_role_id",
    "DROP INDEX IF EXISTS idx_users_rare_disabled",
    "DROP INDEX IF EXISTS idx_users_rare_mfa",
    "DROP INDEX IF EXISTS idx_users_rare_unverified",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        db.execute_unprepared("SET LOCAL statement_timeout = 0")
            .await?;
    }
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}
