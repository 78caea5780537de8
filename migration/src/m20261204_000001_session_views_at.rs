//! `session_views` by time: cleanup deletes the markers past their minute
//! (`DELETE … WHERE at < ?`), which read the whole table without it. The
//! table holds one row per session and kind that read the audit log or the
//! accounts, so a busy admin API grows it; with the index a pass reads only
//! the rows it deletes (`tests/api/cleanup/plans.rs` checks the plan).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_session_views_at")
                    .table("session_views")
                    .col("at")
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_session_views_at")
                    .table("session_views")
                    .to_owned(),
            )
            .await
    }
}
