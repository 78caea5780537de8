//! Mutation resolvers: accounts, logins and sessions (`register`, `login`,
//! `refresh`, `logout`, `logoutAllDevices`, …) and the account lifecycle
//! over email (`sendVerificationEmail`, `verifyEmail`,
//! `requestPasswordReset`, `resetPassword`, `requestEmailChange`,
//! `confirmEmailChange`).

use async_graphql::{Context, Object, ID};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{
    auth::{
        email::Email,
        limiter::Rule,
        password::{self, Password},
    },
    error::AppError,
    graphql::{
        context::{ContextExt, Respond},
        device,
        types::{AuthPayload, EmailTokenInput, LoginInput, RegisterInput},
    },
    services::{
        accounts::{self, NewAccount},
        devices,
        email::{self, TokenInput},
        limits::{self, KeyFacts},
        login::{self, LoginOutcome},
        mfa,
        sessions::{self, Scope},
        trusted_devices,
    },
};

/// Writes on accounts, logins and sessions (a part of [`super::MutationRoot`]).
#[derive(Default)]
pub struct AccountMutations;

/// The payload for the client, and in cookie mode the refresh cookie too.
pub(super) fn deliver(ctx: &Context<'_>, outcome: crate::services::AuthOutcome) -> AuthPayload {
    if let Ok(state) = ctx.state() {
        // Rounded up to whole seconds: the cookie lives as long as the token.
        let millis = (outcome.refresh_expires_at - state.clock.now()).num_milliseconds();
        let max_age = (millis + 999).div_euclid(1000);
        ctx.set_refresh_cookie(Some((outcome.refresh_token.expose_secret(), max_age)));
    }
    // After the refresh cookie, so that one stays the first `Set-Cookie`.
    let mut payload = AuthPayload::from(device::deliver(ctx, outcome));
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
pub(super) const COSTLY: usize = 40;

/// Writes: accounts, logins and sessions.
#[Object]
impl AccountMutations {
    /// Creates an account with the `USER` role, mails a verification link
    /// and code to its address, and logs it in. Fails with `BAD_USER_INPUT`
    /// (see `extensions.field`) or `EMAIL_TAKEN`. When the server requires
    /// verified addresses, the account is created and mailed but the answer
    /// is `EMAIL_NOT_VERIFIED` (no session): show "check your email".
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
            limits::enforce_rule(state, meta, Rule::RegisterIp, KeyFacts::of(meta)).await?;
            let email = Email::parse(&input.email)?;
            let username = accounts::parse_username(input.username.as_deref())?;
            let context = password::context_words(email.as_str(), username.as_deref());
            let password = Password::parse_for(&input.password, "password", &context)?;
            let account = NewAccount {
                email,
                password,
                username,
            };
            let outcome = accounts::register(state, meta, account).await?;
            Ok::<_, AppError>(deliver(ctx, outcome))
        }
        .await
        .respond(ctx)
    }

    /// Starts a new session. Fails with `INVALID_CREDENTIALS` for an unknown
    /// email or a wrong password alike, and with `ACCOUNT_LOCKED` (see
    /// `extensions.retryAfter`) while this client has failed too often for
    /// the email, or while failures from many clients have closed the email
    /// to all but the account's trusted devices: send `deviceToken` back.
    /// A right password for an account an administrator disabled:
    /// `ACCOUNT_DISABLED`.
    #[graphql(complexity = "COSTLY")]
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Email and password.")] input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let state = ctx.state()?;
            // The argument first, like `refresh`; else the device cookie.
            let device_token = input.device_token.as_deref().or(device::cookie(ctx));
            let result = login::login_with_device(
                state,
                ctx.meta()?,
                &input.email,
                &input.password,
                device_token,
            )
            .await
            .and_then(|outcome| match outcome {
                LoginOutcome::Authenticated(signed_in) => Ok(*signed_in),
                LoginOutcome::Refused(refusal) => Err(AppError::from(refusal)),
                LoginOutcome::SecondFactorRequired { mfa_token, methods } => {
                    Err(AppError::MfaRequired { mfa_token, methods })
                }
            });
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
    /// Every trusted device of the account (see `trustedDevices`) is revoked too.
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
            if revoked && caller.session_id() == Some(session_id) {
                ctx.auth()?.forget();
            }
            Ok::<_, AppError>(revoked)
        }
        .await
        .respond(ctx)
    }

    /// Changes the caller's password after checking the current one, and
    /// ends every other session of the account (this one stays logged in).
    /// Every trusted device is revoked: a device token must not outlive the
    /// password it was issued with (this device is trusted again at its next login).
    /// Fails with `INVALID_CREDENTIALS` for a wrong current password and
    /// `BAD_USER_INPUT` (field `newPassword`) when the new one breaks the
    /// password policy. Limited and locked out like `login`. While an
    /// authenticator app is on, `code` (a current code from it) is required
    /// too: without it `BAD_USER_INPUT` (field `code`), wrong
    /// `INVALID_CREDENTIALS`; it is checked, and spent, before the password.
    #[graphql(complexity = "COSTLY")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The password the account has now.")] current_password: String,
        #[graphql(desc = "The new password: 8 to 72 bytes, not a common password.")]
        new_password: String,
        #[graphql(
            desc = "A current code from the authenticator app: required while one is on (`mfaEnabled`)."
        )]
        code: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            mfa::demand_second_factor(
                state,
                ctx.meta()?,
                &caller,
                code.as_deref(),
                "changePassword",
            )
            .await?;
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

    /// Stops trusting one of the caller's devices (see `trustedDevices`):
    /// its device token no longer lets it past a lock. `true` when a trusted
    /// device of the caller was revoked; `false` for an unknown id, an
    /// already revoked device or another account's (indistinguishably).
    async fn revoke_trusted_device(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The `id` of one of the caller's trusted devices.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let Ok(device_id) = Uuid::parse_str(id.as_str()) else {
                return Ok(false);
            };
            trusted_devices::revoke(state, &caller, device_id).await
        }
        .await
        .respond(ctx)
    }

    /// Mails the caller's address a new verification link and code (older
    /// ones stop working). Requires an access token; rate limited per IP and
    /// per address. `true` also when the address is already verified (no
    /// mail is sent then).
    async fn send_verification_email(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            email::send_verification_email(state, ctx.meta()?, &caller).await
        }
        .await
        .respond(ctx)
    }

    /// Verifies an account's address with the mailed link's `token`, or with
    /// the `email` and the 6-digit `code`. Needs no access token (the mail
    /// may be opened on another device). Fails with `INVALID_TOKEN` for an
    /// unknown, expired, used or superseded token or code (a code dies after
    /// 5 wrong tries), `BAD_USER_INPUT` unless exactly one form is given,
    /// and `RATE_LIMITED`.
    #[graphql(complexity = "COSTLY")]
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The link's token, or the email with the code.")] input: EmailTokenInput,
    ) -> async_graphql::Result<bool> {
        async {
            let input = TokenInput::parse(input.token, input.email, input.code)?;
            email::verify_email(ctx.state()?, ctx.meta()?, input).await?;
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }

    /// Mails a password-reset link and code to `email` if an account has
    /// it. Always `true`, after the same work whatever the address (the
    /// mail is prepared later, by the mail sender), so it never tells
    /// whether an account exists. Rate limited per IP and per address;
    /// `BAD_USER_INPUT` for a malformed email.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The email of the account.")] email: String,
    ) -> async_graphql::Result<bool> {
        async {
            email::request_password_reset(ctx.state()?, ctx.meta()?, &email).await?;
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }

    /// Sets a new password with the mailed link's `token`, or the `email`
    /// and `code`. Ends every session and trusted device of the account,
    /// clears its lockout, marks the address verified and mails a notice.
    /// Does not log in: call `login` next (a second factor stays in force).
    /// Fails with `INVALID_TOKEN`, `BAD_USER_INPUT` (field `newPassword`:
    /// the password policy; the token stays usable) or `RATE_LIMITED`.
    #[graphql(complexity = "COSTLY")]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The link's token, or the email with the code.")] input: EmailTokenInput,
        #[graphql(desc = "The new password: 8 to 72 bytes, not a common password.")]
        new_password: String,
    ) -> async_graphql::Result<bool> {
        async {
            let input = TokenInput::parse(input.token, input.email, input.code)?;
            email::reset_password(ctx.state()?, ctx.meta()?, input, &new_password).await?;
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }

    /// Asks to move the caller's account to `newEmail`: after the current
    /// password, the new address is mailed a link and code (confirm with
    /// `confirmEmailChange`) and the old address a notice. Requires an
    /// access token. Fails with `INVALID_CREDENTIALS` (wrong password,
    /// limited and locked out like `login`), `EMAIL_TAKEN`, `BAD_USER_INPUT`
    /// (field `newEmail`) or `RATE_LIMITED`. While an authenticator app is
    /// on, `code` is required as for `changePassword`.
    #[graphql(complexity = "COSTLY")]
    async fn request_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The address to move the account to.")] new_email: String,
        #[graphql(desc = "The password the account has now.")] current_password: String,
        #[graphql(
            desc = "A current code from the authenticator app: required while one is on (`mfaEnabled`)."
        )]
        code: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            mfa::demand_second_factor(
                state,
                ctx.meta()?,
                &caller,
                code.as_deref(),
                "requestEmailChange",
            )
            .await?;
            email::request_email_change(state, ctx.meta()?, &caller, &new_email, &current_password)
                .await?;
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }

    /// Moves the account to the address the link or code was mailed to, and
    /// marks it verified. Needs no access token; when one is sent, its
    /// session stays and every other session of the account ends (without
    /// one, every session ends). Fails with `INVALID_TOKEN`, `EMAIL_TAKEN`
    /// (the address was registered meanwhile; nothing changes) or `RATE_LIMITED`.
    #[graphql(complexity = "COSTLY")]
    async fn confirm_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The link's token, or the new email with the code.")]
        input: EmailTokenInput,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let input = TokenInput::parse(input.token, input.email, input.code)?;
            let caller = match ctx.auth()?.claims() {
                Ok(_) => ctx.auth()?.require_user(state).await.ok(),
                Err(_) => None,
            };
            let keep = caller.as_ref().and_then(|c| c.session_id());
            email::confirm_email_change(state, ctx.meta()?, input, keep).await?;
            if caller.is_some() {
                // The caller's own row changed: re-read it if asked again.
                ctx.auth()?.forget();
            }
            Ok::<_, AppError>(true)
        }
        .await
        .respond(ctx)
    }
}
