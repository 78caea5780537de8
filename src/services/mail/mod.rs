//! Outbound mail, durable: an outbox table written in the caller's
//! transaction, and a sender task that delivers after commit.
//!
//! - [`enqueue`] renders a [`Mail`] into an RFC 5322 message (with its
//!   `Message-ID` and `Date`), seals it under the outbox server key
//!   ([`crate::auth::sealing`]; the row id is the associated data) and
//!   inserts the row **on the caller's connection**: pass the transaction
//!   that writes the token the message carries, so both commit or roll back
//!   together. After the commit, call [`wake`].
//! - [`run`] is the sender task: it wakes on [`wake`] and every
//!   [`POLL_INTERVAL`], claims due rows with a conditional `UPDATE` (the
//!   claim names this sender and lasts [`CLAIM_LEASE`]; a row is claimed only
//!   when unclaimed or its lease is over, so with several instances one sender
//!   holds a message at a time, on SQLite and Postgres alike), delivers, then
//!   marks the row sent and erases its sealed body. A failure schedules a
//!   retry with exponential backoff and jitter (from [`BACKOFF_BASE`], capped
//!   at [`BACKOFF_CAP`]); after [`MAX_ATTEMPTS`] attempts, or at once on a
//!   permanent SMTP refusal, the message is given up: body erased, audit
//!   `MAIL_FAILED`, metric `warden_mail_sent_total{result="failed"}`.
//! - Delivery is at least once: a sender that dies after the relay accepted
//!   a message but before marking it sent leaves a claim that expires, and
//!   the message is sent again (with the same `Message-ID`).
//! - [`Transport`]: SMTP through `lettre` (rustls) when `WARDEN_SMTP_URL`
//!   is set, else `.eml` files in `WARDEN_MAIL_DIR` (the exact bytes SMTP
//!   would carry), written to a temporary name then renamed, named so they
//!   sort by time.
//!
//! The request that enqueues never waits for delivery and never sees its
//! failure. Sent and given-up rows keep only metadata; cleanup purges them
//! after [`crate::cleanup::MAIL_RETENTION`].

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, TimeDelta, Utc};
use entity::mail_outbox;
use lettre::{
    address::Envelope,
    message::{Mailbox, MultiPart, SinglePart},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
    Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use rand::Rng;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

pub mod templates;

pub use templates::{compose, MailKind, MailValues};

use crate::{
    config::Config,
    domain::AuditEventKind,
    error::AppError,
    meta::RequestMeta,
    services::audit::{self, Event},
    state::AppState,
};

/// How long a claim lasts: longer than one SMTP exchange can take
/// ([`SMTP_TIMEOUT`] per command).
pub const CLAIM_LEASE: TimeDelta = TimeDelta::minutes(2);
/// The first retry's delay; each further one doubles it.
pub const BACKOFF_BASE: TimeDelta = TimeDelta::seconds(30);
/// The longest delay between two attempts.
pub const BACKOFF_CAP: TimeDelta = TimeDelta::hours(1);
/// Attempts before a message is given up (about 5 hours of retries).
pub const MAX_ATTEMPTS: i32 = 12;
/// How often the sender looks for due rows when nothing wakes it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Timeout of each SMTP command.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// Rows claimed per query.
const BATCH: u64 = 32;

/// One message to send.
#[derive(Clone)]
pub struct Mail {
    /// What it is (`verify-email`, `password-reset`, …): a metric label.
    pub kind: &'static str,
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML alternative, if any.
    pub html: Option<String>,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bodies may carry tokens.
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Writes `mail` into the outbox on `conn` (the caller's transaction) and
/// returns its row id. Nothing is sent before that transaction commits;
/// call [`wake`] after the commit.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    mail: Mail,
) -> Result<Uuid, AppError> {
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut from: Mailbox = state
        .config
        .mail_from
        .parse()
        .map_err(|e| AppError::internal(format!("WARDEN_MAIL_FROM: {e}")))?;
    if from.name.is_none() {
        from.name = Some(state.config.product_name.clone());
    }
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| AppError::internal(format!("mail recipient: {e}")))?;
    let domain = from.email.domain().to_owned();
    let message_id = format!("{}@{domain}", id.simple());
    let builder = Message::builder()
        .from(from)
        .to(to.clone())
        .subject(mail.subject)
        .date(SystemTime::from(now))
        .message_id(Some(format!("<{message_id}>")));
    let message = match mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text, html)),
        None => builder.singlepart(SinglePart::plain(mail.text)),
    }
    .map_err(|e| AppError::internal(format!("rendering mail: {e}")))?;
    let sealed = state.outbox_key.seal(id.as_bytes(), &message.formatted());
    let row = pending(id, mail.kind, to.email.to_string(), message_id, sealed, now);
    mail_outbox::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(id)
}

/// The outbox kind of a password-reset request: work for the sender, not a
/// message. `requestPasswordReset` writes one such row whatever the
/// address, so the request does the same work for every email; the sender
/// then finds out whether an account has it ([`JobHandler`]).
pub const RESET_REQUEST_JOB: &str = "password-reset-request";

/// Outbox kinds that are jobs rather than messages.
pub const JOB_KINDS: [&str; 1] = [RESET_REQUEST_JOB];

/// A job the sender claimed: its row, its claim and its unsealed payload.
pub struct Job {
    /// The outbox row.
    pub id: Uuid,
    /// The claim's owner, for [`complete_job`].
    pub owner: Uuid,
    /// One of [`JOB_KINDS`].
    pub kind: String,
    /// What the enqueuer sealed.
    pub payload: Vec<u8>,
}

/// A job's work, boxed so the sender can hold a plain `fn`.
pub type JobFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AppError>> + Send>>;

/// Runs a claimed job. It must call [`complete_job`] in the transaction of
/// its work (so the work and the row's completion commit together) and
/// commit only when that returned `true`. An error is retried with the
/// mail backoff. The flows hand theirs in at start-up, so this module does
/// not depend on them.
pub type JobHandler = fn(AppState, Job) -> JobFuture;

/// Writes a job of `kind` with `payload` (sealed like a message body) on
/// `conn`, the caller's transaction or connection. Call [`wake`] after the commit.
pub async fn enqueue_job<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    kind: &'static str,
    payload: &[u8],
) -> Result<Uuid, AppError> {
    debug_assert!(JOB_KINDS.contains(&kind));
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let sealed = state.outbox_key.seal(id.as_bytes(), payload);
    let row = pending(id, kind, String::new(), String::new(), sealed, now);
    mail_outbox::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(id)
}

/// Marks `job` done on `conn` (the job's own transaction) and erases its
/// payload; `false` when its claim was lost to another sender, and then
/// the caller must roll back.
pub async fn complete_job<C: ConnectionTrait>(
    conn: &C,
    job: &Job,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let done = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::SentAt, Expr::value(now))
        .col_expr(
            mail_outbox::Column::Sealed,
            Expr::value(sea_orm::Value::Bytes(None)),
        )
        .col_expr(
            mail_outbox::Column::Attempts,
            sea_orm::sea_query::ExprTrait::add(Expr::col(mail_outbox::Column::Attempts), 1),
        )
        .col_expr(
            mail_outbox::Column::ClaimOwner,
            Expr::value(sea_orm::Value::Uuid(None)),
        )
        .col_expr(
            mail_outbox::Column::ClaimUntil,
            Expr::value(sea_orm::Value::ChronoDateTimeUtc(None)),
        )
        .filter(mail_outbox::Column::Id.eq(job.id))
        .filter(mail_outbox::Column::ClaimOwner.eq(job.owner))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// A new outbox row, due at once.
fn pending(
    id: Uuid,
    kind: &str,
    recipient: String,
    message_id: String,
    sealed: Vec<u8>,
    now: DateTime<Utc>,
) -> mail_outbox::ActiveModel {
    mail_outbox::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        recipient: Set(recipient),
        message_id: Set(message_id),
        sealed: Set(Some(sealed)),
        created_at: Set(now),
        next_attempt_at: Set(now),
        attempts: Set(0),
        last_error: Set(None),
        sent_at: Set(None),
        failed_at: Set(None),
        claim_owner: Set(None),
        claim_until: Set(None),
    }
}

/// Tells the sender there is new mail (call after the commit).
pub fn wake(state: &AppState) {
    state.mail_wake.notify_one();
}

/// Queues a security notice of `kind` (one without a link) to the owner of
/// `user`, on `conn` (the transaction of the change it reports); call
/// [`wake`] after the commit.
pub async fn notify_owner<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    kind: MailKind,
    user: &entity::user::Model,
) -> Result<(), AppError> {
    let values = MailValues {
        username: user.username.clone(),
        ..MailValues::default()
    };
    let notice = compose(state, kind, &user.email, &values)?;
    enqueue(conn, state, notice).await?;
    Ok(())
}

/// Enqueues `mail` in a transaction of its own, commits and wakes the
/// sender. For tests and operator tools; flows use [`enqueue`] in their
/// own transaction.
#[doc(hidden)]
pub async fn enqueue_now(state: &AppState, mail: Mail) -> Result<Uuid, AppError> {
    let txn = state.db.begin().await?;
    let id = enqueue(&txn, state, mail).await?;
    txn.commit().await?;
    wake(state);
    Ok(id)
}

/// Where mail goes.
pub enum Transport {
    /// An SMTP relay.
    Smtp {
        /// The client.
        client: AsyncSmtpTransport<Tokio1Executor>,
        /// The URL without its password, for logs.
        shown: String,
    },
    /// `.eml` files in a directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why a delivery failed, as stored and labelled (never the error text:
/// a relay's answer may echo the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Worth trying again later.
    Transient(&'static str),
    /// The relay refused for good (5xx), or the body cannot be read.
    Permanent(&'static str),
}

impl Transport {
    /// The transport `config` asks for: SMTP when `WARDEN_SMTP_URL` is set,
    /// else files in `WARDEN_MAIL_DIR`.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let Some(url) = &config.smtp_url else {
            return Ok(Self::Files(config.mail_dir.clone()));
        };
        let url = reqwest::Url::parse(url.expose_secret())
            .map_err(|_| "WARDEN_SMTP_URL: not a URL".to_owned())?;
        let host = url
            .host_str()
            .ok_or_else(|| "WARDEN_SMTP_URL: no host".to_owned())?
            .to_owned();
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let loopback = bare_host.eq_ignore_ascii_case("localhost")
            || bare_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        // The public roots, plus the operator's own CA when one is given.
        let tls = || -> Result<TlsParameters, String> {
            let mut params = TlsParameters::builder(bare_host.clone());
            if let Some(path) = &config.smtp_ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    format!("WARDEN_SMTP_CA_FILE: cannot read {}: {e}", path.display())
                })?;
                let has_cert =
                    String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
                let cert = Certificate::from_pem(&pem)
                    .ok()
                    .filter(|_| has_cert)
                    .ok_or_else(|| {
                        format!(
                            "WARDEN_SMTP_CA_FILE: {} is not a PEM certificate",
                            path.display()
                        )
                    })?;
                params = params.add_root_certificate(cert);
            }
            params
                .build_rustls()
                .map_err(|e| format!("WARDEN_SMTP_URL: {e}"))
        };
        let builder = match (url.scheme(), loopback) {
            ("smtps", _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&bare_host)
                .tls(Tls::Wrapper(tls()?))
                .port(url.port().unwrap_or(465)),
            ("smtp", false) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&bare_host)
                .tls(Tls::Required(tls()?))
                .port(url.port().unwrap_or(587)),
            // Plain SMTP only to a relay on this machine.
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&bare_host)
                .port(url.port().unwrap_or(25)),
        };
        let user = percent_decode(url.username());
        let password = match url.password() {
            Some(p) => Some(SecretString::from(percent_decode(p))),
            None => config.smtp_password.clone(),
        };
        let builder = match (user.is_empty(), password) {
            (false, Some(password)) => builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            (false, None) => {
                return Err(
                    "WARDEN_SMTP_URL names a user but no password is in the URL or WARDEN_SMTP_PASSWORD"
                        .to_owned(),
                )
            }
            (true, _) => builder,
        };
        let client = builder.timeout(Some(SMTP_TIMEOUT)).build();
        let tls = match (url.scheme(), loopback) {
            ("smtps", _) => "implicit TLS",
            ("smtp", false) => "STARTTLS required",
            _ => "plain, loopback",
        };
        let who = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Self::Smtp {
            client,
            shown: format!("{}://{who}{host}{port} ({tls})", url.scheme()),
        })
    }

    /// Where mail goes, for the start-up log (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { shown, .. } => format!("SMTP relay {shown}"),
            Self::Files(dir) => {
                let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                format!(".eml files in {}", shown.display())
            }
        }
    }

    async fn deliver(
        &self,
        envelope: &Envelope,
        id: Uuid,
        now: DateTime<Utc>,
        message: &[u8],
    ) -> Result<(), Failure> {
        match self {
            Self::Smtp { client, .. } => match client.send_raw(envelope, message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(Failure::Permanent("smtp-permanent")),
                Err(e) if e.is_transient() => Err(Failure::Transient("smtp-transient")),
                Err(e) if e.is_timeout() => Err(Failure::Transient("timeout")),
                Err(e) if e.is_tls() => Err(Failure::Transient("tls")),
                // Among others: a relay off loopback that offers no STARTTLS.
                Err(e) if e.is_client() => Err(Failure::Transient("client")),
                Err(e) if e.is_response() => Err(Failure::Transient("smtp-response")),
                Err(_) => Err(Failure::Transient("connection")),
            },
            Self::Files(dir) => write_file(dir, id, now, message)
                .await
                .map_err(|_| Failure::Transient("io")),
        }
    }
}

/// Writes `message` as `{time}-{id}.eml` in `dir` (created if missing),
/// through a temporary file renamed into place.
async fn write_file(
    dir: &Path,
    id: Uuid,
    now: DateTime<Utc>,
    message: &[u8],
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let name = format!("{}-{}.eml", now.format("%Y%m%dT%H%M%S%.6fZ"), id.simple());
    let temp = dir.join(format!(".{}.tmp", id.simple()));
    let mut file = tokio::fs::File::create(&temp).await?;
    tokio::io::AsyncWriteExt::write_all(&mut file, message).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&temp, dir.join(name)).await
}

/// `%XX` escapes of a URL's userinfo, decoded (invalid ones kept as is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The delay before attempt `attempts + 1`: doubling from
/// [`BACKOFF_BASE`], capped at [`BACKOFF_CAP`], then between half and all
/// of it (jitter spreads the retries of many messages).
pub fn backoff(attempts: i32) -> TimeDelta {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let full = BACKOFF_BASE
        .checked_mul(1_i32 << doublings)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let millis = full.num_milliseconds().max(2);
    TimeDelta::milliseconds(rand::rng().random_range(millis / 2..=millis))
}

/// The sender task: a pass at start, then one after each [`wake`] and every
/// [`POLL_INTERVAL`]. Runs until aborted; an abort mid-send leaves a claim
/// that expires after [`CLAIM_LEASE`].
pub async fn run(state: AppState, transport: Transport, jobs: Option<JobHandler>) {
    let owner = Uuid::new_v4();
    loop {
        if let Err(err) = deliver_due(&state, &transport, owner, jobs).await {
            tracing::warn!(error = %err, "mail sender pass failed; retrying");
        }
        tokio::select! {
            () = state.mail_wake.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// One pass: claims and delivers every due row, batch by batch; returns
/// how many were sent. Updates the outbox-depth gauge.
#[doc(hidden)]
pub async fn deliver_due(
    state: &AppState,
    transport: &Transport,
    owner: Uuid,
    jobs: Option<JobHandler>,
) -> Result<u64, DbErr> {
    let mut sent = 0;
    loop {
        let now = state.clock.now();
        let ids: Vec<Uuid> = mail_outbox::Entity::find()
            .select_only()
            .column(mail_outbox::Column::Id)
            .filter(due(now))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(BATCH)
            .into_tuple()
            .all(state.db.write())
            .await?;
        for &id in &ids {
            // The lease starts now, not at the batch's start: a slow relay
            // must not leave later rows with a lease already running out.
            if claim(state, id, owner, state.clock.now()).await?
                && deliver_one(state, transport, id, owner, jobs).await?
            {
                sent += 1;
            }
        }
        if (ids.len() as u64) < BATCH {
            break;
        }
    }
    let depth = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::SentAt.is_null())
        .filter(mail_outbox::Column::FailedAt.is_null())
        .count(state.db.read())
        .await?;
    state
        .metrics
        .mail_outbox_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    Ok(sent)
}

/// Rows waiting, due, and not held by a live claim.
fn due(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(mail_outbox::Column::SentAt.is_null())
        .add(mail_outbox::Column::FailedAt.is_null())
        .add(mail_outbox::Column::NextAttemptAt.lte(now))
        .add(
            Condition::any()
                .add(mail_outbox::Column::ClaimUntil.is_null())
                .add(mail_outbox::Column::ClaimUntil.lt(now)),
        )
}

/// Takes row `id` for `owner` if it is still due and unclaimed. The
/// condition is re-checked by the `UPDATE` itself (Postgres re-evaluates it
/// on the row's newest version after waiting for a concurrent writer;
/// SQLite has one writer), so of several senders racing, one wins.
async fn claim(state: &AppState, id: Uuid, owner: Uuid, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let updated = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::ClaimOwner, Expr::value(owner))
        .col_expr(
            mail_outbox::Column::ClaimUntil,
            Expr::value(now + CLAIM_LEASE),
        )
        .filter(mail_outbox::Column::Id.eq(id))
        .filter(due(now))
        .exec(state.db.write())
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Delivers the claimed row `id`; true when sent.
async fn deliver_one(
    state: &AppState,
    transport: &Transport,
    id: Uuid,
    owner: Uuid,
    jobs: Option<JobHandler>,
) -> Result<bool, DbErr> {
    let Some(row) = mail_outbox::Entity::find_by_id(id)
        .one(state.db.write())
        .await?
    else {
        return Ok(false);
    };
    let attempts = row.attempts.saturating_add(1);
    let message = row
        .sealed
        .as_deref()
        .and_then(|sealed| state.outbox_key.open(id.as_bytes(), sealed));
    let envelope = envelope(&state.config, &row.recipient);
    let result = if JOB_KINDS.contains(&row.kind.as_str()) {
        match (message, jobs) {
            (Some(payload), Some(handler)) => {
                let job = Job {
                    id,
                    owner,
                    kind: row.kind.clone(),
                    payload,
                };
                match handler(state.clone(), job).await {
                    Ok(()) => return Ok(false),
                    Err(err) => {
                        tracing::warn!(outbox_id = %id, kind = %row.kind, error = %err, "outbox job failed; will retry");
                        Err(Failure::Transient("job"))
                    }
                }
            }
            (None, _) => Err(Failure::Permanent("unreadable")),
            (Some(_), None) => Err(Failure::Transient("no-handler")),
        }
    } else {
        match (message, envelope) {
            (Some(message), Some(envelope)) => {
                transport
                    .deliver(&envelope, id, state.clock.now(), &message)
                    .await
            }
            (None, _) => Err(Failure::Permanent("unreadable")),
            (_, None) => Err(Failure::Permanent("address")),
        }
    };
    let now = state.clock.now();
    let mine = Condition::all()
        .add(mail_outbox::Column::Id.eq(id))
        .add(mail_outbox::Column::ClaimOwner.eq(owner));
    let erase = sea_orm::Value::Bytes(None);
    let no_owner = sea_orm::Value::Uuid(None);
    let no_time = sea_orm::Value::ChronoDateTimeUtc(None);
    let update = mail_outbox::Entity::update_many()
        .col_expr(mail_outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(mail_outbox::Column::ClaimOwner, Expr::value(no_owner))
        .col_expr(mail_outbox::Column::ClaimUntil, Expr::value(no_time))
        .filter(mine);
    let (update, outcome) = match result {
        Ok(()) => (
            update
                .col_expr(mail_outbox::Column::SentAt, Expr::value(now))
                .col_expr(mail_outbox::Column::Sealed, Expr::value(erase)),
            "sent",
        ),
        Err(Failure::Transient(class)) if attempts < MAX_ATTEMPTS => (
            update
                .col_expr(mail_outbox::Column::LastError, Expr::value(class))
                .col_expr(
                    mail_outbox::Column::NextAttemptAt,
                    Expr::value(now + backoff(attempts)),
                ),
            "retry",
        ),
        Err(Failure::Transient(class) | Failure::Permanent(class)) => (
            update
                .col_expr(mail_outbox::Column::LastError, Expr::value(class))
                .col_expr(mail_outbox::Column::FailedAt, Expr::value(now))
                .col_expr(mail_outbox::Column::Sealed, Expr::value(erase)),
            "failed",
        ),
    };
    let txn = state.db.begin().await?;
    let updated = update.exec(&txn).await?.rows_affected;
    if updated == 1 && outcome == "failed" {
        let event = Event::new(AuditEventKind::MailFailed).detail(json!({
            "outbox_id": id,
            "kind": row.kind,
            "attempts": attempts,
            "error": result.err().map(|f| match f {
                Failure::Transient(c) | Failure::Permanent(c) => c,
            }),
        }));
        audit::record(&txn, now, &RequestMeta::local("mail-sender"), event).await?;
    }
    txn.commit().await?;
    if updated == 0 {
        // The lease ran out mid-send and another sender took the row.
        tracing::warn!(outbox_id = %id, "mail claim lost before the outcome was recorded");
    }
    state
        .metrics
        .mail_sent
        .with_label_values(&[row.kind.as_str(), outcome])
        .inc();
    match outcome {
        "sent" => tracing::info!(outbox_id = %id, kind = %row.kind, attempts, "mail sent"),
        "retry" => {
            tracing::warn!(outbox_id = %id, kind = %row.kind, attempts, "mail delivery failed; will retry")
        }
        _ => tracing::error!(outbox_id = %id, kind = %row.kind, attempts, "mail delivery given up"),
    }
    Ok(outcome == "sent")
}

/// The SMTP envelope: `WARDEN_MAIL_FROM`'s address to `recipient`.
fn envelope(config: &Config, recipient: &str) -> Option<Envelope> {
    let from: Mailbox = config.mail_from.parse().ok()?;
    let to: Address = recipient.parse().ok()?;
    Envelope::new(Some(from.email), vec![to]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        for attempts in 1..=30 {
            let full = (BACKOFF_BASE * 2_i32.pow(u32::try_from(attempts - 1).unwrap_or(0).min(20)))
                .min(BACKOFF_CAP);
            let d = backoff(attempts);
            assert!(d <= full && d >= full / 2, "attempt {attempts}: {d}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }

    fn transport(url: &str, password: Option<&str>) -> Result<Transport, String> {
        let mut config = Config::defaults().map_err(|e| e.to_string())?;
        config.smtp_url = Some(SecretString::from(url.to_owned()));
        config.smtp_password = password.map(|p| SecretString::from(p.to_owned()));
        Transport::from_config(&config)
    }

    #[tokio::test]
    async fn smtp_urls_choose_tls_and_never_show_the_password() {
        let shown = |url: &str, password: Option<&str>| {
            transport(url, password)
                .map(|t| t.describe())
                .unwrap_or_else(|e| format!("error: {e}"))
        };
        assert_eq!(
            shown("smtp://bob:s3cret@mail.example.com", None),
            "SMTP relay smtp://bob@mail.example.com (STARTTLS required)"
        );
        assert_eq!(
            shown("smtps://bob@mail.example.com:2465", Some("s3cret")),
            "SMTP relay smtps://bob@mail.example.com:2465 (implicit TLS)"
        );
        assert_eq!(
            shown("smtp://127.0.0.1:2525", None),
            "SMTP relay smtp://127.0.0.1:2525 (plain, loopback)"
        );
        assert_eq!(
            shown("smtp://[::1]:2525", None),
            "SMTP relay smtp://[::1]:2525 (plain, loopback)"
        );
        assert_eq!(
            shown("smtp://localhost", None),
            "SMTP relay smtp://localhost (plain, loopback)"
        );
        assert!(shown("smtp://bob@mail.example.com", None).starts_with("error: "));
        let mut config = Config::defaults().expect("defaults");
        config.mail_dir = PathBuf::from("/var/mail/warden");
        assert_eq!(
            Transport::from_config(&config).map(|t| t.describe()),
            Ok(".eml files in /var/mail/warden".to_owned())
        );
    }

    #[test]
    fn userinfo_is_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
    }
}
