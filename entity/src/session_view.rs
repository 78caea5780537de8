//! `session_views`: when a session last had a read of a kind that is
//! audited once a minute per session (`AUDIT_LOG_VIEWED`, `USERS_VIEWED`).
//! One row per session and kind, replaced in place; a row older than the
//! minute means nothing and is removed by cleanup. No foreign key: a
//! session deleted meanwhile leaves a row that cleanup removes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_views")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    /// The audit event kind (`AUDIT_LOG_VIEWED`, …).
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// When the audited read was written.
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
