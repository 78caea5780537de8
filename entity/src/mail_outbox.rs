//! `mail_outbox`: one outbound message, from enqueue until cleanup.
//! `sealed` holds the rendered message encrypted (it may carry a raw
//! token); it is erased (NULL) once the message is sent or given up.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What the message is, e.g. `verify-email`; a metric label.
    pub kind: String,
    /// The one envelope recipient.
    pub recipient: String,
    /// The message's `Message-ID` (without the angle brackets).
    pub message_id: String,
    /// Nonce then ciphertext of the RFC 5322 message; NULL once sent or given up.
    pub sealed: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
    /// Not tried before then.
    pub next_attempt_at: DateTimeUtc,
    pub attempts: i32,
    /// The class of the last failure (never its text: it may echo secrets).
    pub last_error: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    /// Set when the sender gave up.
    pub failed_at: Option<DateTimeUtc>,
    /// The sender that holds the message now, until `claim_until`.
    pub claim_owner: Option<Uuid>,
    pub claim_until: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailOutbox")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .field("sent_at", &self.sent_at)
            .field("failed_at", &self.failed_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
