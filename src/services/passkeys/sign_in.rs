//! Signing in with a passkey: `startPasskeyLogin` hands out request
//! options for a discoverable credential (no username: the authenticator
//! offers its passkeys for this site); `finishPasskeyLogin` verifies the
//! assertion and starts a session. [`verify`] is shared with
//! `completeLogin`, where a passkey is the second step after a password.
//!
//! The assertion names its account by the user handle and credential id
//! the authenticator returns; the credential must belong to that handle.
//! The signature is checked against the stored public key over the stored
//! challenge, the origin and RP ID against configuration, user
//! verification is required, and a signature counter that does not grow
//! (a cloned authenticator) is refused. The stored counter moves by a
//! conditional UPDATE, so two assertions with one counter value cannot
//! both pass.

use chrono::{DateTime, Utc};
use entity::{passkey, user};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential, WebauthnError};

use super::ceremony::{self, Purpose};
use crate::{
    auth::{limiter::Rule, passkey as webauthn},
    db::FetchUnique,
    domain::{AuditEventKind, SignInMethod, SignedInBy},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts,
        audit::{self, Event},
        limits, AuthOutcome,
    },
    state::AppState,
};

/// `startPasskeyLogin`: the ceremony's id and its request options
/// (`{"publicKey": …}`), for `navigator.credentials.get`.
#[tracing::instrument(skip_all)]
pub async fn start(state: &AppState, meta: &RequestMeta) -> Result<(Uuid, Value), AppError> {
    limits::enforce(state, meta, Rule::PasskeyIp, &limits::ip_key(meta)).await?;
    let (mut options, authentication) = state
        .webauthn
        .start_discoverable_authentication()
        .map_err(AppError::internal)?;
    // webauthn-rs marks these for autofill (conditional mediation); a
    // "Sign in with a passkey" button wants the browser's own dialog. An
    // app that wants autofill passes `mediation: "conditional"` itself.
    options.mediation = None;
    let options = serde_json::to_value(&options).map_err(AppError::internal)?;
    let challenge = ceremony::challenge_of(&options)?;
    let id = ceremony::store(
        state.db.write(),
        state,
        Purpose::Login,
        None,
        challenge,
        &authentication,
    )
    .await?;
    Ok((id, options))
}

/// A verified assertion: whose it was and with which passkey.
pub struct Verified {
    /// The account.
    pub user: user::Model,
    /// The passkey, as updated.
    pub passkey: passkey::Model,
}

/// Why an assertion was refused, for the audit row (the client only ever
/// gets `INVALID_CREDENTIALS`).
pub struct Refused {
    /// The account the assertion named, when it named one of ours.
    pub user_id: Option<Uuid>,
    /// A short reason.
    pub reason: &'static str,
}

/// Verifies `response`, an assertion over a `startPasskeyLogin` ceremony
/// (the one `challenge_id` names, when given), for `expected_user` when
/// given. A ceremony that is unknown, used or expired: `Err(INVALID_TOKEN)`;
/// malformed JSON: `Err(BAD_USER_INPUT)`; an assertion that does not prove
/// a passkey of ours (of that account): `Ok(Err(Refused))`.
pub async fn verify(
    state: &AppState,
    response: Value,
    challenge_id: Option<Uuid>,
    expected_user: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Result<Verified, Refused>, AppError> {
    let response: PublicKeyCredential = serde_json::from_value(response)
        .map_err(|_| AppError::bad_input("response", "not a WebAuthn assertion"))?;
    let challenge = webauthn::assertion_challenge(&response)
        .ok_or_else(|| AppError::bad_input("response", "no challenge in clientDataJSON"))?;
    let claimed: ceremony::Claimed<DiscoverableAuthentication> =
        ceremony::claim(state, Purpose::Login, &challenge, None, now).await?;
    if challenge_id.is_some_and(|id| id != claimed.row.id) {
        return Err(AppError::InvalidToken);
    }
    let refused = |user_id, reason| Ok(Err(Refused { user_id, reason }));
    let Ok((handle, credential_id)) = state
        .webauthn
        .identify_discoverable_authentication(&response)
    else {
        return refused(None, "no user handle");
    };
    let Some(row) = passkey::Entity::find()
        .filter(passkey::Column::CredentialId.eq(webauthn::credential_id(credential_id)))
        .unique(state.db.write())
        .await?
        .filter(|row| row.user_handle == handle)
    else {
        return refused(None, "unknown passkey");
    };
    if expected_user.is_some_and(|id| id != row.user_id) {
        return refused(expected_user, "another account's passkey");
    }
    let mut credential = super::credential(&row)?;
    let result = match state.webauthn.finish_discoverable_authentication_v2(
        &response,
        claimed.state,
        &credential,
    ) {
        Ok(result) => result,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            tracing::warn!(passkey_id = %row.id, "a passkey's signature counter went backwards: a cloned authenticator?");
            return refused(Some(row.user_id), "counter regressed");
        }
        Err(err) => {
            tracing::info!(passkey_id = %row.id, error = %err, "a passkey assertion did not verify");
            return refused(Some(row.user_id), "assertion did not verify");
        }
    };
    if !result.user_verified() {
        return refused(Some(row.user_id), "no user verification");
    }
    credential.update_credential(&result);
    let flags = webauthn::flags(&credential);
    // Conditional on the counter read: a second assertion with the same
    // counter value, racing this one, finds the row moved and is refused.
    let mut update = passkey::Entity::update_many()
        .col_expr(
            passkey::Column::Credential,
            Expr::value(serde_json::to_string(&credential).map_err(AppError::internal)?),
        )
        .col_expr(
            passkey::Column::SignCount,
            Expr::value(i64::from(flags.counter)),
        )
        .col_expr(
            passkey::Column::BackupEligible,
            Expr::value(flags.backup_eligible),
        )
        .col_expr(
            passkey::Column::BackupState,
            Expr::value(flags.backup_state),
        )
        .col_expr(passkey::Column::LastUsedAt, Expr::value(now))
        .filter(passkey::Column::Id.eq(row.id));
    if row.sign_count > 0 || flags.counter > 0 {
        update = update.filter(passkey::Column::SignCount.eq(row.sign_count));
    }
    if update.exec(state.db.write()).await?.rows_affected != 1 {
        return refused(Some(row.user_id), "counter raced");
    }
    let Some(user) = user::Entity::find_by_id(row.user_id)
        .unique(state.db.write())
        .await?
    else {
        return refused(None, "account gone");
    };
    let passkey = passkey::Model {
        credential: serde_json::to_string(&credential).map_err(AppError::internal)?,
        sign_count: i64::from(flags.counter),
        backup_eligible: flags.backup_eligible,
        backup_state: flags.backup_state,
        last_used_at: Some(now),
        ..row
    };
    Ok(Ok(Verified { user, passkey }))
}

/// `finishPasskeyLogin`: a verified assertion signs in without a password
/// (`amr` `hwk` or `swk`, with `user` and `mfa`). A refused one is audited
/// `LOGIN_FAILED` and answered `INVALID_CREDENTIALS`.
#[tracing::instrument(skip_all)]
pub async fn finish(
    state: &AppState,
    meta: &RequestMeta,
    challenge_id: Uuid,
    response: Value,
) -> Result<AuthOutcome, AppError> {
    limits::enforce(state, meta, Rule::PasskeyIp, &limits::ip_key(meta)).await?;
    let now = state.clock.now();
    let verified = match verify(state, response, Some(challenge_id), None, now).await? {
        Ok(verified) => verified,
        Err(refused) => {
            let mut event = Event::new(AuditEventKind::LoginFailed)
                .detail(json!({ "method": "PASSKEY", "reason": refused.reason }));
            if let Some(id) = refused.user_id {
                event = event.user(id);
            }
            audit::record(state.db.write(), now, meta, event).await?;
            state
                .metrics
                .mfa
                .with_label_values(&["PASSKEY_LOGIN", "failure"])
                .inc();
            return Err(AppError::InvalidCredentials);
        }
    };
    // A verified passkey proves who is asking, so the reason may be told.
    if verified.user.disabled_at.is_some() {
        return Err(AppError::AccountDisabled);
    }
    if state.config.require_email_verification && verified.user.email_verified_at.is_none() {
        return Err(AppError::EmailNotVerified);
    }
    state
        .metrics
        .mfa
        .with_label_values(&["PASSKEY_LOGIN", "success"])
        .inc();
    let how = SignedInBy::new(SignInMethod::Passkey, verified.passkey.backup_eligible);
    let txn = state.db.begin().await?;
    accounts::sign_in(
        state,
        meta,
        txn,
        verified.user,
        AuditEventKind::LoginSucceeded,
        how,
        now,
    )
    .await
}
