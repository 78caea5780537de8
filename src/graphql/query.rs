//! Query resolvers: `me`, `trustedDevices`, `sessions`, `auditLog`, and
//! the admin reads `users` and `user` (in [`super::admin`]).
//! Each translates its arguments for a service and the answer into GraphQL
//! types; the use cases live in [`crate::services`].

use async_graphql::{Context, Object};

use crate::{
    error::AppError,
    graphql::{
        admin,
        context::{ContextExt, Respond},
        device::TrustedDevice,
        types::{
            AuditEvent, AuditEventConnection, AuditEventEdge, AuditLogFilter, PageInfo, Session,
            User,
        },
    },
    services::{
        audit_log::{self, AuditPage, AuditQuery},
        devices, trusted_devices,
    },
};

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

    /// Everything Warden holds about the caller, as one JSON document
    /// (`format: "warden-export/1"`): the account, sessions with their IPs
    /// and user agents, trusted devices, second factors and passkeys
    /// (never a secret), API keys (prefixes only), pending email links,
    /// mail sent (kinds and times, not bodies) and the newest 10,000 audit
    /// events (`auditEventsTotal` counts them all; `auditLog` pages
    /// further). Needs a session: an API key gets `FORBIDDEN`. Limited per
    /// account (`WARDEN_RATE_EXPORT`, 10 an hour); audited `DATA_EXPORTED`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn export_my_data(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<async_graphql::Json<serde_json::Value>> {
        crate::graphql::own_data::export_my_data(ctx)
            .await
            .respond(ctx)
    }

    /// The caller's API keys that are not revoked (expired ones included),
    /// oldest first.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::api_keys::ApiKey>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let rows = crate::services::api_keys::list(state, &caller).await?;
            Ok::<_, AppError>(rows.into_iter().map(Into::into).collect())
        }
        .await
        .respond(ctx)
    }

    /// The caller's passkeys, oldest first.
    async fn passkeys(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::passkeys::Passkey>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let rows = crate::services::passkeys::owned(state.db.read(), caller.user.id).await?;
            Ok::<_, AppError>(rows.into_iter().map(Into::into).collect())
        }
        .await
        .respond(ctx)
    }

    /// How many unused recovery codes the caller has left (0 without an
    /// authenticator app): suggest `regenerateRecoveryCodes` when low.
    async fn recovery_codes_left(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let left = crate::services::mfa::recovery_codes_left(state, &caller).await?;
            Ok::<_, AppError>(i32::try_from(left).unwrap_or(i32::MAX))
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
                    .map(|row| Session::new(row, caller.session_id()))
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
        audit_log(ctx, first, after, filter.unwrap_or_default())
            .await
            .respond(ctx)
    }

    /// Accounts, by id (roughly oldest first), for administrators; anyone
    /// else gets `FORBIDDEN`. `first` is 0 to 200 (larger is capped).
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, 0 to 200 (larger values are capped at 200).",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor (`endCursor` of the previous page) to continue after.")]
        after: Option<String>,
        #[graphql(desc = "Only accounts matching every given field.")] filter: Option<
            admin::UserFilter,
        >,
    ) -> async_graphql::Result<admin::UserConnection> {
        admin::users(ctx, first, after, filter.unwrap_or_default())
            .await
            .respond(ctx)
    }

    /// One account with what it holds (`holdings`), for administrators;
    /// null when no account has the id. Anyone else gets `FORBIDDEN`.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's id.")] id: async_graphql::ID,
    ) -> async_graphql::Result<Option<User>> {
        admin::user(ctx, id).await.respond(ctx)
    }
}

async fn audit_log(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    filter: AuditLogFilter,
) -> Result<AuditEventConnection, AppError> {
    let state = ctx.state()?;
    let meta = ctx.meta()?;
    let caller = ctx.auth()?.require_user(state).await?;
    let query = AuditQuery {
        first,
        after,
        kinds: filter.kinds.unwrap_or_default(),
        user_id: filter.user_id.map(|id| id.0),
        since: filter.since,
        until: filter.until,
        min_severity: filter.min_severity,
    };
    let AuditPage {
        events,
        has_next_page,
        end_cursor,
    } = audit_log::read(state, meta, &caller, query).await?;
    let edges = events
        .into_iter()
        .map(|paged| {
            AuditEvent::try_from(paged.event).map(|node| AuditEventEdge {
                cursor: paged.cursor,
                node,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuditEventConnection {
        edges,
        page_info: PageInfo {
            has_next_page,
            end_cursor,
        },
    })
}
