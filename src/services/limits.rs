//! Enforcing rate limits inside the operations, before any costly work.
//!
//! Limits are spent per executed field: an alias or a batched operation is
//! one more call here, so neither multiplies an attacker's attempts.

use std::{future::Future, pin::pin, task::Poll};

use futures::future::try_join;
use serde_json::json;

use crate::{
    auth::{
        email::Email,
        limiter::{retry_after_secs, Rule},
    },
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
    state::AppState,
};

/// The bucket key of a client: its IPv4 address, or its IPv6 address's
/// `WARDEN_IPV6_PREFIX` network (so one /64 cannot look like many clients).
pub fn ip_key(meta: &RequestMeta) -> String {
    meta.bucket_key()
}

/// The bucket key of a client and an email. The email appears only as its
/// pseudonym (a keyed hash), so Redis never holds an address.
pub fn ip_email_key(state: &AppState, meta: &RequestMeta, email: &Email) -> String {
    format!("{}|{}", ip_key(meta), state.pseudonyms.of(email))
}

/// Spends one unit of `rule` for `key`, or refuses with `RATE_LIMITED`.
/// A refusal is audited (at most once a minute per rule and key).
pub async fn enforce(
    state: &AppState,
    meta: &RequestMeta,
    rule: Rule,
    key: &str,
) -> Result<(), AppError> {
    enforce_in_order(state, meta, &[(rule, key)]).await
}

/// [`enforce`] for several buckets in order, in one round trip to Redis:
/// the first bucket that refuses answers, and the ones after it are not
/// spent.
pub async fn enforce_in_order(
    state: &AppState,
    meta: &RequestMeta,
    checks: &[(Rule, &str)],
) -> Result<(), AppError> {
    let Some((index, retry_after)) = state.limits.check_in_order(checks).await else {
        return Ok(());
    };
    let Some(&(rule, key)) = checks.get(index) else {
        return Err(AppError::internal(
            "rate limiter named a check that does not exist",
        ));
    };
    Err(refuse(state, meta, rule, key, retry_after).await)
}

/// [`enforce_in_order`], doing `meanwhile` while a shared store answers.
///
/// A check answered in this process (memory, or limits off) is decided on
/// its first poll, so `meanwhile` starts only once it allowed the request:
/// a refused request costs nothing more. A check that waits on Redis runs
/// alongside `meanwhile`, so the round trip hides behind work the request
/// does anyway, and a refusal drops `meanwhile` unfinished. (So does the
/// rare in-memory refusal that writes its audit row, at most once a minute
/// per rule and key.) `meanwhile` must therefore be safe to start and
/// abandon: a read, never a write.
pub async fn enforce_in_order_while<T>(
    state: &AppState,
    meta: &RequestMeta,
    checks: &[(Rule, &str)],
    meanwhile: impl Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let mut check = pin!(enforce_in_order(state, meta, checks));
    if let Poll::Ready(allowed) = futures::poll!(check.as_mut()) {
        allowed?;
        return meanwhile.await;
    }
    let ((), value) = try_join(check, meanwhile).await?;
    Ok(value)
}

/// Counts, logs and (once a minute per rule and key) audits a refusal.
async fn refuse(
    state: &AppState,
    meta: &RequestMeta,
    rule: Rule,
    key: &str,
    retry_after: std::time::Duration,
) -> AppError {
    let retry_after = retry_after_secs(retry_after);
    state
        .metrics
        .rate_limited
        .with_label_values(&[rule.name()])
        .inc();
    tracing::debug!(rule = rule.name(), retry_after, "rate limited");
    if state.limits.should_audit(rule, key) {
        let event = Event::new(AuditEventKind::RateLimited).detail(json!({ "rule": rule.name() }));
        if let Err(err) = audit::record(state.db.write(), state.clock.now(), meta, event).await {
            return err.into();
        }
    }
    AppError::RateLimited { retry_after }
}
