//! Indexes for cleanup's "what is due" questions.
//!
//! Each pass asked every table with a retention which rows are due, and
//! most of those questions had no index to answer them: the trusted
//! devices, the outbox, the email tokens, the API keys and the lockout
//! counters were read whole on every pass (every `WARDEN_CLEANUP_INTERVAL`),
//! even when nothing was due. The rows a pass looks for are the ones with a
//! time set (used, sent, given up, revoked), or past a time; partial indexes
//! of the rows whose time is set stay as small as what is, or soon will be,
//! due, and cost nothing on the rows without one.
//!
//! (The audit log's own question uses `idx_audit_events_at`, which exists.)

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index, table, column, partial): the same statements on both backends.
const INDEXES: &[(&str, &str, &str, bool)] = &[
    (
        "idx_login_attempts_window",
        "login_attempts",
        "window_started_at",
        false,
    ),
    (
        "idx_trusted_devices_expires",
        "trusted_devices",
        "expires_at",
        false,
    ),
    (
        "idx_trusted_devices_revoked",
        "trusted_devices",
        "revoked_at",
        true,
    ),
    ("idx_mail_outbox_sent", "mail_outbox", "sent_at", true),
    ("idx_mail_outbox_failed", "mail_outbox", "failed_at", true),
    ("idx_email_tokens_used", "email_tokens", "used_at", true),
    ("idx_api_keys_revoked", "api_keys", "revoked_at", true),
    ("idx_api_keys_expires", "api_keys", "expires_at", true),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for &(name, table, column, partial) in INDEXES {
            let only_set = if partial {
                format!(" WHERE {column} IS NOT NULL")
            } else {
                String::new()
            };
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {table} ({column}){only_set}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for &(name, ..) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
