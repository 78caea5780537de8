//! Query resolvers: `me`, `sessions` and `auditLog`.

use async_graphql::{Context, Object, ID};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::limiter::Rule,
    domain::{AuditEventKind, Role},
    error::AppError,
    graphql::{
        context::{ContextExt, Respond},
        device::TrustedDevice,
        types::{
            decode_cursor, encode_cursor, storable_time, AuditEvent, AuditEventConnection,
            AuditEventEdge, AuditLogFilter, PageInfo, Session, User,
        },
    },
    services::{
        audit::{self, Event},
        devices, limits, trusted_devices,
    },
};

/// Largest page `auditLog` returns; larger `first` values are capped.
pub const MAX_PAGE: i32 = 200;
/// Page size when `first` is omitted or null.
pub const DEFAULT_PAGE: i32 = 50;

/// Reads.
pub struct QueryRoot;

/// Reads: the caller's account and the audit log.
#[Object(name = "Query")]
impl QueryRoot {
    /// The account of the access token. Fails with `UNAUTHENTICATED` when the
    /// token is missing, invalid, expired or its session was logged out.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            Ok::<_, AppError>(User::from(caller.user.clone()))
        }
        .await
        .respond(ctx)
    }

    /// The caller's trusted devices, most recently used first: each device
    /// that logged in to the account and kept its device token. While too
    /// many failed logins from elsewhere lock the email, only these may
    /// still try the password. `logoutAllDevices` and `changePassword`
    /// revoke them all; `revokeTrustedDevice` revokes one.
    async fn trusted_devices(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<TrustedDevice>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let rows = trusted_devices::list(state, &caller).await?;
            Ok::<_, AppError>(rows.into_iter().map(TrustedDevice::from).collect())
        }
        .await
        .respond(ctx)
    }

    /// The caller's live sessions (one per login, on each device), most
    /// recently used first, for a "where you're logged in" page. The devices
    /// trusted to log in during an attack are listed by `trustedDevices`.
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let rows = devices::list(state, &caller).await?;
            Ok::<_, AppError>(
                rows.into_iter()
                    .map(|row| Session::new(row, caller.session_id))
                    .collect(),
            )
        }
        .await
        .respond(ctx)
    }

    /// Security events, newest first. Administrators see every event; other
    /// accounts see only their own. Reading the log is itself audited.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, 0 to 200 (larger values are capped at 200).",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor (`endCursor` of the previous page) to continue after.")]
        after: Option<String>,
        #[graphql(desc = "Only events matching every given field.")] filter: Option<AuditLogFilter>,
    ) -> async_graphql::Result<AuditEventConnection> {
        audit_log(
            ctx,
            first.unwrap_or(DEFAULT_PAGE),
            after,
            filter.unwrap_or_default(),
        )
        .await
        .respond(ctx)
    }
}

fn parse_id(id: &ID, field: &'static str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "not a valid id"))
}

async fn audit_log(
    ctx: &Context<'_>,
    first: i32,
    after: Option<String>,
    filter: AuditLogFilter,
) -> Result<AuditEventConnection, AppError> {
    let state = ctx.state()?;
    let meta = ctx.meta()?;
    let caller = ctx.auth()?.require_user(state).await?;
    // Per account, before any other work: each read is a query, and every
    // token of the account (every session) draws on the same bucket.
    limits::enforce(state, meta, Rule::AuditLogUser, &caller.user.id.to_string()).await?;
    if first < 0 {
        return Err(AppError::bad_input(
            "first",
            "first must be between 0 and 200",
        ));
    }
    let before_id = after.as_deref().map(decode_cursor).transpose()?;
    let requested_user = filter
        .user_id
        .as_ref()
        .map(|id| parse_id(id, "userId"))
        .transpose()?;
    let is_admin = caller.role() == Role::Admin;
    if !is_admin && requested_user.is_some_and(|u| u != caller.user.id) {
        let event = Event::new(AuditEventKind::AccessDenied)
            .user(caller.user.id)
            .session(caller.session_id)
            .detail(json!({ "operation": "auditLog", "reason": "other_users_events" }));
        audit::record(state.db.write(), state.clock.now(), meta, event).await?;
        return Err(AppError::Forbidden);
    }
    let query = audit::Query {
        kinds: filter.kinds.unwrap_or_default(),
        user_id: if is_admin {
            requested_user
        } else {
            Some(caller.user.id)
        },
        since: storable_time("since", filter.since)?,
        until: storable_time("until", filter.until)?,
        min_severity: filter.min_severity,
        before_id,
        limit: u64::try_from(first.min(MAX_PAGE)).unwrap_or(0),
    };
    let (rows, has_next_page) = audit::page(state.db.read(), &query).await?;
    let viewed = Event::new(AuditEventKind::AuditLogViewed)
        .user(caller.user.id)
        .session(caller.session_id)
        .detail(json!({ "returned": rows.len(), "scope": if is_admin { "all" } else { "own" } }));
    // One row per session and minute, however often it reads.
    audit::record_view(
        &state.db,
        state.clock.now(),
        meta,
        caller.session_id,
        viewed,
    )
    .await?;
    let edges = rows
        .into_iter()
        .map(|row| {
            let cursor = encode_cursor(row.id);
            AuditEvent::try_from(row).map(|node| AuditEventEdge { cursor, node })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let end_cursor = edges.last().map(|e| e.cursor.clone());
    Ok(AuditEventConnection {
        edges,
        page_info: PageInfo {
            has_next_page,
            end_cursor,
        },
    })
}
