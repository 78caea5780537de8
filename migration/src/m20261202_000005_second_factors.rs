//! Second factors: `users.mfa_enabled_at` (set in the transaction that
//! turns a factor on, cleared in the one that turns the last off, so
//! `User.mfaEnabled` and admin filters read one column), `totp_factors`
//! (one per account: the secret sealed under a server key, pending until
//! confirmed, and the last accepted step for replay refusal),
//! `recovery_codes` (keyed hashes, each used once) and `mfa_tokens` (the
//! single-use token between `login`'s password and `completeLogin`; only
//! its SHA-256 is stored).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn owned_by_user(table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_user"))
        .from(table, "user_id")
        .to("users", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(timestamp_with_time_zone_null("mfa_enabled_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("totp_factors")
                    .if_not_exists()
                    .col(pk_uuid("user_id"))
                    .col(blob("secret_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("confirmed_at"))
                    .col(big_integer_null("last_step"))
                    .foreign_key(&mut owned_by_user("totp_factors"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("recovery_codes")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len("code_hash", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(&mut owned_by_user("recovery_codes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("mfa_tokens")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len_uniq("token_hash", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(&mut owned_by_user("mfa_tokens"))
                    .to_owned(),
            )
            .await?;
        for (name, table, columns) in [
            (
                "idx_recovery_codes_user",
                "recovery_codes",
                &["user_id"][..],
            ),
            ("idx_mfa_tokens_user", "mfa_tokens", &["user_id"][..]),
            ("idx_mfa_tokens_expires", "mfa_tokens", &["expires_at"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(table);
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["mfa_tokens", "recovery_codes", "totp_factors"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .drop_column("mfa_enabled_at")
                    .to_owned(),
            )
            .await
    }
}
