//! The audit log: recording events, inside the caller's transaction.
//! Reading them back, and the `auditLog` use case, are in
//! [`audit_log`](super::audit_log).
//!
//! Rows hold ids, kinds and reasons — never a password, token or hash.

use chrono::{DateTime, TimeDelta, Utc};
use entity::{audit_event, session_view};
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DbErr, EntityTrait,
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    db::Db,
    domain::{AuditEventKind, Severity},
    meta::RequestMeta,
};

/// One event to record.
#[derive(Debug)]
pub struct Event {
    /// What happened.
    pub kind: AuditEventKind,
    /// Whose account, when known.
    pub user_id: Option<Uuid>,
    /// Which session, when there is one.
    pub session_id: Option<Uuid>,
    /// Non-secret context: reasons, counts, the email of a failed login.
    pub detail: Option<Value>,
}

impl Event {
    /// An event of `kind` with nothing attached yet.
    pub fn new(kind: AuditEventKind) -> Self {
        Self {
            kind,
            user_id: None,
            session_id: None,
            detail: None,
        }
    }

    /// Names the user.
    pub fn user(mut self, id: Uuid) -> Self {
        self.user_id = Some(id);
        self
    }

    /// Names the session.
    pub fn session(mut self, id: Uuid) -> Self {
        self.session_id = Some(id);
        self
    }

    /// Names the session, if there is one (an API key's caller has none).
    pub fn session_if(mut self, id: Option<Uuid>) -> Self {
        self.session_id = id;
        self
    }

    /// Attaches detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// Writes `event` on `conn` — pass the transaction of the change it records —
/// and logs it.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    meta: &RequestMeta,
    event: Event,
) -> Result<(), DbErr> {
    log(meta, &event);
    audit_event::Entity::insert(row(now, meta, &event))
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// How long one session's reads of the log share one `AUDIT_LOG_VIEWED` row.
pub const VIEW_WINDOW: TimeDelta = TimeDelta::seconds(60);

/// Records `event` (an `AUDIT_LOG_VIEWED` or `USERS_VIEWED` of
/// `session_id`) unless that session already had one of its kind less than
/// [`VIEW_WINDOW`] ago; true when written.
///
/// Decided in the database, so it holds across instances, and by the
/// session's row in `session_views`, never by searching the audit log (a
/// walk over all of an account's events, or all of the last minute's,
/// that grew with the data). Most reads come within the minute of the
/// previous one: a primary-key read answers them and nothing is written.
/// Otherwise one upsert claims the minute — it inserts the row, or moves
/// an old row's time forward only while it is still old — and the audit
/// row is written in the same transaction. Of two concurrent claims one
/// changes the row and the other changes nothing (Postgres makes the
/// second wait for the first's commit and re-checks the condition; SQLite
/// runs one writer at a time), so one audit row is written per minute.
pub async fn record_view(
    db: &Db,
    now: DateTime<Utc>,
    meta: &RequestMeta,
    session_id: Uuid,
    event: Event,
) -> Result<bool, DbErr> {
    let kind = event.kind.as_str();
    let cutoff = now - VIEW_WINDOW;
    let last = session_view::Entity::find_by_id((session_id, kind.to_owned()))
        .one(db.read())
        .await?;
    if last.is_some_and(|view| view.at > cutoff) {
        return Ok(false);
    }
    let txn = db.begin().await?;
    let claimed = session_view::Entity::insert(session_view::ActiveModel {
        session_id: Set(session_id),
        kind: Set(kind.to_owned()),
        at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([session_view::Column::SessionId, session_view::Column::Kind])
            .update_column(session_view::Column::At)
            .action_and_where(
                Expr::col((session_view::Entity, session_view::Column::At)).lte(cutoff),
            )
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if claimed == 0 {
        return Ok(false);
    }
    record(&txn, now, meta, event).await?;
    txn.commit().await?;
    Ok(true)
}

/// The stored row of `event`, for a caller that writes it as part of a
/// larger statement (and calls [`log`] once it is written).
pub fn row(now: DateTime<Utc>, meta: &RequestMeta, event: &Event) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: NotSet,
        at: Set(now),
        kind: Set(event.kind.as_str().to_owned()),
        severity: Set(event.kind.severity().level()),
        user_id: Set(event.user_id),
        session_id: Set(event.session_id),
        ip: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent.clone()),
        detail: Set(event.detail.clone()),
    }
}

/// The tracing line of `event`, at a level that follows its severity.
pub fn log(meta: &RequestMeta, event: &Event) {
    let kind = event.kind.as_str();
    let user_id = event.user_id.map(|u| u.to_string());
    let session_id = event.session_id.map(|s| s.to_string());
    let ip = meta.ip_string();
    match event.kind.severity() {
        Severity::Info => {
            tracing::info!(target: "warden::audit", kind, user_id, session_id, ip, request_id = %meta.request_id, "security event")
        }
        Severity::Notice => {
            tracing::info!(target: "warden::audit", kind, user_id, session_id, ip, request_id = %meta.request_id, "security event")
        }
        Severity::Warning => {
            tracing::warn!(target: "warden::audit", kind, user_id, session_id, ip, request_id = %meta.request_id, "security event")
        }
        Severity::Critical => {
            tracing::error!(target: "warden::audit", kind, user_id, session_id, ip, request_id = %meta.request_id, "security event")
        }
    }
}
