//! Admin resolvers: the `users` and `user` reads (called from
//! [`super::query`]) and the mutations that manage another account. Thin:
//! each asks `services::admin::require_admin` for the capability (a
//! non-admin gets `FORBIDDEN`, audited `ACCESS_DENIED`), parses, calls the
//! service and shapes the answer.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use crate::{
    domain::Role,
    error::AppError,
    graphql::{
        context::{ContextExt, Respond},
        types::{PageInfo, User, UserHoldings},
    },
    services::admin::{self, Admin, UserDetail},
};

/// Narrows `users`. Every field is optional; all given ones must match.
#[derive(InputObject, Debug, Default)]
pub struct UserFilter {
    /// A prefix of the email or of the username, any case (`ada` finds
    /// `ada@example.com` and the username `Ada_L`). Blank: no filter.
    pub search: Option<String>,
    /// Only accounts with this role.
    pub role: Option<Role>,
    /// Only disabled (true) or enabled (false) accounts.
    pub disabled: Option<bool>,
    /// Only accounts whose address is verified (true) or not (false).
    pub email_verified: Option<bool>,
    /// Only accounts with (true) or without (false) a second factor.
    pub mfa_enabled: Option<bool>,
}

/// A page of accounts, by id (roughly by creation), Relay style.
#[derive(SimpleObject, Debug)]
pub struct UserConnection {
    /// The accounts of this page, each with its cursor.
    pub edges: Vec<UserEdge>,
    /// Where this page ends and whether another follows.
    pub page_info: PageInfo,
}

/// An account and its cursor.
#[derive(SimpleObject, Debug)]
pub struct UserEdge {
    /// Pass as `after` to continue after this account.
    pub cursor: String,
    /// The account.
    pub node: User,
}

/// An account as an administrator sees it: with why it is disabled.
fn admin_view(u: entity::user::Model) -> User {
    let (disabled_at, reason) = (u.disabled_at, u.disabled_reason.clone());
    let mut user = User::from(u);
    user.disabled_at = disabled_at;
    user.disabled_reason = reason;
    user
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The caller as an admin, for `operation`.
async fn admin(ctx: &Context<'_>, operation: &'static str) -> Result<Admin, AppError> {
    let state = ctx.state()?;
    let caller = ctx.auth()?.require_user(state).await?;
    admin::require_admin(state, ctx.meta()?, &caller, operation).await
}

/// `users`; see [`super::query::QueryRoot`].
pub async fn users(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    filter: UserFilter,
) -> Result<UserConnection, AppError> {
    let admin = admin(ctx, "users").await?;
    let filter = admin::UserFilter {
        search: filter.search,
        role: filter.role,
        disabled: filter.disabled,
        email_verified: filter.email_verified,
        mfa_enabled: filter.mfa_enabled,
    };
    let page = admin::list(
        ctx.state()?,
        ctx.meta()?,
        &admin,
        first,
        after.as_deref(),
        &filter,
    )
    .await?;
    let edges: Vec<UserEdge> = page
        .users
        .into_iter()
        .map(|(cursor, u)| UserEdge {
            cursor,
            node: admin_view(u),
        })
        .collect();
    let end_cursor = edges.last().map(|e| e.cursor.clone());
    Ok(UserConnection {
        edges,
        page_info: PageInfo {
            has_next_page: page.has_next_page,
            end_cursor,
        },
    })
}

/// `user(id)`; see [`super::query::QueryRoot`].
pub async fn user(ctx: &Context<'_>, id: ID) -> Result<Option<User>, AppError> {
    let admin = admin(ctx, "user").await?;
    let id = admin::parse_user_id(&id)?;
    let found = admin::find(ctx.state()?, ctx.meta()?, &admin, id).await?;
    Ok(found.map(|detail| {
        let UserDetail {
            user,
            active_sessions,
            passkeys,
            totp,
            recovery_codes_left,
        } = detail;
        let mut view = admin_view(user);
        view.holdings = Some(UserHoldings {
            active_sessions: count(active_sessions),
            passkeys: count(passkeys),
            totp_enabled: totp,
            recovery_codes_left: count(recovery_codes_left),
        });
        view
    }))
}

/// Writes on other accounts, for administrators (a part of
/// [`super::MutationRoot`]). Each answers `FORBIDDEN` to anyone else and
/// `BAD_USER_INPUT` (field `id`) for an unknown account.
#[derive(Default)]
pub struct AdminMutations;

#[Object]
impl AdminMutations {
    /// Gives an account a role; audited `ROLE_CHANGED`. The last active
    /// (not disabled) administrator cannot be demoted: `BAD_USER_INPUT`.
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
        #[graphql(desc = "Its new role.")] role: Role,
    ) -> async_graphql::Result<User> {
        async {
            let admin = admin(ctx, "setUserRole").await?;
            let id = admin::parse_user_id(&id)?;
            let user = admin::set_role(ctx.state()?, ctx.meta()?, &admin, id, role).await?;
            Ok::<_, AppError>(admin_view(user))
        }
        .await
        .respond(ctx)
    }

    /// Disables an account: its sessions end at once (its access tokens get
    /// `UNAUTHENTICATED` with reason `REVOKED` on their next request) and
    /// every sign-in answers `ACCOUNT_DISABLED` after a right password.
    /// Audited `USER_DISABLED`. The last active administrator cannot be
    /// disabled: `BAD_USER_INPUT`.
    async fn disable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
        #[graphql(desc = "A note for administrators (at most 500 characters).")] reason: Option<
            String,
        >,
    ) -> async_graphql::Result<User> {
        async {
            let admin = admin(ctx, "disableUser").await?;
            let id = admin::parse_user_id(&id)?;
            let user = admin::disable(ctx.state()?, ctx.meta()?, &admin, id, reason).await?;
            Ok::<_, AppError>(admin_view(user))
        }
        .await
        .respond(ctx)
    }

    /// Lets a disabled account sign in again; audited `USER_ENABLED`.
    async fn enable_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
    ) -> async_graphql::Result<User> {
        async {
            let admin = admin(ctx, "enableUser").await?;
            let id = admin::parse_user_id(&id)?;
            let user = admin::enable(ctx.state()?, ctx.meta()?, &admin, id).await?;
            Ok::<_, AppError>(admin_view(user))
        }
        .await
        .respond(ctx)
    }

    /// Ends every live session of an account (its access tokens get
    /// `REVOKED` on their next request); returns how many. Audited
    /// `ALL_SESSIONS_REVOKED`.
    async fn revoke_user_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
    ) -> async_graphql::Result<i32> {
        async {
            let admin = admin(ctx, "revokeUserSessions").await?;
            let id = admin::parse_user_id(&id)?;
            let ended = admin::revoke_sessions(ctx.state()?, ctx.meta()?, &admin, id).await?;
            Ok::<_, AppError>(count(ended))
        }
        .await
        .respond(ctx)
    }

    /// Clears the failed-login counters of an address (every client's and
    /// the address's own), so `ACCOUNT_LOCKED` ends at once. True when
    /// there was something to clear. Audited `ACCOUNT_UNLOCKED`.
    async fn unlock_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The address.")] email: String,
    ) -> async_graphql::Result<bool> {
        async {
            let admin = admin(ctx, "unlockAccount").await?;
            admin::unlock(ctx.state()?, ctx.meta()?, &admin, &email).await
        }
        .await
        .respond(ctx)
    }

    /// Removes an account's authenticator app, recovery codes and passkeys
    /// (the password alone signs in afterwards) and mails the owner a
    /// notice. Audited `FACTORS_RESET`. Always true.
    async fn reset_user_factors(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let admin = admin(ctx, "resetUserFactors").await?;
            let id = admin::parse_user_id(&id)?;
            admin::reset_factors(ctx.state()?, ctx.meta()?, &admin, id).await
        }
        .await
        .respond(ctx)
    }

    /// Mails an account the password-reset link and code that
    /// `requestPasswordReset` sends. Audited `PASSWORD_RESET_REQUESTED`.
    /// Always true.
    async fn send_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let admin = admin(ctx, "sendPasswordReset").await?;
            let id = admin::parse_user_id(&id)?;
            admin::send_password_reset(ctx.state()?, ctx.meta()?, &admin, id).await
        }
        .await
        .respond(ctx)
    }

    /// Deletes an account with its sessions, tokens, factors and passkeys.
    /// Its audit events stay, under its id, without IPs, user agents or
    /// details. Audited `USER_DELETED`. The last active administrator
    /// cannot be deleted: `BAD_USER_INPUT`.
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let admin = admin(ctx, "deleteUser").await?;
            let id = admin::parse_user_id(&id)?;
            admin::delete_user(ctx.state()?, ctx.meta()?, &admin, id).await
        }
        .await
        .respond(ctx)
    }
}
