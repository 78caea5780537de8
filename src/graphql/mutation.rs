//! Mutation resolvers: `register`, `login`, `refresh`, `logout`, `logoutAllDevices`.

use async_graphql::{Context, Object, ID};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{
    auth::{email::Email, limiter::Rule, password::Password},
    error::AppError,
    graphql::{
        context::{ContextExt, Respond},
        types::{AuthPayload, LoginInput, RegisterInput},
    },
    services::{
        accounts::{self, NewAccount},
        devices, limits,
        sessions::{self, Scope},
    },
};

/// Writes.
pub struct MutationRoot;

/// The payload for the client, and in cookie mode the refresh cookie too.
fn deliver(ctx: &Context<'_>, outcome: crate::services::AuthOutcome) -> AuthPayload {
    if let Ok(state) = ctx.state() {
        // Rounded up to whole seconds: the cookie lives as long as the token.
        let millis = (outcome.refresh_expires_at - state.clock.now()).num_milliseconds();
        let max_age = (millis + 999).div_euclid(1000);
        ctx.set_refresh_cookie(Some((outcome.refresh_token.expose_secret(), max_age)));
    }
    let mut payload = AuthPayload::from(outcome);
    // `only` mode: the cookie alone carries the token, so no page script
    // (nor an XSS) ever sees it; the non-null field is left empty.
    if ctx
        .state()
        .is_ok_and(|state| state.config.refresh_cookie.cookie_only())
    {
        payload.refresh_token = String::new();
    }
    payload
}

/// Complexity of a field that hashes a password or writes a session: with
/// the schema's limit of 500, one document holds at most 12 of them.
const COSTLY: usize = 40;

/// Writes: accounts, logins and sessions.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates an account with the `USER` role and logs it in. Fails with
    /// `BAD_USER_INPUT` (see `extensions.field`) or `EMAIL_TAKEN`.
    #[graphql(complexity = "COSTLY")]
    async fn register(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's email, password and optional username.")]
        input: RegisterInput,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let (state, meta) = (ctx.state()?, ctx.meta()?);
            // Spent before the input is even read: malformed attempts count too.
            limits::enforce(state, meta, Rule::RegisterIp, &limits::ip_key(meta)).await?;
            let account = NewAccount {
                email: Email::parse(&input.email)?,
                password: Password::parse(&input.password, "password")?,
                username: accounts::parse_username(input.username.as_deref())?,
            };
            let outcome = accounts::register(state, meta, account).await?;
            Ok::<_, AppError>(deliver(ctx, outcome))
        }
        .await
        .respond(ctx)
    }

    /// Starts a new session. Fails with `INVALID_CREDENTIALS` for an unknown
    /// email or a wrong password alike.
    #[graphql(complexity = "COSTLY")]
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Email and password.")] input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let state = ctx.state()?;
            let result = accounts::login(state, ctx.meta()?, &input.email, &input.password).await;
            let outcome = match &result {
                Ok(_) => "success".to_owned(),
                Err(err) => err.code().to_ascii_lowercase(),
            };
            state
                .metrics
                .logins
                .with_label_values(&[outcome.as_str()])
                .inc();
            Ok::<_, AppError>(deliver(ctx, result?))
        }
        .await
        .respond(ctx)
    }

    /// Exchanges a refresh token for a new access token and a new refresh
    /// token; the presented one stops working. Presenting it again within a
    /// few seconds returns the same new refresh token (with a fresh access
    /// token), so retries and a second tab are safe; later, it is treated as
    /// theft: the session ends and `REFRESH_TOKEN_REUSED` is returned.
    #[graphql(complexity = "COSTLY")]
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The refresh token from the last `register`, `login` or `refresh`. Omit it in cookie mode: the refresh cookie is used."
        )]
        refresh_token: Option<String>,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let (state, meta) = (ctx.state()?, ctx.meta()?);
            let refreshed = match refresh_token.as_deref() {
                Some(token) => sessions::refresh(state, meta, Some(token)).await,
                None => sessions::refresh_any(state, meta, ctx.refresh_cookies()).await,
            };
            match refreshed {
                Ok(outcome) => Ok(deliver(ctx, outcome)),
                Err(err) => {
                    if matches!(
                        err,
                        AppError::InvalidRefreshToken | AppError::RefreshTokenReused
                    ) {
                        ctx.set_refresh_cookie(None);
                    }
                    Err(err)
                }
            }
        }
        .await
        .respond(ctx)
    }

    /// Ends one session. With a refresh token, that token's session; with no
    /// argument, the session of the refresh cookie (cookie mode) or else of
    /// the bearer access token. Always `true`, also for unknown or
    /// already-ended sessions. In cookie mode it also clears the cookie.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "A refresh token of the session to end; omit to end the cookie's or the access token's session."
        )]
        refresh_token: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let meta = ctx.meta()?;
            // In cookie mode the cookie goes whatever happens next.
            ctx.set_refresh_cookie(None);
            let cookies = ctx.refresh_cookies();
            match refresh_token.as_deref() {
                Some(token) => sessions::logout_by_refresh_token(state, meta, token).await,
                // "Log out of this browser": every session its cookies
                // hold, not only the first cookie's, which may be a stale
                // or planted one while the user's own session lives on.
                None if !cookies.is_empty() => {
                    for token in cookies {
                        sessions::logout_by_refresh_token(state, meta, token).await?;
                    }
                    Ok(true)
                }
                None => {
                    let auth = ctx.auth()?;
                    let ended =
                        sessions::logout_by_access_token(state, meta, auth.claims_for_logout()?)
                            .await;
                    auth.forget();
                    ended
                }
            }
        }
        .await
        .respond(ctx)
    }

    /// Ends every session of the caller, this one included, and returns how
    /// many were ended. Access tokens of those sessions stop working at once.
    async fn logout_all_devices(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let count = sessions::logout_many(state, ctx.meta()?, &caller, Scope::All).await?;
            ctx.auth()?.forget();
            Ok::<_, AppError>(i32::try_from(count).unwrap_or(i32::MAX))
        }
        .await
        .respond(ctx)
    }

    /// Ends every session of the caller except this one and returns how many
    /// were ended: "log out everywhere else".
    async fn logout_other_devices(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let count = sessions::logout_many(state, ctx.meta()?, &caller, Scope::Others).await?;
            Ok::<_, AppError>(i32::try_from(count).unwrap_or(i32::MAX))
        }
        .await
        .respond(ctx)
    }

    /// Ends one of the caller's own sessions (see `sessions`). `true` when a
    /// live session of the caller was ended; `false` for an unknown id, an
    /// ended session, or a session of another account (indistinguishably).
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `id` of one of the caller's sessions.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let Ok(session_id) = Uuid::parse_str(id.as_str()) else {
                return Ok(false);
            };
            let revoked = devices::revoke(state, ctx.meta()?, &caller, session_id).await?;
            if revoked && session_id == caller.session_id {
                ctx.auth()?.forget();
            }
            Ok::<_, AppError>(revoked)
        }
        .await
        .respond(ctx)
    }

    /// Changes the caller's password after checking the current one, and
    /// ends every other session of the account (this one stays logged in).
    /// Fails with `INVALID_CREDENTIALS` for a wrong current password and
    /// `BAD_USER_INPUT` (field `newPassword`) when the new one breaks the
    /// password policy. Limited and locked out like `login`.
    #[graphql(complexity = "COSTLY")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password the account has now.")] current_password: String,
        #[graphql(desc = "The new password: 8 to 72 bytes, not a common password.")]
        new_password: String,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            accounts::change_password(
                state,
                ctx.meta()?,
                &caller,
                &current_password,
                &new_password,
            )
            .await?;
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }
}
