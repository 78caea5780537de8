//! API keys over GraphQL: creating (the secret shown once), listing and
//! revoking the caller's keys. Thin: each parses, calls
//! `services::api_keys` and shapes the answer.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::{
    domain::ApiKeyScope,
    error::AppError,
    graphql::context::{ContextExt, Respond},
    services::api_keys::{self, NewKey},
};

/// One of the caller's API keys. The key itself is never shown again after
/// `createApiKey`.
#[derive(SimpleObject)]
pub struct ApiKey {
    /// Pass to `revokeApiKey`.
    pub id: ID,
    /// The owner's label for it.
    pub name: String,
    /// The key's first characters (`wdn_` and 8 more), to tell keys apart.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<ApiKeyScope>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request, to the hour (never: null).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working (never: null).
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<entity::api_key::Model> for ApiKey {
    fn from(row: entity::api_key::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            scopes: ApiKeyScope::parse_stored(&row.scopes),
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
        }
    }
}

/// A new key: the secret, shown this once, and its description.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The whole key (`wdn_…`), to send as `Authorization: Bearer`. Only
    /// its hash is stored: it cannot be shown again.
    pub secret: String,
    /// The key, as `apiKeys` lists it.
    pub api_key: ApiKey,
}

/// What `createApiKey` needs.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// A label for the owner, 1 to 64 characters.
    pub name: String,
    /// When the key stops working; null: never. Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// What it may do, at least one. `ADMIN` only for an admin.
    pub scopes: Vec<ApiKeyScope>,
}

/// API-key mutations, merged into the root `Mutation`.
#[derive(Default)]
pub struct ApiKeyMutations;

#[Object]
impl ApiKeyMutations {
    /// Creates an API key for the caller and returns it once. A key sent
    /// as `Authorization: Bearer wdn_…` acts as its owner within its
    /// scopes, and never changes a password, a factor, an email or a key
    /// (those answer `FORBIDDEN`). Only a signed-in session may create one
    /// (`FORBIDDEN` for a key); `ADMIN` only for an admin (`FORBIDDEN`).
    /// At most 50 live keys per account. Audited `API_KEY_CREATED`.
    #[graphql(complexity = "super::mutation::COSTLY")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's name, expiry and scopes.")] input: CreateApiKeyInput,
    ) -> async_graphql::Result<CreatedApiKey> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            let input = NewKey {
                name: input.name,
                expires_at: input.expires_at,
                scopes: input.scopes,
            };
            let (row, secret) = api_keys::create(state, ctx.meta()?, &caller, input).await?;
            Ok::<_, AppError>(CreatedApiKey {
                secret: secret.expose_secret().to_owned(),
                api_key: ApiKey::from(row),
            })
        }
        .await
        .respond(ctx)
    }

    /// Revokes one of the caller's API keys: it stops working at once.
    /// False when `id` is not a live key of the caller's. Only a signed-in
    /// session may revoke (`FORBIDDEN` for a key). Audited
    /// `API_KEY_REVOKED`.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key's `id`.")] id: ID,
    ) -> async_graphql::Result<bool> {
        async {
            let state = ctx.state()?;
            let caller = ctx.auth()?.require_user(state).await?;
            api_keys::revoke(state, ctx.meta()?, &caller, &id).await
        }
        .await
        .respond(ctx)
    }
}
