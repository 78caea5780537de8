//! A reserved attempt at an email's password, as a value that owns its
//! check: [`Attempt`] comes only from [`super::reserve`], and every way out
//! of it consumes it, so a caller cannot reserve and forget what follows.
//!
//! - [`Attempt::check`] runs the password check. When the hasher could not
//!   check it (overloaded, or stopped) the attempt gives its reservation
//!   back before the error returns: it guessed nothing, and must not lock
//!   anyone out. A wrong password leaves the attempt counted
//!   ([`Checked::Wrong`], with the locks it armed, for the audit); a right
//!   one hands back a [`Success`] to settle inside the transaction that acts
//!   on it ([`Success::settle`]).
//! - An attempt (or a success) dropped on an error path stays counted as a
//!   failure: the conservative side, and what happened before this value.

use std::future::Future;

use chrono::{DateTime, Utc};
use entity::login_attempt;
use sea_orm::{sea_query::Expr, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{give_back, held_counters, seconds_until, store, Keys, Reservation, Scope};
use crate::{error::AppError, state::AppState};

/// What [`super::reserve`] decided about one attempt.
#[must_use = "a counted attempt must be checked, and a lock answered"]
#[derive(Debug)]
pub enum Admission {
    /// Counted on both counters: check the password through the attempt.
    Proceed(Attempt),
    /// A live lock refused the attempt before any check; nothing counted.
    Locked(Lock),
}

/// A live lock that refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// When the lock ends.
    pub until: DateTime<Utc>,
    /// Whose lock: the client's, or the email's.
    pub scope: Scope,
}

impl Lock {
    /// Seconds until the lock ends, rounded up, at least 1 (the
    /// `retryAfter` of `ACCOUNT_LOCKED`).
    pub fn retry_after(&self, now: DateTime<Utc>) -> u64 {
        seconds_until(self.until, now)
    }
}

/// An attempt the lockout has counted, waiting for its password check.
#[must_use = "an attempt counts as a failure until it is checked"]
#[derive(Debug)]
pub struct Attempt {
    keys: Keys,
    reservation: Reservation,
}

/// The answer of [`Attempt::check`].
#[must_use = "a right password must be settled, a wrong one answered"]
#[derive(Debug)]
pub enum Checked<T> {
    /// The password was right: `T` is what the check proved (the account,
    /// say). Settle the [`Success`] in the transaction that acts on it.
    Right(Success, T),
    /// The password was wrong: the attempt stays counted.
    Wrong(Failure),
}

/// A right password whose attempt is not settled yet.
#[must_use = "a success left unsettled counts as a failure"]
#[derive(Debug)]
pub struct Success {
    keys: Keys,
    reservation: Reservation,
}

/// A wrong password: what its attempt armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    reservation: Reservation,
}

impl Attempt {
    /// An attempt that `reservation` counted for `keys`.
    pub(super) fn new(keys: Keys, reservation: Reservation) -> Self {
        Self { keys, reservation }
    }

    /// Runs `check`, the password check of this attempt: `Ok(Some(value))`
    /// when the password is right, `Ok(None)` when it is wrong, an error
    /// when it could not be checked. On an error the reservation is given
    /// back first (a failure to give it back is logged, and the check's
    /// error returned).
    pub async fn check<T>(
        self,
        state: &AppState,
        check: impl Future<Output = Result<Option<T>, AppError>>,
    ) -> Result<Checked<T>, AppError> {
        match check.await {
            Ok(Some(value)) => Ok(Checked::Right(
                Success {
                    keys: self.keys,
                    reservation: self.reservation,
                },
                value,
            )),
            Ok(None) => Ok(Checked::Wrong(Failure {
                reservation: self.reservation,
            })),
            Err(err) => {
                if let Err(release) = release(state, &self.keys, self.reservation).await {
                    tracing::error!(error = %release, "could not give back a lockout reservation");
                }
                Err(err)
            }
        }
    }
}

impl Success {
    /// Settles a right password inside the transaction that acts on it:
    /// the email's counter forgives the attempt, then the client's count is
    /// cleared. In that order because a reservation holds the email's row
    /// before the client's: a success taking them the other way round
    /// deadlocked with a concurrent attempt on Postgres.
    pub async fn settle<C: ConnectionTrait>(self, conn: &C) -> Result<(), AppError> {
        forgive(conn, &self.keys, self.reservation).await?;
        clear(conn, &self.keys).await
    }
}

impl Failure {
    /// The locks this failure armed, the client's before the email's.
    pub fn armed(&self) -> impl Iterator<Item = Scope> {
        [
            (self.reservation.arms_client, Scope::Client),
            (self.reservation.arms_email, Scope::Email),
        ]
        .into_iter()
        .filter_map(|(armed, scope)| armed.then_some(scope))
    }
}

/// Gives back the reservation of an attempt whose password was never
/// checked (the hasher refused it: overloaded, or stopped). Such an attempt
/// guessed nothing, so it must not count, and above all must not leave the
/// lock it armed: overload must never lock a real user out.
#[tracing::instrument(skip_all)]
async fn release(state: &AppState, keys: &Keys, reservation: Reservation) -> Result<(), AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let (client, email) = held_counters(state, &txn, keys).await?;
    let client_back = client.map(|c| give_back(c, reservation.arms_client));
    store(&txn, &keys.client, client, client_back, now).await?;
    if reservation.counted_email {
        let email_back = email.map(|c| give_back(c, reservation.arms_email));
        store(&txn, &keys.email, email, email_back, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// A success is not a failure: it gives back what it counted on the
/// email's counter (and the email's lock, if it armed it), so the email's
/// count is of failures alone. Inside the login's transaction; one atomic
/// `UPDATE`, so no row needs holding.
async fn forgive<C: ConnectionTrait>(
    conn: &C,
    keys: &Keys,
    reservation: Reservation,
) -> Result<(), AppError> {
    if !reservation.counted_email {
        return Ok(());
    }
    let mut update = login_attempt::Entity::update_many()
        .col_expr(
            login_attempt::Column::Attempts,
            sea_orm::sea_query::ExprTrait::sub(Expr::col(login_attempt::Column::Attempts), 1),
        )
        .filter(login_attempt::Column::Email.eq(keys.email.as_str()))
        .filter(login_attempt::Column::Attempts.gt(0));
    if reservation.arms_email {
        update = update.col_expr(
            login_attempt::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    }
    update.exec(conn).await?;
    Ok(())
}

/// A successful login clears the client's counter (never the email's: see
/// the module docs of [`super`]). Runs inside the caller's transaction, so
/// a login costs one commit less.
async fn clear<C: ConnectionTrait>(conn: &C, keys: &Keys) -> Result<(), AppError> {
    login_attempt::Entity::delete_many()
        .filter(login_attempt::Column::Email.eq(keys.client.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(arms_client: bool, arms_email: bool) -> Failure {
        Failure {
            reservation: Reservation {
                arms_client,
                arms_email,
                counted_email: true,
            },
        }
    }

    #[test]
    fn a_failure_names_the_locks_it_armed_client_first() {
        let armed = |f: Failure| f.armed().collect::<Vec<_>>();
        assert_eq!(armed(failure(false, false)), []);
        assert_eq!(armed(failure(true, false)), [Scope::Client]);
        assert_eq!(armed(failure(false, true)), [Scope::Email]);
        assert_eq!(armed(failure(true, true)), [Scope::Client, Scope::Email]);
    }

    #[test]
    fn a_lock_answers_its_retry_after_rounded_up() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let lock = Lock {
            until: now + chrono::TimeDelta::milliseconds(1500),
            scope: Scope::Email,
        };
        assert_eq!(lock.retry_after(now), 2);
        assert_eq!(lock.retry_after(lock.until), 1);
    }
}
