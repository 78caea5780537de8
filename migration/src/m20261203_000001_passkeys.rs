//! Passkeys and how a session signed in.
//!
//! - `sessions.method` and `sessions.amr`: the sign-in method (`Session.method`)
//!   and the RFC 8176 values its access tokens carry in `amr`, kept so that a
//!   refreshed token says what the login said. Older sessions were password
//!   logins.
//! - `passkeys`: one WebAuthn credential each, with its account's random user
//!   handle (the same for every passkey of an account; never the email), the
//!   credential id (base64url, unique: one credential belongs to one
//!   account), the public credential as webauthn-rs serialises it (no secret:
//!   the private key never leaves the authenticator), its sign counter and
//!   backup flags.
//! - `mfa_tokens.trusted_device_id`: the trusted device whose login asked
//!   for the second factor, so that `completeLogin` counts its tries on
//!   that device (a distributed attack that closes the email to untrusted
//!   clients must not stop the owner's device at the second step).
//! - `webauthn_challenges`: the server-side state of a registration or
//!   authentication ceremony, found by its challenge, single use (a
//!   conditional UPDATE claims it), five minutes.

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
        // SQLite adds one column per ALTER.
        for column in [
            string_len("method", 32).default("PASSWORD").to_owned(),
            string_len("amr", 64).default("pwd").to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("sessions")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("mfa_tokens")
                    .add_column(uuid_null("trusted_device_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("passkeys")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(uuid("user_handle"))
                    .col(string_len_uniq("credential_id", 1400))
                    .col(string_len("name", 64))
                    .col(text("credential"))
                    .col(big_integer("sign_count"))
                    .col(boolean("backup_eligible"))
                    .col(boolean("backup_state"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .foreign_key(&mut owned_by_user("passkeys"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webauthn_challenges")
                    .if_not_exists()
                    .col(pk_uuid("id"))
                    .col(uuid_null("user_id"))
                    .col(string_len("purpose", 16))
                    .col(string_len_uniq("challenge", 128))
                    .col(text("state"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(&mut owned_by_user("webauthn_challenges"))
                    .to_owned(),
            )
            .await?;
        for (name, table, column) in [
            ("idx_passkeys_user", "passkeys", "user_id"),
            ("idx_passkeys_user_handle", "passkeys", "user_handle"),
            (
                "idx_webauthn_challenges_expires",
                "webauthn_challenges",
                "expires_at",
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webauthn_challenges", "passkeys"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("mfa_tokens")
                    .drop_column("trusted_device_id")
                    .to_owned(),
            )
            .await?;
        for column in ["amr", "method"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("sessions")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
