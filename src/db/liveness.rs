//! Session checks, batched: is the session behind an access token still
//! alive, and who owns it?
//!
//! Every authenticated request needs this answer from the database, so that
//! `logout` takes effect on the very next request on every instance. One
//! query per request made that query the cost of a `me` (on SQLite each one
//! is a hand-off to the connection's worker thread and back). Instead,
//! requests queue their check and a small dispatcher answers whatever has
//! queued with one `WHERE sessions.id IN (...)` query.
//!
//! On a SQLite file the check is answered in place instead, without the
//! hand-off (see `inline`); the batched query is then only the fallback.
//! The API key a request presents is read in place the same way
//! ([`SessionChecks::api_key_in_place`]), falling back to one query.
//!
//! Nothing is cached and nothing waits for company: a check that arrives
//! when the dispatcher is idle runs at once, alone. Checks only share a query
//! when they queued while earlier queries were running, and every query
//! starts after each of its checks was queued, so it sees every revocation
//! committed before the request asked. Under load, batches grow by
//! themselves.
//!
//! It lives under `db`, not `services`: it is a read mechanism over the
//! store (which query, on which connection, batched how), with no use case
//! and no audit row in it. `AppState` holds one, and the state sits below
//! the services, so the checker must sit below the state too. Nothing here
//! may import `services`, `state`, `graphql` or `http`; the services decide
//! what a dead session means for a request.

use std::{collections::HashMap, fmt, sync::Arc};

use entity::{api_key, session, user};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryResult, QuerySelect,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use super::Db;
use crate::{clock::Clock, error::AppError};

mod inline;

use inline::{InlineChecks, InlineError};

/// At most this many checks share one query.
const MAX_BATCH: usize = 64;
/// Queries in flight at once. Two keep a check from waiting behind a whole
/// query at light load while leaving batches large when the store is busy.
const MAX_IN_FLIGHT: usize = 2;

/// One queued check and where its answer goes.
struct Check {
    session: Uuid,
    user: Uuid,
    reply: oneshot::Sender<Result<Option<user::Model>, AppError>>,
}

/// The handle requests use; the dispatcher lives as long as a handle does.
#[derive(Clone)]
pub struct SessionChecks {
    queue: mpsc::UnboundedSender<Check>,
    /// In-place checks on a SQLite file.
    inline: Option<Arc<InlineChecks>>,
    clock: Clock,
}

impl fmt::Debug for SessionChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionChecks").finish_non_exhaustive()
    }
}

impl SessionChecks {
    /// Starts the dispatcher on the current Tokio runtime.
    pub fn start(db: Db, clock: Clock) -> Self {
        let inline = db.sqlite_file().and_then(|path| match InlineChecks::open(path) {
            Ok(checks) => Some(Arc::new(checks)),
            Err(err) => {
                tracing::warn!(error = %err, "session checks cannot read the SQLite file directly; they go through the pool");
                None
            }
        });
        Self::with_inline(db, clock, inline)
    }

    /// Checks that always take the batched query, as on Postgres or when
    /// the in-place read is unavailable: lets a SQLite test reach the path
    /// a plain `cargo test` would otherwise never take.
    #[cfg(test)]
    fn batched_only(db: Db, clock: Clock) -> Self {
        Self::with_inline(db, clock, None)
    }

    fn with_inline(db: Db, clock: Clock, inline: Option<Arc<InlineChecks>>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(db, clock.clone(), rx));
        Self {
            queue,
            inline,
            clock,
        }
    }

    /// The owner of `session` if the session is alive (not revoked, not
    /// expired) and belongs to `user`; `None` otherwise.
    pub async fn owner(&self, session: Uuid, user: Uuid) -> Result<Option<user::Model>, AppError> {
        if let Some(inline) = &self.inline {
            match inline.owner(session, user, self.clock.now()) {
                Ok(owner) => return Ok(owner),
                Err(InlineError::Off) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "an inline session check failed; asking the pool");
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Check {
                session,
                user,
                reply,
            })
            .map_err(|_| AppError::internal("the session-check dispatcher has stopped"))?;
        answer
            .await
            .map_err(|_| AppError::internal("a session check was dropped unanswered"))?
    }

    /// The API key whose secret hashes to `hash`, with its owner, read in
    /// place on a SQLite file (the same connections and reasons as the
    /// session check: an API key is looked up on every request that
    /// presents one). `None` when it cannot be read in place (Postgres, a
    /// database in memory, the in-place reads switched off, or a failed
    /// read): the caller asks the pool. `Some(None)`: no key has that hash.
    pub fn api_key_in_place(
        &self,
        hash: &str,
    ) -> Option<Option<(api_key::Model, Option<user::Model>)>> {
        match self.inline.as_ref()?.key(hash) {
            Ok(found) => Some(found),
            Err(InlineError::Off) => None,
            Err(err) => {
                tracing::debug!(error = %err, "an in-place API key read failed; asking the pool");
                None
            }
        }
    }
}

/// Takes whatever has queued (up to [`MAX_BATCH`]) whenever a query slot is
/// free, and answers it with one query.
async fn dispatch(db: Db, clock: Clock, mut rx: mpsc::UnboundedReceiver<Check>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        // Let the tasks that are ready run first: requests being parsed right
        // now queue their checks and share this query. With nothing else
        // ready this returns at once; there is no timer.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(check) => batch.push(check),
                Err(_) => break,
            }
        }
        let (db, clock) = (db.clone(), clock.clone());
        tokio::spawn(async move {
            answer(&db, &clock, batch).await;
            drop(slot);
        });
    }
}

async fn answer(db: &Db, clock: &Clock, batch: Vec<Check>) {
    match live_owners(db, clock, &batch).await {
        Ok(alive) => {
            for check in batch {
                let owner = alive
                    .get(&check.session)
                    .filter(|owner| owner.id == check.user)
                    .cloned();
                // A receiver that is gone belongs to a request that ended.
                let _ = check.reply.send(Ok(owner));
            }
        }
        Err(err) => {
            let err = Arc::new(err);
            for check in batch {
                let _ = check.reply.send(Err(AppError::from_shared_db(&err)));
            }
        }
    }
}

/// The live sessions among the batch's, each with its owner. The id list is
/// padded to a power of two so that SQLite and Postgres see a handful of
/// statement shapes and reuse their prepared statements.
async fn live_owners(
    db: &Db,
    clock: &Clock,
    batch: &[Check],
) -> Result<HashMap<Uuid, user::Model>, DbErr> {
    let mut ids: Vec<Uuid> = batch.iter().map(|c| c.session).collect();
    ids.sort_unstable();
    ids.dedup();
    if let Some(&last) = ids.last() {
        ids.resize(ids.len().next_power_of_two(), last);
    }
    let now = clock.now();
    // Only the session's id is read back, not its row: the user agent, IP and
    // timestamps would be copied and decoded on every request for nothing.
    let rows = user::Entity::find()
        .inner_join(session::Entity)
        .column_as(session::Column::Id, LIVE_SESSION_ID)
        .filter(session::Column::Id.is_in(ids))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .into_model::<LiveOwner>()
        .all(db.read())
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.session, row.user))
        .collect())
}

/// The alias of the session id in [`live_owners`]' select list.
const LIVE_SESSION_ID: &str = "live_session_id";

/// One row of [`live_owners`]: a live session's id and its owner.
struct LiveOwner {
    session: Uuid,
    user: user::Model,
}

impl FromQueryResult for LiveOwner {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            session: row.try_get(pre, LIVE_SESSION_ID)?,
            user: user::Model::from_query_result(row, pre)?,
        })
    }
}

#[cfg(test)]
mod tests;
