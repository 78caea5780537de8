//! Token introspection (RFC 7662) for resource servers and gateways:
//! whether an access token or an API key is live now, and what it stands
//! for. An access token is live while it verifies *and* its session is
//! alive, so a logout shows at once, not when the token expires.
//!
//! The caller is an API key holding `INTROSPECT`; its answer is one of
//! `UNAUTHENTICATED` (401), `FORBIDDEN` (403) or `RATE_LIMITED` (429) when
//! it may not ask.

use serde_json::{json, Value};

use crate::{
    auth::{
        api_key::{self as mechanism, PresentedKey},
        jwt::VerifyError,
        limiter::Rule,
    },
    domain::{ApiKeyScope, Role},
    error::AppError,
    meta::RequestMeta,
    services::{api_keys::authenticate, sessions, signing_keys},
    state::AppState,
};

/// The answer for anything that is not live, whatever the reason (RFC 7662
/// §2.2: nothing more is said about it).
pub fn inactive() -> Value {
    json!({ "active": false })
}

/// `POST /oauth/introspect`: checks that `caller` may introspect, then
/// answers for `token`.
#[tracing::instrument(skip_all)]
pub async fn introspect(
    state: &AppState,
    meta: &RequestMeta,
    caller: &PresentedKey,
    token: &str,
) -> Result<Value, AppError> {
    let (_, key) =
        authenticate::authenticate_under(state, meta, caller, Rule::IntrospectKey).await?;
    if !ApiKeyScope::parse_stored(&key.scopes).contains(&ApiKeyScope::Introspect) {
        return Err(AppError::Forbidden);
    }
    if mechanism::is_api_key(token) {
        answer_for_key(state, token).await
    } else {
        answer_for_access_token(state, token).await
    }
}

async fn answer_for_key(state: &AppState, token: &str) -> Result<Value, AppError> {
    let Some(presented) = PresentedKey::parse(token) else {
        return Ok(inactive());
    };
    let found = match authenticate::live(state, &presented, state.clock.now()).await {
        Ok(found) => found,
        Err(AppError::Unauthenticated(_)) => None,
        Err(err) => return Err(err),
    };
    let Some((key, user)) = found else {
        return Ok(inactive());
    };
    let scopes = ApiKeyScope::parse_stored(&key.scopes);
    // The role the key acts with: an administrator's key is an
    // administrator only with the ADMIN scope (as in GraphQL).
    let role = match Role::from_stored(&user.role) {
        Role::Admin if scopes.contains(&ApiKeyScope::Admin) => Role::Admin,
        _ => Role::User,
    };
    let scope = scopes
        .into_iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let mut answer = json!({
        "active": true,
        "token_type": "api_key",
        "sub": user.id,
        "client_id": key.id,
        "role": role.as_str(),
        "scope": scope,
        "iat": key.created_at.timestamp(),
    });
    if let Some(exp) = key.expires_at {
        answer["exp"] = json!(exp.timestamp());
    }
    Ok(answer)
}

async fn answer_for_access_token(state: &AppState, token: &str) -> Result<Value, AppError> {
    let mut verdict = state.tokens.verify(token, state.clock.now());
    // A kid this instance does not know may be a key another instance just
    // rotated in: reload (at most once a second) and try once more, as the
    // GraphQL endpoint does.
    if verdict == Err(VerifyError::UnknownKid) && state.tokens.may_reload() {
        let now = state.clock.now();
        match signing_keys::reload(&state.db, &state.config, &state.tokens, now).await {
            Ok(()) => verdict = state.tokens.verify(token, now),
            Err(err) => tracing::warn!(error = %err, "could not reload signing keys"),
        }
    }
    let Ok(claims) = verdict else {
        return Ok(inactive());
    };
    let user = match sessions::authenticate(state, &claims).await {
        Ok(caller) => caller.user,
        Err(AppError::Unauthenticated(_)) => return Ok(inactive()),
        Err(err) => return Err(err),
    };
    // The role now, not when the token was minted: a demotion shows at once.
    let role = Role::from_stored(&user.role);
    let scope = match role {
        Role::Admin => "user admin",
        Role::User => "user",
    };
    Ok(json!({
        "active": true,
        "token_type": "access_token",
        "sub": claims.sub,
        "sid": claims.sid,
        "role": role.as_str(),
        "scope": scope,
        "exp": claims.exp,
        "iat": claims.iat,
        "iss": claims.iss,
        "aud": claims.aud,
        "jti": claims.jti,
        "amr": claims.amr,
    }))
}
