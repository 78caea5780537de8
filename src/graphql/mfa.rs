//! Second-factor resolvers: enrolling an authenticator app, turning it
//! off, and recovery codes. Thin: each parses, calls `services::mfa` and
//! shapes the answer. Secrets leave only in the one answer that creates them.

use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    error::AppError,
    graphql::context::{ContextExt, Respond},
    graphql::{mutation::deliver, types::AuthPayload},
    services::mfa::{self, complete::Factor, Proof},
};

/// The second step of a login that answered `MFA_REQUIRED`: its `mfaToken`
/// and exactly one factor.
#[derive(InputObject)]
pub struct CompleteLoginInput {
    /// `extensions.mfaToken` of the `MFA_REQUIRED` error.
    pub mfa_token: String,
    /// A 6-digit code from the authenticator app.
    pub totp_code: Option<String>,
    /// One of the account's recovery codes (with or without its dash); each works once.
    pub recovery_code: Option<String>,
    /// A passkey's answer (`credential.toJSON()`) to `startPasskeyLogin`'s options.
    pub passkey: Option<Json<serde_json::Value>>,
}

impl std::fmt::Debug for CompleteLoginInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompleteLoginInput([redacted])")
    }
}

/// An authenticator-app secret being enrolled, shown once: scan `qrSvg` (or
/// type `secret`), then send a code from the app to `confirmTotpEnrollment`.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// The secret in base32 (no padding), for typing into an app.
    pub secret: String,
    /// The `otpauth://totp/…` URI (issuer: the product name; account: the email).
    pub otpauth_uri: String,
    /// `otpauthUri` as an SVG QR code, to show as is.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment([redacted])")
    }
}

fn shown(codes: Vec<SecretString>) -> Vec<String> {
    codes.iter().map(|c| c.expose_secret().to_owned()).collect()
}

/// Writes on second factors (a part of [`super::MutationRoot`]).
#[derive(Default)]
pub struct MfaMutations;

#[Object]
impl MfaMutations {
    /// Finishes a login that answered `MFA_REQUIRED`: the `mfaToken` with a
    /// code from the authenticator app or a recovery code signs in (a
    /// trusted device does not skip this step). A wrong factor:
    /// `INVALID_CREDENTIALS`, counted toward the lockout like a wrong
    /// password (the token stays usable until it expires); a used, expired
    /// or unknown token: `INVALID_TOKEN` (log in again). Using a recovery
    /// code is mailed to the account's address.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn complete_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token and one factor.")] input: CompleteLoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let state = ctx.state()?;
            let factor = Factor::parse(
                input.totp_code,
                input.recovery_code,
                input.passkey.map(|p| p.0),
            )?;
            let outcome =
                mfa::complete::complete_login(state, ctx.meta()?, &input.mfa_token, factor).await?;
            Ok::<_, AppError>(deliver(ctx, outcome))
        }
        .await
        .respond(ctx)
    }

    /// Starts enrolling an authenticator app for the caller: a new secret,
    /// pending until `confirmTotpEnrollment` (a pending one is replaced).
    /// Fails with `BAD_USER_INPUT` while an app is already on. A session
    /// that signed in more than 10 minutes ago must give `password` (a
    /// stolen session must not add a factor the owner does not hold):
    /// without it `BAD_USER_INPUT` (field `password`), wrong
    /// `INVALID_CREDENTIALS`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The account's password: required when this session signed in more than 10 minutes ago."
        )]
        password: Option<String>,
    ) -> async_graphql::Result<TotpEnrollment> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            mfa::require_recent_sign_in(
                state,
                ctx.meta()?,
                &caller,
                password.as_deref(),
                "startTotpEnrollment",
            )
            .await?;
            let enrollment = mfa::totp::start_enrollment(state, &caller).await?;
            Ok::<_, AppError>(TotpEnrollment {
                secret: enrollment.secret.expose_secret().to_owned(),
                otpauth_uri: enrollment.otpauth_uri.expose_secret().to_owned(),
                qr_svg: enrollment.qr_svg,
            })
        }
        .await
        .respond(ctx)
    }

    /// Turns the pending authenticator app on with a code from it, and
    /// returns the account's 10 recovery codes: shown this once, stored
    /// hashed. A wrong or already used code: `INVALID_CREDENTIALS`; nothing
    /// pending: `BAD_USER_INPUT`.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The 6-digit code the app shows now.")] code: String,
    ) -> async_graphql::Result<Vec<String>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let codes = mfa::confirm_totp_enrollment(state, ctx.meta()?, &caller, &code).await?;
            Ok::<_, AppError>(shown(codes))
        }
        .await
        .respond(ctx)
    }

    /// Turns the caller's authenticator app off (its recovery codes go
    /// too), proven by exactly one of a current code or the password (the
    /// way out after signing in with a recovery code). `false` when no app
    /// was on. Wrong proof: `INVALID_CREDENTIALS`, counted like a wrong
    /// password.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A current 6-digit code from the app.")] code: Option<String>,
        #[graphql(desc = "The account's password.")] password: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let proof = match (code.as_deref(), password.as_deref()) {
                (Some(code), None) => Proof::Totp(code),
                (None, Some(password)) => Proof::Password(password),
                _ => {
                    return Err(AppError::bad_input(
                        "code",
                        "give exactly one of a code or the password",
                    ))
                }
            };
            mfa::disable_totp(state, ctx.meta()?, &caller, proof).await
        }
        .await
        .respond(ctx)
    }

    /// Replaces every recovery code of the caller with 10 new ones, shown
    /// this once; proven by a current code from the app.
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A current 6-digit code from the app.")] code: String,
    ) -> async_graphql::Result<Vec<String>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let codes = mfa::regenerate_recovery_codes(state, ctx.meta()?, &caller, &code).await?;
            Ok::<_, AppError>(shown(codes))
        }
        .await
        .respond(ctx)
    }
}
