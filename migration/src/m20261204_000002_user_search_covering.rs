//! The search indexes carry what `users(search:)` asks them, so that they
//! answer it alone, without reading the table.
//!
//! `users` first counts a prefix's matches in each index, up to a few
//! thousand entries, and when both are rare takes the page's ids from the
//! indexes (`services::admin::users::probe`). Before, the email's index held
//! only the email and the username's only `lower(username)`, and neither
//! database answers from an expression index unless its column is in it
//! too: every entry cost a table fetch (21 ms to count 5,001 usernames over
//! 1M accounts on Postgres, 8 ms to read the 2,155 matches of a middling
//! prefix), where the index alone takes about 1 ms for each.
//!
//! Postgres: both pattern indexes `INCLUDE` the id (and the username's the
//! username). Building them blocks writes to `users` (not reads) for as long
//! as the builds take: 1.3 s for both at 1M accounts here. SQLite has no INCLUDE: the username's index gets the username
//! and the id as more key columns (the same prefix order for lookups), and
//! the email a second index, `(email, id)`, beside its unique one.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements: &[&str] = match manager.get_database_backend() {
            // The new indexes are built first, under other names, while
            // reads of `users` go on (an index build blocks writes only);
            // the old ones are dropped and the new renamed last, so the
            // lock that blocks reads is held only from then to the commit.
            // A build over millions of accounts may outlast the pool's
            // statement timeout, which the migration's transaction has.
            sea_orm::DatabaseBackend::Postgres => &[
                "SET LOCAL statement_timeout = 0",
                "CREATE INDEX IF NOT EXISTS idx_users_email_prefix \
                 ON users (email text_pattern_ops) INCLUDE (id)",
                "CREATE INDEX IF NOT EXISTS idx_users_username_prefix \
                 ON users (lower(username) text_pattern_ops) INCLUDE (username, id)",
                "DROP INDEX IF EXISTS idx_users_email_pattern",
                "DROP INDEX IF EXISTS idx_users_username_pattern",
                "ALTER INDEX idx_users_email_prefix RENAME TO idx_users_email_pattern",
                "ALTER INDEX idx_users_username_prefix RENAME TO idx_users_username_pattern",
            ],
            _ => &[
                "DROP INDEX IF EXISTS idx_users_username_lower",
                "CREATE INDEX IF NOT EXISTS idx_users_username_lower \
                 ON users (lower(username), username, id)",
                "CREATE INDEX IF NOT EXISTS idx_users_email_search ON users (email, id)",
            ],
        };
        run(manager, statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements: &[&str] = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => &[
                "DROP INDEX IF EXISTS idx_users_email_pattern",
                "CREATE INDEX IF NOT EXISTS idx_users_email_pattern \
                 ON users (email text_pattern_ops)",
                "DROP INDEX IF EXISTS idx_users_username_pattern",
                "CREATE INDEX IF NOT EXISTS idx_users_username_pattern \
                 ON users (lower(username) text_pattern_ops)",
            ],
            _ => &[
                "DROP INDEX IF EXISTS idx_users_email_search",
                "DROP INDEX IF EXISTS idx_users_username_lower",
                "CREATE INDEX IF NOT EXISTS idx_users_username_lower ON users (lower(username))",
            ],
        };
        run(manager, statements).await
    }
}

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}
