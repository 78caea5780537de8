//! `api_keys`: long-lived bearer keys for scripts and services, one row
//! each. Only the key's SHA-256 is stored (`secret_hash`, unique: the key is
//! found by it); `prefix` is its first characters in clear, for the owner
//! to tell keys apart. `scopes` is space-separated (`USER ADMIN
//! INTROSPECT`). `last_used_at` is updated at most once an hour per key.
//! A revoked key keeps its row (`revoked_at`) until its owner is deleted.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len("name", 64))
                    .col(string_len("prefix", 16))
                    .col(string_len_uniq("secret_hash", 64))
                    .col(string_len("scopes", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_user")
                            .from("api_keys", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_user")
                    .table("api_keys")
                    .col("user_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("api_keys").to_owned())
            .await
    }
}
