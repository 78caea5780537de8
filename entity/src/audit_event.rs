//! `audit_events`: append-only security log.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    /// The GraphQL `AuditEventKind` name, e.g. `LOGIN_FAILED`.
    pub kind: String,
    /// 0 INFO, 1 NOTICE, 2 WARNING, 3 CRITICAL: numeric so `minSeverity` is a comparison.
    pub severity: i16,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Ids, counts and reasons only; never a secret.
    pub detail: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
