//! Passkeys over GraphQL: registering one while signed in, listing,
//! renaming and deleting them, and signing in with one. Thin: each parses,
//! calls `services::passkeys` and shapes the answer. WebAuthn options and
//! responses travel as JSON, in the shapes the browser's
//! `PublicKeyCredential.parseCreationOptionsFromJSON` /
//! `parseRequestOptionsFromJSON` take and `toJSON()` gives.

use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    error::AppError,
    graphql::context::{ContextExt, Respond},
    graphql::{mutation::deliver, types::AuthPayload},
    services::passkeys,
};

/// A passkey of the caller's account.
#[derive(SimpleObject)]
pub struct Passkey {
    /// Pass to `renamePasskey` or `deletePasskey`.
    pub id: ID,
    /// The owner's label for it.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last signed in (never: null).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the key may be synced across the owner's devices (a password
    /// manager's passkey) rather than bound to one authenticator.
    pub synced: bool,
}

impl From<entity::passkey::Model> for Passkey {
    fn from(row: entity::passkey::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            synced: row.backup_eligible,
        }
    }
}

/// A started passkey sign-in.
#[derive(SimpleObject)]
pub struct PasskeyChallenge {
    /// Pass back to `finishPasskeyLogin`.
    pub challenge_id: ID,
    /// `{ publicKey: PublicKeyCredentialRequestOptions }` (binary fields as
    /// base64url) for `navigator.credentials.get`.
    pub options: Json<Value>,
}

/// Passkey mutations, merged into the root `Mutation`.
#[derive(Default)]
pub struct PasskeyMutations;

#[Object]
impl PasskeyMutations {
    /// Starts adding a passkey to the caller's account:
    /// `{ publicKey: PublicKeyCredentialCreationOptions }` for
    /// `navigator.credentials.create` (a discoverable credential with user
    /// verification; the caller's passkeys excluded). Valid five minutes,
    /// once. At most 20 passkeys per account (`BAD_USER_INPUT`). A session
    /// that signed in more than 10 minutes ago must give `password` (a
    /// stolen session must not add a way in): without it `BAD_USER_INPUT`
    /// (field `password`), wrong `INVALID_CREDENTIALS`. While an
    /// authenticator app is on, `code` (a current code from it) is
    /// required too, as for `changePassword`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn start_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The account's password: required when this session signed in more than 10 minutes ago."
        )]
        password: Option<String>,
        #[graphql(
            desc = "A current code from the authenticator app: required while one is on (`mfaEnabled`)."
        )]
        code: Option<String>,
    ) -> async_graphql::Result<Json<Value>> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            crate::services::mfa::require_recent_sign_in(
                state,
                ctx.meta()?,
                &caller,
                password.as_deref(),
                "startPasskeyRegistration",
            )
            .await?;
            let options =
                passkeys::register::start(state, ctx.meta()?, &caller, code.as_deref()).await?;
            Ok::<_, AppError>(Json(options))
        }
        .await
        .respond(ctx)
    }

    /// Finishes adding a passkey with the browser's answer
    /// (`credential.toJSON()`). A started registration that is unknown,
    /// used, expired or another account's: `INVALID_TOKEN`; an answer that
    /// does not verify for this site (origin, RP ID, user verification) or
    /// a passkey already registered: `BAD_USER_INPUT`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn finish_passkey_registration(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The `PublicKeyCredential` from `navigator.credentials.create`, as `toJSON()` gives it."
        )]
        response: Json<Value>,
        #[graphql(desc = "A label for it, 1 to 64 characters (default: \"Passkey\").")]
        name: Option<String>,
    ) -> async_graphql::Result<Passkey> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let row = passkeys::register::finish(
                state,
                ctx.meta()?,
                &caller,
                response.0,
                name.as_deref(),
            )
            .await?;
            Ok::<_, AppError>(Passkey::from(row))
        }
        .await
        .respond(ctx)
    }

    /// Renames one of the caller's passkeys.
    async fn rename_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The passkey's `id`.")] id: ID,
        #[graphql(desc = "The new label, 1 to 64 characters.")] name: String,
    ) -> async_graphql::Result<Passkey> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let row = passkeys::rename(state, &caller, &id, &name).await?;
            Ok::<_, AppError>(Passkey::from(row))
        }
        .await
        .respond(ctx)
    }

    /// Deletes one of the caller's passkeys. While an authenticator app is
    /// on (`mfaEnabled`), `code` (a current code from it) is required:
    /// without it `BAD_USER_INPUT` (field `code`), wrong
    /// `INVALID_CREDENTIALS`, counted like a wrong password.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn delete_passkey(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The passkey's `id`.")] id: ID,
        #[graphql(
            desc = "A current code from the authenticator app: required while one is on (`mfaEnabled`)."
        )]
        code: Option<String>,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            passkeys::delete(state, ctx.meta()?, &caller, &id, code.as_deref()).await
        }
        .await
        .respond(ctx)
    }

    /// Starts signing in with a passkey, without a username: the
    /// authenticator offers the passkeys it holds for this site. Pass
    /// `options` to `navigator.credentials.get` (add
    /// `mediation: "conditional"` for autofill), then the answer and
    /// `challengeId` to `finishPasskeyLogin` (or, as the second step of a
    /// password login, the answer to `completeLogin`'s `passkey`). Valid
    /// five minutes, once.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn start_passkey_login(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PasskeyChallenge> {
        async {
            let state = ctx.state()?;
            let (id, options) = passkeys::sign_in::start(state, ctx.meta()?).await?;
            Ok::<_, AppError>(PasskeyChallenge {
                challenge_id: ID(id.to_string()),
                options: Json(options),
            })
        }
        .await
        .respond(ctx)
    }

    /// Signs in with a passkey: the browser's answer to
    /// `startPasskeyLogin`'s options. Starts a session like `login` (no
    /// second factor is asked: a passkey with user verification is two).
    /// An answer that does not prove a registered passkey (wrong origin or
    /// RP ID, a signature counter that went backwards, no user
    /// verification): `INVALID_CREDENTIALS`; an unknown, used or expired
    /// challenge: `INVALID_TOKEN`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn finish_passkey_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`startPasskeyLogin`'s `challengeId`.")] challenge_id: ID,
        #[graphql(
            desc = "The `PublicKeyCredential` from `navigator.credentials.get`, as `toJSON()` gives it."
        )]
        response: Json<Value>,
    ) -> async_graphql::Result<AuthPayload> {
        async {
            let state = ctx.state()?;
            let challenge_id =
                uuid::Uuid::parse_str(&challenge_id).map_err(|_| AppError::InvalidToken)?;
            let outcome =
                passkeys::sign_in::finish(state, ctx.meta()?, challenge_id, response.0).await?;
            Ok::<_, AppError>(deliver(ctx, outcome))
        }
        .await
        .respond(ctx)
    }
}
