//! The outbox's index holds only the rows still waiting.
//!
//! `idx_mail_outbox_due` indexed `next_attempt_at` of every row, sent or
//! not: the sender's "due rows" walked past every row already sent (a
//! week of them, kept for metadata) and its depth count read the whole
//! table, after every `register` and every reset request. A partial index
//! of the rows neither sent nor given up serves both, and stays as small
//! as the queue.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The same statement on both backends (both have partial indexes).
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_mail_outbox_waiting ON mail_outbox (next_attempt_at) \
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_mail_outbox_due")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_mail_outbox_due ON mail_outbox (next_attempt_at)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS idx_mail_outbox_waiting")
            .await?;
        Ok(())
    }
}
