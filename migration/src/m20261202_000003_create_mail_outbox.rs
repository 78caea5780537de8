//! The mail outbox: each message Warden sends is a row, written in the
//! transaction of the change it announces, and delivered after commit by
//! the sender task. The rendered message is sealed (AEAD under a server key)
//! and erased once sent or given up; the row then keeps only metadata until
//! cleanup purges it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("mail_outbox")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(string_len("kind", 64))
                    .col(string_len("recipient", 320))
                    .col(string_len("message_id", 255))
                    .col(blob_null("sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(integer("attempts").default(0))
                    .col(string_len_null("last_error", 64))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .col(timestamp_with_time_zone_null("failed_at"))
                    .col(uuid_null("claim_owner"))
                    .col(timestamp_with_time_zone_null("claim_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_due")
                    .table("mail_outbox")
                    .col("next_attempt_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("mail_outbox").to_owned())
            .await
    }
}
