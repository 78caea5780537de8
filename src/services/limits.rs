//! Enforcing rate limits inside the operations, before any costly work.
//!
//! Limits are spent per executed field: an alias or a batched operation is
//! one more call here, so neither multiplies an attacker's attempts.
//!
//! A rule's bucket key is built from the parts its table entry declares
//! ([`Rule::key_parts`]), each part rendered by one function here and joined
//! by `|` in one place ([`KeyFacts::key`]); the unit tests check every
//! rule's key against its declaration.
//!
//! Every check's outcome (all buckets checked, allowed or not) is also
//! recorded in the [`RateReport`] of the request being served, if any, for
//! its `RateLimit-Policy` and `RateLimit` headers. The report travels as a
//! task-local set by the HTTP layer around the execution ([`reporting`]):
//! checks happen deep inside the use cases, which return their own results
//! and know nothing of responses, and threading a collector through every
//! one of them (or through [`RequestMeta`], which the CLI and tests build
//! too) would change every signature for a transport concern. Nothing here
//! spawns between the resolver and the check, so the execution's task is
//! the request's. Outside [`reporting`] (the CLI, unit tests) nothing is
//! recorded.

use std::{future::Future, pin::pin, task::Poll};

use futures::future::try_join;
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{
        api_key::PresentedKey,
        email::Email,
        limiter::{first_refusal, retry_after_secs, KeyPart, RateReport, Rule},
        pseudonym::EmailPseudonyms,
    },
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
    state::AppState,
};

tokio::task_local! {
    /// The report of the request whose execution this task is running.
    static REPORT: RateReport;
}

/// Runs `execution` (one HTTP request's operations) with every rate-limit
/// check it makes recorded in `report`.
pub async fn reporting<F: Future>(report: RateReport, execution: F) -> F::Output {
    REPORT.scope(report, execution).await
}

/// Between the parts of a bucket key. Neither an IP bucket, a pseudonym
/// (hex) nor a user id holds one, so parts cannot run into each other.
const SEPARATOR: &str = "|";

/// The bucket key of a client ([`KeyPart::Ip`]): its IPv4 address, or its
/// IPv6 address's `WARDEN_IPV6_PREFIX` network (so one /64 cannot look like
/// many clients). The whole key of the rules keyed by the IP alone.
pub fn ip_key(meta: &RequestMeta) -> String {
    meta.bucket_key()
}

/// The bucket key of a client and an email (`login_email`'s parts). The
/// email appears only as its pseudonym (a keyed hash), so Redis never holds
/// an address.
pub fn ip_email_key(state: &AppState, meta: &RequestMeta, email: &Email) -> String {
    ip_email_key_under(&state.pseudonyms, meta, email)
}

/// [`ip_email_key`] under `pseudonyms`.
fn ip_email_key_under(pseudonyms: &EmailPseudonyms, meta: &RequestMeta, email: &Email) -> String {
    join([ip_key(meta), email_part(pseudonyms, email)])
}

/// The bucket key of an account ([`KeyPart::User`]): its id, hyphenated.
pub fn user_key(user: Uuid) -> String {
    user.to_string()
}

/// The bucket key of a session ([`KeyPart::Session`]): its id, hyphenated.
pub fn session_key(session: Uuid) -> String {
    session.to_string()
}

/// The bucket key of a presented API key ([`KeyPart::ApiKey`]): its own
/// hash (`PresentedKey::rate_key`), never the key or its stored hash.
pub fn api_key_key(presented: &PresentedKey) -> String {
    presented.rate_key().to_owned()
}

/// [`KeyPart::Email`]: the pseudonym, never the address.
fn email_part(pseudonyms: &EmailPseudonyms, email: &Email) -> String {
    pseudonyms.of(email)
}

fn join<const N: usize>(parts: [String; N]) -> String {
    parts.join(SEPARATOR)
}

/// What a request knows that a bucket key can be built from; a rule takes
/// the parts its table entry names.
#[derive(Clone, Copy)]
pub struct KeyFacts<'a> {
    meta: &'a RequestMeta,
    email: Option<(&'a EmailPseudonyms, &'a Email)>,
    user: Option<Uuid>,
    session: Option<Uuid>,
    api_key: Option<&'a PresentedKey>,
}

impl<'a> KeyFacts<'a> {
    /// What every request knows: its client's IP bucket.
    pub fn of(meta: &'a RequestMeta) -> Self {
        Self {
            meta,
            email: None,
            user: None,
            session: None,
            api_key: None,
        }
    }

    /// The email the request names, under `pseudonyms`.
    pub fn with_email(self, pseudonyms: &'a EmailPseudonyms, email: &'a Email) -> Self {
        Self {
            email: Some((pseudonyms, email)),
            ..self
        }
    }

    /// The signed-in account.
    pub fn with_user(self, user: Uuid) -> Self {
        Self {
            user: Some(user),
            ..self
        }
    }

    /// The session of the request's access token.
    pub fn with_session(self, session: Uuid) -> Self {
        Self {
            session: Some(session),
            ..self
        }
    }

    /// The API key the request presents.
    pub fn with_api_key(self, presented: &'a PresentedKey) -> Self {
        Self {
            api_key: Some(presented),
            ..self
        }
    }

    /// `rule`'s bucket key: its declared parts, in order, joined by `|`.
    /// A part the request does not know is a caller's mistake, refused as
    /// internal rather than sharing one bucket among everyone.
    pub fn key(&self, rule: Rule) -> Result<String, AppError> {
        let parts = rule
            .key_parts()
            .iter()
            .map(|part| {
                self.part(*part).ok_or_else(|| {
                    AppError::internal(format!(
                        "rate rule {} is keyed by {part:?}, which the caller did not give",
                        rule.name()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join(SEPARATOR))
    }

    fn part(&self, part: KeyPart) -> Option<String> {
        match part {
            KeyPart::Ip => Some(ip_key(self.meta)),
            KeyPart::Email => self
                .email
                .map(|(pseudonyms, email)| email_part(pseudonyms, email)),
            KeyPart::User => self.user.map(user_key),
            KeyPart::Session => self.session.map(session_key),
            KeyPart::ApiKey => self.api_key.map(api_key_key),
        }
    }
}

/// Spends one unit of `rule` for the key its declaration builds from
/// `facts` ([`KeyFacts::key`]), or refuses with `RATE_LIMITED`.
pub async fn enforce_rule(
    state: &AppState,
    meta: &RequestMeta,
    rule: Rule,
    facts: KeyFacts<'_>,
) -> Result<(), AppError> {
    let key = facts.key(rule)?;
    enforce(state, meta, rule, &key).await
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
    let states = state.limits.check_in_order(checks).await;
    // Not set outside an HTTP request: nothing to report to.
    let _ = REPORT.try_with(|report| report.record(&states));
    let Some((index, retry_after)) = first_refusal(&states) else {
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

/// Who is calling, as far as the request's quota is concerned: read from
/// the `Authorization` header's verified claims, before any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credentials, or ones that did not verify, have expired, or name
    /// no live API key.
    Anonymous,
    /// A valid access token with the `USER` role, of this session.
    User(Uuid),
    /// A valid access token with the `ADMIN` role, of this session.
    Admin(Uuid),
    /// A live API key: its own rule ([`Rule::ApiKey`]) was spent when it
    /// was looked up, so nothing more here.
    ApiKey,
}

impl Caller {
    /// The rule of this caller's quota and what its key is built from.
    fn quota(self, meta: &RequestMeta) -> Option<(Rule, KeyFacts<'_>)> {
        let facts = KeyFacts::of(meta);
        match self {
            Self::Anonymous => Some((Rule::AnonymousIp, facts)),
            Self::User(session) => Some((Rule::UserCaller, facts.with_session(session))),
            Self::Admin(session) => Some((Rule::AdminCaller, facts.with_session(session))),
            Self::ApiKey => None,
        }
    }
}

/// Spends `operations` units (one per operation of the request, batches
/// included) of `caller`'s quota, before anything is parsed, or refuses
/// with `RATE_LIMITED`. One round trip to a shared store.
pub async fn spend_caller_quota(
    state: &AppState,
    meta: &RequestMeta,
    caller: Caller,
    operations: usize,
) -> Result<(), AppError> {
    let Some((rule, facts)) = caller.quota(meta) else {
        return Ok(());
    };
    let key = facts.key(rule)?;
    let checks = vec![(rule, key.as_str()); operations.max(1)];
    enforce_in_order(state, meta, &checks).await
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

#[cfg(test)]
mod tests;
