//! The login lockout, kept in the database: a lock that a stranger cannot
//! turn against the account's owner (after OWASP's device-cookie design).
//!
//! Two counters see every attempt at an email's password, each a row of
//! `login_attempts` keyed by the email's pseudonym (a keyed hash, never the
//! address):
//! - the *client's* count for that email (the client is its IP bucket, or,
//!   when it proves to be a trusted device of the account, that device): at
//!   `WARDEN_LOCKOUT_THRESHOLD` failures in a window, that client alone is
//!   locked out of that email for `WARDEN_LOCKOUT_DURATION`;
//! - the *email's* count from every client: at
//!   `WARDEN_LOCKOUT_GLOBAL_THRESHOLD` in a window, the email is closed to
//!   every client but its trusted devices until a window has passed.
//!
//! So an attacker locks out only their own addresses, and a distributed
//! attack shuts out other untrusted clients while the owner's devices, each
//! counted on its own, keep their full allowance.
//!
//! An attempt is *reserved* before its password is checked: both counters
//! are incremented in one transaction that holds both rows (`BEGIN
//! IMMEDIATE` on SQLite, `SELECT … FOR UPDATE` on Postgres, the email's row
//! first, so two attempts never wait on each other in a circle). The attempt
//! that reaches a threshold arms the lock; any attempt reserved after it is
//! refused without a password check and without touching either row, so
//! refused tries never extend a lock. However many guesses arrive at once,
//! at most the threshold of passwords are checked. A success clears the
//! client's count, not the email's: the email's count measures an attack
//! from everywhere, which the owner's login does not end, and clearing it
//! would give the attack a fresh allowance each time the owner logs in. An
//! attempt whose password the hasher refused to check (overload) gives its
//! reservations back, and with them any lock it armed.
//!
//! [`reserve`] hands the counted attempt back as an [`Attempt`], a value
//! whose only ways out consume it ([`Attempt::check`], then
//! [`Success::settle`]), so no caller can reserve and forget to give back
//! or settle. Here: storage (the rows, reserving, unlocking); in
//! `attempt.rs` the attempt value, giving back and settling; the pure
//! rules in `rules.rs` (both counters), `counter.rs` (one counter) and
//! `keys.rs` (the rows' keys).

mod attempt;
mod counter;
mod keys;
mod rules;

pub use attempt::{Admission, Attempt, Checked, Failure, Lock, Success};
use chrono::{DateTime, Utc};
pub use counter::{give_back, Counter, Policies, Policy, Step};
use entity::login_attempt;
pub use keys::{Client, Keys};
pub use rules::{decide, Reservation, Scope, Verdict};
use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};

use crate::{error::AppError, state::AppState};

/// [`reserve`], with a lock answered as `ACCOUNT_LOCKED` (for checks other
/// than `login`'s, which reports its refusal its own way).
pub async fn admit(state: &AppState, keys: Keys) -> Result<Attempt, AppError> {
    match reserve(state, keys).await? {
        Admission::Proceed(attempt) => Ok(attempt),
        Admission::Locked(lock) => Err(AppError::AccountLocked {
            retry_after: lock.retry_after(state.clock.now()),
        }),
    }
}

/// Reserves one attempt at the password of the email of `keys`: counts it
/// on both counters, or finds it locked out. Before any hashing.
#[tracing::instrument(skip_all)]
pub async fn reserve(state: &AppState, keys: Keys) -> Result<Admission, AppError> {
    let policies = Policies::from_config(&state.config);
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    // The email's row is created if need be and held: every attempt at
    // this email, from any client, waits for it, so the client's row needs
    // no lock of its own (and no one holds a client's row waiting for the
    // email's: no deadlock). The client's row is created only by an attempt
    // that counts, so refused attempts from ever new addresses add no rows.
    login_attempt::Entity::insert(row(&keys.email, Counter::fresh(now), now))
        .on_conflict(
            OnConflict::column(login_attempt::Column::Email)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    let (client, email) = held_counters(state, &txn, &keys).await?;
    if email.is_none() {
        return Err(AppError::internal(
            "login_attempts row missing after insert",
        ));
    }
    let (client_next, email_next, verdict) = decide(client, email, now, policies, keys.trusted);
    store(&txn, &keys.client, client, client_next, now).await?;
    store(&txn, &keys.email, email, email_next, now).await?;
    txn.commit().await?;
    Ok(match verdict {
        Verdict::Proceed(reservation) => Admission::Proceed(Attempt::new(keys, reservation)),
        Verdict::Locked { until, scope } => Admission::Locked(Lock { until, scope }),
    })
}

/// The counters of `keys` (client's, email's), their rows held until `txn`
/// ends.
async fn held_counters(
    state: &AppState,
    txn: &DatabaseTransaction,
    keys: &Keys,
) -> Result<(Option<Counter>, Option<Counter>), AppError> {
    // One statement, in key order: the email's row (a prefix of the
    // client's key) is locked first, as everywhere.
    let mut select = login_attempt::Entity::find()
        .filter(login_attempt::Column::Email.is_in([keys.email.as_str(), keys.client.as_str()]))
        .order_by_asc(login_attempt::Column::Email);
    if !state.db.is_sqlite() {
        // SQLite's BEGIN IMMEDIATE already holds the only write lock.
        select = select.lock_exclusive();
    }
    let rows = select.all(txn).await?;
    let counter = |key: &str| {
        rows.iter().find(|row| row.email == key).map(|row| Counter {
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            window_started_at: row.window_started_at,
            locked_until: row.locked_until,
        })
    };
    Ok((counter(&keys.client), counter(&keys.email)))
}

/// A row holding `counter`.
fn row(key: &str, counter: Counter, now: DateTime<Utc>) -> login_attempt::ActiveModel {
    login_attempt::ActiveModel {
        email: Set(key.to_owned()),
        attempts: Set(i32::try_from(counter.attempts).unwrap_or(i32::MAX)),
        window_started_at: Set(counter.window_started_at),
        locked_until: Set(counter.locked_until),
        updated_at: Set(now),
    }
}

/// Writes `next` over `current` (nothing when they are the same), creating
/// the row when there was none.
async fn store(
    txn: &DatabaseTransaction,
    key: &str,
    current: Option<Counter>,
    next: Option<Counter>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let Some(next) = next.filter(|next| Some(*next) != current) else {
        return Ok(());
    };
    if current.is_none() {
        // Under the email's row lock no one else writes this row; should
        // cleanup or an unlock race it, the upsert still leaves `next`.
        login_attempt::Entity::insert(row(key, next, now))
            .on_conflict(
                OnConflict::column(login_attempt::Column::Email)
                    .update_columns([
                        login_attempt::Column::Attempts,
                        login_attempt::Column::WindowStartedAt,
                        login_attempt::Column::LockedUntil,
                        login_attempt::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        return Ok(());
    }
    login_attempt::Entity::update_many()
        .col_expr(
            login_attempt::Column::Attempts,
            i32::try_from(next.attempts).unwrap_or(i32::MAX).into(),
        )
        .col_expr(
            login_attempt::Column::WindowStartedAt,
            next.window_started_at.into(),
        )
        .col_expr(login_attempt::Column::LockedUntil, next.locked_until.into())
        .col_expr(login_attempt::Column::UpdatedAt, now.into())
        .filter(login_attempt::Column::Email.eq(key))
        .exec(txn)
        .await?;
    Ok(())
}

/// Clears every counter of the email whose pseudonym is `pseudonym`: the
/// email's own and each client's (for an administrator's unlock). Client
/// keys extend the email's key, so one prefix finds them all. Returns the
/// rows deleted.
pub async fn unlock<C: sea_orm::ConnectionTrait>(
    conn: &C,
    pseudonym: &str,
) -> Result<u64, AppError> {
    let done = login_attempt::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(login_attempt::Column::Email.eq(pseudonym))
                .add(login_attempt::Column::Email.starts_with(format!("{pseudonym}|"))),
        )
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}

/// Seconds until `until`, rounded up, at least 1.
pub fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let micros = (until - now).num_microseconds().unwrap_or(i64::MAX).max(0);
    let secs = u64::try_from(micros).unwrap_or(0).div_ceil(1_000_000);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn retry_after_rounds_up() {
        let later = t0() + chrono::TimeDelta::milliseconds(1500);
        assert_eq!(seconds_until(later, t0()), 2);
        assert_eq!(seconds_until(t0(), t0()), 1);
    }
}
