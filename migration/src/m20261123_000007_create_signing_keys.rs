//! Access-token signing keys with ids (`kid`), so keys can rotate: the
//! active key signs; older keys keep verifying until `retire_after`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .if_not_exists()
                    .col(string_len("kid", 64).primary_key())
                    .col(string_len("algorithm", 16))
                    // HS256: the secret; EdDSA: the PKCS#8 private key.
                    .col(blob("private_key"))
                    // EdDSA: the 32-byte public key; empty for HS256.
                    .col(blob("public_key"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("retire_after"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("signing_keys").to_owned())
            .await
    }
}
