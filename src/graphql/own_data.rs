//! The owner's rights over the account's data: `deleteAccount` here, and
//! `exportMyData` (called from [`super::query`]). Thin: the use cases live
//! in [`crate::services::own_data`].

use async_graphql::{Context, Json, Object};
use serde_json::Value;

use crate::{
    error::AppError,
    graphql::context::{ContextExt, Respond},
    services::own_data,
};

/// `exportMyData`; see [`super::query::QueryRoot`].
pub async fn export_my_data(ctx: &Context<'_>) -> Result<Json<Value>, AppError> {
    let state = ctx.state()?;
    let caller = ctx.auth()?.require_user(state).await?;
    own_data::export(state, ctx.meta()?, &caller)
        .await
        .map(Json)
}

/// The owner's deletion of the account.
#[derive(Default)]
pub struct OwnDataMutations;

#[Object]
impl OwnDataMutations {
    /// Deletes the caller's account for good: its sessions (access tokens
    /// stop working at once), refresh and device tokens, second factors,
    /// passkeys, API keys and pending email links. Its audit events stay
    /// under its id without IPs, user agents or details; no row keeps the
    /// email. Needs a session (an API key gets `FORBIDDEN`), the password
    /// (checked, limited and locked out like `login`: wrong is
    /// `INVALID_CREDENTIALS`) and, while an authenticator app is on, a
    /// current `code` from it. The last active administrator cannot delete
    /// itself (`BAD_USER_INPUT`). Audited `ACCOUNT_DELETED`. In cookie
    /// mode the refresh cookie is cleared.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's password.")] current_password: String,
        #[graphql(
            desc = "A current code from the authenticator app: required while one is on (`mfaEnabled`)."
        )]
        code: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let auth = ctx.auth()?;
            let caller = auth.require_user(state).await?;
            let deleted = own_data::delete_account(
                state,
                ctx.meta()?,
                &caller,
                &current_password,
                code.as_deref(),
            )
            .await?;
            ctx.set_refresh_cookie(None);
            auth.forget();
            Ok::<_, AppError>(deleted)
        }
        .await
        .respond(ctx)
    }
}
