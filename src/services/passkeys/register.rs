//! Adding a passkey to a signed-in account: `startPasskeyRegistration`
//! hands out creation options that ask for a discoverable credential with
//! user verification; `finishPasskeyRegistration` verifies the
//! authenticator's answer against the stored ceremony and keeps the
//! public credential.

use entity::passkey;
use sea_orm::{EntityTrait, IntoActiveModel, SqlErr};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PasskeyRegistration, RegisterPublicKeyCredential};

use super::{ceremony, owned, MAX_PER_ACCOUNT};
use crate::{
    auth::{limiter::Rule, passkey as webauthn},
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        auth_user::AuthUser,
        limits, mail, mfa,
    },
    state::AppState,
};

/// What a registration ceremony keeps between its start and its finish.
#[derive(Serialize, Deserialize)]
struct Registering {
    /// The account's WebAuthn user handle.
    handle: Uuid,
    /// webauthn-rs's state.
    registration: PasskeyRegistration,
}

/// The longest passkey name, in characters.
pub const NAME_MAX: usize = 64;

/// A passkey's name: trimmed, 1 to [`NAME_MAX`] characters, no control
/// characters (`BAD_USER_INPUT`, field `name`).
pub fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "name",
            "a passkey name is 1 to 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// `startPasskeyRegistration`: creation options for the caller
/// (`PublicKeyCredentialCreationOptions` under `publicKey`), asking for a
/// discoverable credential and user verification, excluding the caller's
/// passkeys. The account's user handle is random, the same for all its
/// passkeys, and never its email.
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn start(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    code: Option<&str>,
) -> Result<Value, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    limits::enforce(state, meta, Rule::PasskeyIp, &limits::ip_key(meta)).await?;
    // A passkey is a way in that skips the app: adding one takes the app.
    mfa::demand_second_factor(state, meta, caller, code, "startPasskeyRegistration").await?;
    let existing = owned(state.db.write(), caller.user.id).await?;
    if existing.len() >= MAX_PER_ACCOUNT {
        return Err(AppError::bad_input(
            "response",
            "this account has as many passkeys as it may have: delete one first",
        ));
    }
    let handle = existing
        .first()
        .map_or_else(Uuid::new_v4, |row| row.user_handle);
    let exclude = existing
        .iter()
        .map(|row| super::credential(row).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let user = &caller.user;
    let display = user.username.as_deref().unwrap_or(&user.email);
    let (options, registration) = state
        .webauthn
        .start_passkey_registration(handle, &user.email, display, Some(exclude))
        .map_err(AppError::internal)?;
    let mut options = serde_json::to_value(&options).map_err(AppError::internal)?;
    // A passkey that signs in without a username must live on the
    // authenticator (discoverable), and prove the user (UV): webauthn-rs
    // asks for neither by default.
    options["publicKey"]["authenticatorSelection"] = json!({
        "residentKey": "required",
        "requireResidentKey": true,
        "userVerification": "required",
    });
    let challenge = ceremony::challenge_of(&options)?;
    let registering = Registering {
        handle,
        registration,
    };
    ceremony::store(
        state.db.write(),
        state,
        ceremony::Purpose::Register,
        Some(user.id),
        challenge,
        &registering,
    )
    .await?;
    Ok(options)
}

/// `finishPasskeyRegistration`: the authenticator's answer to the
/// caller's started registration. A ceremony that is unknown, used,
/// expired or another account's: `INVALID_TOKEN`; an answer that does not
/// verify (another origin or RP ID, no user verification):
/// `BAD_USER_INPUT` (field `response`).
#[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
pub async fn finish(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    response: Value,
    name: Option<&str>,
) -> Result<passkey::Model, AppError> {
    // An API key may never change a password, a factor, an email or a key.
    caller.require_session()?;
    let name = parse_name(name.unwrap_or("Passkey"))?;
    let response: RegisterPublicKeyCredential = serde_json::from_value(response)
        .map_err(|_| AppError::bad_input("response", "not a WebAuthn registration response"))?;
    let challenge = webauthn::registration_challenge(&response)
        .ok_or_else(|| AppError::bad_input("response", "no challenge in clientDataJSON"))?;
    let now = state.clock.now();
    let claimed: ceremony::Claimed<Registering> = ceremony::claim(
        state,
        ceremony::Purpose::Register,
        &challenge,
        Some(caller.user.id),
        now,
    )
    .await?;
    let passkey: Passkey = state
        .webauthn
        .finish_passkey_registration(&response, &claimed.state.registration)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey registration did not verify");
            AppError::bad_input(
                "response",
                "the authenticator's answer does not verify for this site",
            )
        })?;
    let flags = webauthn::flags(&passkey);
    let row = passkey::Model {
        id: Uuid::now_v7(),
        user_id: caller.user.id,
        user_handle: claimed.state.handle,
        credential_id: webauthn::credential_id(passkey.cred_id()),
        name,
        credential: serde_json::to_string(&passkey).map_err(AppError::internal)?,
        sign_count: i64::from(flags.counter),
        backup_eligible: flags.backup_eligible,
        backup_state: flags.backup_state,
        created_at: now,
        last_used_at: None,
    };
    let txn = state.db.begin().await?;
    if let Err(err) = passkey::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(&txn)
        .await
    {
        if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return Err(AppError::bad_input(
                "response",
                "this passkey is already registered",
            ));
        }
        return Err(err.into());
    }
    let event = Event::new(AuditEventKind::PasskeyAdded)
        .user(caller.user.id)
        .session(caller.require_session()?)
        .detail(json!({ "passkey_id": row.id, "synced": row.backup_eligible }));
    audit::record(&txn, now, meta, event).await?;
    // The owner learns of every new way in, in case it was not them.
    mail::notify_owner(&txn, state, mail::MailKind::PasskeyAdded, &caller.user).await?;
    txn.commit().await?;
    mail::wake(state);
    Ok(row)
}
