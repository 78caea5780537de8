//! `session_views`: the minute of a session's last audited read of a kind
//! (see the entity). Before it, deciding whether a read of the audit log
//! or of the accounts was already audited this minute looked for a recent
//! row among the account's audit events: a walk over every event of the
//! account on SQLite, and over every event of the last minute on Postgres,
//! inside a transaction that held the session's row. One primary-key read
//! now answers it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("session_views")
                    .if_not_exists()
                    .col(uuid("session_id"))
                    .col(string_len("kind", 32))
                    .col(timestamp_with_time_zone("at"))
                    .primary_key(Index::create().col("session_id").col("kind"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("session_views").to_owned())
            .await
    }
}
