//! [`AppState`]: everything an operation needs, built once at start-up and
//! attached to the schema. Cheap to clone (handles and `Arc`s).

use std::sync::Arc;

use crate::{
    auth::{
        email_code::CodeKey, jwt::AccessTokens, limiter::Limits, opaque_token::SuccessorKey,
        password::PasswordHasher, pseudonym::EmailPseudonyms, sealing::SealKey,
    },
    clock::Clock,
    config::Config,
    db::{liveness::SessionChecks, Db},
    metrics::Metrics,
};

/// Shared, read-only server state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub db: Db,
    /// The settings the server started with.
    pub config: Arc<Config>,
    /// The only source of "now".
    pub clock: Clock,
    /// Access-token signer and verifier, keys built once.
    pub tokens: Arc<AccessTokens>,
    /// Derives refresh-token successors.
    pub successors: SuccessorKey,
    /// Keys email-keyed counters by a keyed hash, never the address.
    pub pseudonyms: EmailPseudonyms,
    /// bcrypt on a bounded blocking pool.
    pub hasher: PasswordHasher,
    /// Rate limits per operation.
    pub limits: Limits,
    /// Prometheus metrics of this server.
    pub metrics: Arc<Metrics>,
    /// Answers "is this session alive?", batching concurrent checks.
    pub session_checks: SessionChecks,
    /// Seals the bodies of unsent outbox rows.
    pub outbox_key: SealKey,
    /// Keys the stored hashes of mailed codes.
    pub codes: CodeKey,
    /// Seals TOTP secrets at rest (bound to the account's id).
    pub totp_key: SealKey,
    /// Keys the stored hashes of recovery codes.
    pub recovery_codes: CodeKey,
    /// Wakes the mail sender after a transaction that enqueued mail commits.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// The mail templates (built-in, or overridden by
    /// `WARDEN_MAIL_TEMPLATES`), compiled and trial-rendered at start-up.
    pub mail_templates: Arc<minijinja::Environment<'static>>,
    /// The WebAuthn relying party (`WARDEN_WEBAUTHN_RP_ID`, `WARDEN_WEBAUTHN_ORIGINS`).
    pub webauthn: Arc<webauthn_rs::Webauthn>,
}
