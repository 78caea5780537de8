//! Signing keys get a lifecycle the operator controls: `signs_from` (a key
//! is published in JWKS before it signs), `revoked_at` (`warden keys revoke`:
//! stops verifying at once) and `source` (`generated`, or `env` for the
//! record of a `WARDEN_JWT_SECRET`, which holds no key material, so its
//! retirement and revocation reach every instance).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        let columns = [
            timestamp_with_time_zone_null("signs_from"),
            timestamp_with_time_zone_null("revoked_at"),
            string_len("source", 16).default("generated").take(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table("signing_keys")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["source", "revoked_at", "signs_from"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("signing_keys")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
