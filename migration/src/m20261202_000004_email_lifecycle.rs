//! Account lifecycle over email: `users.email_verified_at`, and
//! `email_tokens`, the single-use tokens (with their 6-digit codes) that
//! verification, password-reset and email-change mails carry. Only keyed
//! hashes of a token and of its code are stored; the address a code was
//! sent to is kept as its pseudonym (a keyed hash), so a code can be looked
//! up by email without the table holding the address.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(timestamp_with_time_zone_null("email_verified_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("email_tokens")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(string_len("purpose", 16))
                    .col(string_len_uniq("token_hash", 64))
                    .col(string_len("code_hash", 64))
                    .col(string_len("email_key", 64))
                    .col(string_len_null("new_email", 320))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_tokens_user")
                            .from("email_tokens", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("idx_email_tokens_user", &["user_id", "purpose"][..]),
            ("idx_email_tokens_code", &["email_key", "purpose"][..]),
            ("idx_email_tokens_expires", &["expires_at"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("email_tokens");
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("email_tokens").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .drop_column("email_verified_at")
                    .to_owned(),
            )
            .await
    }
}
