//! Reading the audit log back: the storage-level page ([`Query`], [`page`])
//! and the `auditLog` use case on top of it ([`read`]).
//!
//! [`read`] owns everything a client of `auditLog` can be answered or
//! refused for: the per-account rate limit, the page size, the cursor, who
//! may read whose events (an administrator anyone's, everyone else only
//! their own), the filter's bounds, and the one `AUDIT_LOG_VIEWED` row per
//! session and minute that records the read. The GraphQL resolver only
//! turns its arguments into an [`AuditQuery`] and the [`AuditPage`] into a
//! connection. The checks run in a fixed order (rate limit, `first`,
//! `after`, `userId`, scope, `since`, `until`), so a request with several
//! faults always gets the same error.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use super::audit::{record, record_view, Event};
use crate::{
    auth::limiter::Rule,
    domain::{AuditEventKind, Role, Severity},
    error::AppError,
    meta::RequestMeta,
    services::{
        auth_user::AuthUser,
        limits::{self, KeyFacts},
    },
    state::AppState,
};

/// Largest page `auditLog` returns; larger `first` values are capped.
pub const MAX_PAGE: i32 = 200;
/// Page size when `first` is omitted or null.
pub const DEFAULT_PAGE: i32 = 50;

/// What to read from the log.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Only these kinds (any, when empty).
    pub kinds: Vec<AuditEventKind>,
    /// Only this user's events.
    pub user_id: Option<Uuid>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// At or before.
    pub until: Option<DateTime<Utc>>,
    /// At least this severe.
    pub min_severity: Option<Severity>,
    /// Only events older than this id (the cursor).
    pub before_id: Option<i64>,
    /// Page size, already capped.
    pub limit: u64,
}

/// One page of events, newest first, and whether more follow.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    query: &Query,
) -> Result<(Vec<audit_event::Model>, bool), DbErr> {
    let mut select = audit_event::Entity::find();
    if !query.kinds.is_empty() {
        select =
            select.filter(audit_event::Column::Kind.is_in(query.kinds.iter().map(|k| k.as_str())));
    }
    if let Some(user) = query.user_id {
        select = select.filter(audit_event::Column::UserId.eq(user));
    }
    if let Some(since) = query.since {
        select = select.filter(audit_event::Column::At.gte(since));
    }
    if let Some(until) = query.until {
        select = select.filter(audit_event::Column::At.lte(until));
    }
    if let Some(min) = query.min_severity {
        select = select.filter(audit_event::Column::Severity.gte(min.level()));
    }
    if let Some(before) = query.before_id {
        select = select.filter(audit_event::Column::Id.lt(before));
    }
    let mut rows = select
        .order_by_desc(audit_event::Column::Id)
        .limit(query.limit + 1)
        .all(conn)
        .await?;
    let has_next = rows.len() as u64 > query.limit;
    rows.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
    Ok((rows, has_next))
}

/// An `auditLog` request as the client sent it, not yet checked: [`read`]
/// checks each part and names the argument that is wrong.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Page size; `None` means [`DEFAULT_PAGE`], past [`MAX_PAGE`] is
    /// capped, below 0 is refused (`first`).
    pub first: Option<i32>,
    /// The `end_cursor` of the previous page, to continue after (`after`).
    pub after: Option<String>,
    /// Only these kinds (any, when empty).
    pub kinds: Vec<AuditEventKind>,
    /// Only this account's events, as the client spelled its id (`userId`).
    pub user_id: Option<String>,
    /// Only events at or after this time (`since`).
    pub since: Option<DateTime<Utc>>,
    /// Only events at or before this time (`until`).
    pub until: Option<DateTime<Utc>>,
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
}

/// One event of a page and the cursor that continues after it.
#[derive(Debug)]
pub struct PagedEvent {
    /// Pass as `after` to continue from this event.
    pub cursor: String,
    /// The stored event.
    pub event: audit_event::Model,
}

/// A page of the log, newest first.
#[derive(Debug)]
pub struct AuditPage {
    /// The events of the page, each with its cursor.
    pub events: Vec<PagedEvent>,
    /// True when older events follow this page.
    pub has_next_page: bool,
    /// The cursor of the page's last event, if it has one.
    pub end_cursor: Option<String>,
}

/// `auditLog`: one page of the events `caller` may read, newest first.
///
/// Administrators read every account's events (or one account's, with
/// `user_id`); anyone else reads only their own, and asking for another
/// account's is `FORBIDDEN` and recorded as `ACCESS_DENIED`. Each read
/// draws on the account's `AuditLogUser` bucket before any other work, and
/// is recorded as `AUDIT_LOG_VIEWED`, at most once per session and
/// [`VIEW_WINDOW`](super::audit::VIEW_WINDOW).
pub async fn read(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    query: AuditQuery,
) -> Result<AuditPage, AppError> {
    // Per account, before any other work: each read is a query, and every
    // token of the account (every session) draws on the same bucket.
    let facts = KeyFacts::of(meta).with_user(caller.user.id);
    limits::enforce_rule(state, meta, Rule::AuditLogUser, facts).await?;
    let first = query.first.unwrap_or(DEFAULT_PAGE);
    if first < 0 {
        return Err(AppError::bad_input(
            "first",
            "first must be between 0 and 200",
        ));
    }
    let before_id = query.after.as_deref().map(decode_cursor).transpose()?;
    let requested_user = query
        .user_id
        .as_deref()
        .map(|id| parse_id(id, "userId"))
        .transpose()?;
    let is_admin = caller.role() == Role::Admin;
    if !is_admin && requested_user.is_some_and(|u| u != caller.user.id) {
        let event = Event::new(AuditEventKind::AccessDenied)
            .user(caller.user.id)
            .session_if(caller.session_id())
            .detail(json!({ "operation": "auditLog", "reason": "other_users_events" }));
        record(state.db.write(), state.clock.now(), meta, event).await?;
        return Err(AppError::Forbidden);
    }
    let stored = Query {
        kinds: query.kinds,
        user_id: if is_admin {
            requested_user
        } else {
            Some(caller.user.id)
        },
        since: storable_time("since", query.since)?,
        until: storable_time("until", query.until)?,
        min_severity: query.min_severity,
        before_id,
        limit: u64::try_from(first.min(MAX_PAGE)).unwrap_or(0),
    };
    let (rows, has_next_page) = page(state.db.read(), &stored).await?;
    let viewed = Event::new(AuditEventKind::AuditLogViewed)
        .user(caller.user.id)
        .session_if(caller.session_id())
        .detail(json!({ "returned": rows.len(), "scope": if is_admin { "all" } else { "own" } }));
    match caller.session_id() {
        // One row per session and minute, however often it reads.
        Some(session_id) => {
            record_view(&state.db, state.clock.now(), meta, session_id, viewed).await?;
        }
        // An API key has no session to dedupe on: each read is a row (the
        // `audit_log_user` rule bounds them).
        None => {
            let key = caller.api_key().map(|k| k.key_id.to_string());
            let viewed = viewed.detail(json!({
                "returned": rows.len(),
                "scope": if is_admin { "all" } else { "own" },
                "api_key_id": key,
            }));
            record(state.db.write(), state.clock.now(), meta, viewed).await?;
        }
    }
    let events: Vec<PagedEvent> = rows
        .into_iter()
        .map(|event| {
            if is_admin {
                event
            } else {
                as_the_owner_sees(event)
            }
        })
        .map(|event| PagedEvent {
            cursor: encode_cursor(event.id),
            event,
        })
        .collect();
    let end_cursor = events.last().map(|e| e.cursor.clone());
    Ok(AuditPage {
        events,
        has_next_page,
        end_cursor,
    })
}

/// An event of an account as its owner sees it (`auditLog` for a user,
/// `exportMyData`): what another person did to the account (an
/// administrator's change, recorded with `detail.by` naming someone else)
/// keeps what happened
/// but loses that person's IP, user agent, session and id
/// (`detail.byAdministrator: true` instead of `detail.by`).
pub fn as_the_owner_sees(mut event: audit_event::Model) -> audit_event::Model {
    let owner = event.user_id.map(|id| id.to_string());
    let Some(serde_json::Value::Object(detail)) = event.detail.as_mut() else {
        return event;
    };
    // The owner's own act (an administrator demoting itself) stays whole.
    let by = detail.get("by").and_then(|b| b.as_str()).map(str::to_owned);
    if by.is_none() || by == owner {
        return event;
    }
    detail.remove("by");
    detail.insert("byAdministrator".into(), serde_json::Value::Bool(true));
    event.ip = None;
    event.user_agent = None;
    event.session_id = None;
    event
}

fn parse_id(id: &str, field: &'static str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::bad_input(field, "not a valid id"))
}

/// Opaque cursor for an audit row id.
pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{id}"))
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    let bad = || AppError::bad_input("after", "not a cursor returned by auditLog");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("audit:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

/// `at`, if every backend can store and compare it: years 0001 to 9999.
///
/// chrono accepts ±262143; Postgres's `timestamptz` stops at 4713 BC (an
/// error, which was an `INTERNAL`), and SQLite keeps times as text, where
/// a year past 9999 or before 0 compares wrongly (`since: +10000-…`
/// matched every row). Four-digit years are what a client means anyway.
pub fn storable_time(
    field: &'static str,
    at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, AppError> {
    use chrono::Datelike;
    match at {
        Some(t) if !(1..=9999).contains(&t.year()) => Err(AppError::bad_input(
            field,
            "must be a time between the years 0001 and 9999",
        )),
        _ => Ok(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_bad_input() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert_eq!(
            decode_cursor("nope!").err().map(|e| e.code()),
            Some("BAD_USER_INPUT")
        );
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode("user:1"))
                .err()
                .map(|e| e.code()),
            Some("BAD_USER_INPUT")
        );
    }

    #[test]
    fn times_outside_four_digit_years_are_bad_input_on_their_own_field() {
        let far = Some(DateTime::<Utc>::MAX_UTC);
        assert!(matches!(
            storable_time("since", far),
            Err(AppError::BadUserInput { field: "since", .. })
        ));
        assert!(matches!(
            storable_time("until", Some(DateTime::<Utc>::MIN_UTC)),
            Err(AppError::BadUserInput { field: "until", .. })
        ));
        let now = Some(crate::clock::Clock::system().now());
        assert_eq!(storable_time("since", now).ok(), Some(now));
        assert_eq!(storable_time("since", None).ok(), Some(None));
    }
}
