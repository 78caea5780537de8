//! The per-email login lockout, kept in the database.
//!
//! An attempt is *reserved* before its password is checked: the counter is
//! incremented in a transaction that holds the row (`BEGIN IMMEDIATE` on
//! SQLite, `SELECT … FOR UPDATE` on Postgres). The attempt that reaches the
//! threshold arms the lock; any attempt reserved after it is refused without
//! a password check. So however many guesses arrive at once, exactly
//! `threshold` passwords are checked per window. A successful login clears
//! the row; an armed lock whose attempt then failed is audited as
//! `ACCOUNT_LOCKED`. An attempt whose password the hasher refused to check
//! (overload) gives its reservation back, and with it any lock it armed.

use chrono::{DateTime, TimeDelta, Utc};
use entity::login_attempt;
use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QuerySelect,
};

use crate::{
    auth::email::Email, clock::delta, config::Config, db::FetchUnique, error::AppError,
    state::AppState,
};

/// Threshold, window and duration from `WARDEN_LOCKOUT_*`.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts per window that lock the email.
    pub threshold: u32,
    /// How long attempts count.
    pub window: TimeDelta,
    /// How long a lock lasts.
    pub duration: TimeDelta,
}

impl Policy {
    /// The configured policy.
    pub fn from_config(config: &Config) -> Self {
        Self {
            threshold: config.lockout_threshold.max(1),
            window: delta(config.lockout_window),
            duration: delta(config.lockout_duration),
        }
    }
}

/// The counter of one email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Attempts reserved in this window.
    pub attempts: u32,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// Locked until then, if set and in the future.
    pub locked_until: Option<DateTime<Utc>>,
}

/// Whether an attempt may check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password. `arms_lock`: this attempt reached the threshold,
    /// so the email is now locked unless its password turns out right.
    Proceed {
        /// This attempt armed the lock.
        arms_lock: bool,
    },
    /// Locked: refuse without checking anything.
    Locked {
        /// When the lock ends.
        until: DateTime<Utc>,
    },
}

/// The pure state transition of one reservation.
pub fn reserve(current: Option<Counter>, now: DateTime<Utc>, policy: Policy) -> (Counter, Verdict) {
    if let Some(counter) = current {
        if let Some(until) = counter.locked_until.filter(|until| *until > now) {
            return (counter, Verdict::Locked { until });
        }
    }
    let fresh = Counter {
        attempts: 0,
        window_started_at: now,
        locked_until: None,
    };
    let mut counter = match current {
        // An expired lock or an expired window starts over.
        Some(c) if c.locked_until.is_none() && c.window_started_at + policy.window > now => c,
        _ => fresh,
    };
    counter.attempts = counter.attempts.saturating_add(1);
    let arms_lock = counter.attempts >= policy.threshold;
    if arms_lock {
        counter.locked_until = Some(now + policy.duration);
    }
    (counter, Verdict::Proceed { arms_lock })
}

/// Reserves one login attempt for `email`.
#[tracing::instrument(skip_all)]
pub async fn reserve_attempt(state: &AppState, email: &Email) -> Result<Verdict, AppError> {
    let policy = Policy::from_config(&state.config);
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    login_attempt::Entity::insert(login_attempt::ActiveModel {
        email: Set(email.as_str().to_owned()),
        attempts: Set(0),
        window_started_at: Set(now),
        locked_until: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(login_attempt::Column::Email)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let current = held_counter(state, &txn, email)
        .await?
        .ok_or_else(|| AppError::internal("login_attempts row missing after insert"))?;
    let (next, verdict) = reserve(Some(current), now, policy);
    store(&txn, email, current, next, now).await?;
    txn.commit().await?;
    Ok(verdict)
}

/// The state transition of giving a reservation back: one attempt fewer,
/// and the lock gone if this attempt armed it. (If the window started over
/// while the attempt waited, the attempt it takes back is the new window's:
/// at worst one guess more, and only for an attempt the server refused.)
pub fn give_back(counter: Counter, armed_lock: bool) -> Counter {
    Counter {
        attempts: counter.attempts.saturating_sub(1),
        locked_until: if armed_lock {
            None
        } else {
            counter.locked_until
        },
        ..counter
    }
}

/// Gives back the reservation of an attempt whose password was never
/// checked (the hasher refused it: overloaded, or stopped). Such an attempt
/// guessed nothing, so it must not count, and above all must not leave the
/// lock it armed: overload must never lock a real user out.
#[tracing::instrument(skip_all)]
pub async fn release_attempt(
    state: &AppState,
    email: &Email,
    armed_lock: bool,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    if let Some(current) = held_counter(state, &txn, email).await? {
        store(&txn, email, current, give_back(current, armed_lock), now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The counter of `email`, its row held until `txn` ends.
async fn held_counter(
    state: &AppState,
    txn: &DatabaseTransaction,
    email: &Email,
) -> Result<Option<Counter>, AppError> {
    let mut select = login_attempt::Entity::find_by_id(email.as_str().to_owned());
    if !state.db.is_sqlite() {
        // SQLite's BEGIN IMMEDIATE already holds the only write lock.
        select = select.lock_exclusive();
    }
    Ok(select.unique(txn).await?.map(|row| Counter {
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        window_started_at: row.window_started_at,
        locked_until: row.locked_until,
    }))
}

/// Writes `next` over `current` (nothing when they are the same).
async fn store(
    txn: &DatabaseTransaction,
    email: &Email,
    current: Counter,
    next: Counter,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if next == current {
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
        .filter(login_attempt::Column::Email.eq(email.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

/// A successful login clears the counter (and any lock it armed).
/// Runs inside the caller's transaction, so a login costs one commit less.
pub async fn clear<C: sea_orm::ConnectionTrait>(conn: &C, email: &Email) -> Result<(), AppError> {
    login_attempt::Entity::delete_many()
        .filter(login_attempt::Column::Email.eq(email.as_str()))
        .exec(conn)
        .await?;
    Ok(())
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

    fn policy() -> Policy {
        Policy {
            threshold: 3,
            window: TimeDelta::minutes(15),
            duration: TimeDelta::minutes(15),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn the_threshold_attempt_arms_the_lock_and_later_ones_are_refused() {
        let mut state = None;
        let mut verdicts = Vec::new();
        for _ in 0..5 {
            let (next, verdict) = reserve(state, t0(), policy());
            state = Some(next);
            verdicts.push(verdict);
        }
        let until = t0() + TimeDelta::minutes(15);
        assert_eq!(
            verdicts,
            [
                Verdict::Proceed { arms_lock: false },
                Verdict::Proceed { arms_lock: false },
                Verdict::Proceed { arms_lock: true },
                Verdict::Locked { until },
                Verdict::Locked { until },
            ]
        );
    }

    #[test]
    fn a_lock_ends_after_its_duration_and_counting_starts_over() {
        let (s1, _) = reserve(
            None,
            t0(),
            Policy {
                threshold: 1,
                ..policy()
            },
        );
        let later = t0() + TimeDelta::minutes(15);
        let (s2, verdict) = reserve(
            Some(s1),
            later,
            Policy {
                threshold: 2,
                ..policy()
            },
        );
        assert_eq!(verdict, Verdict::Proceed { arms_lock: false });
        assert_eq!(s2.attempts, 1);
        assert_eq!(s2.locked_until, None);
    }

    #[test]
    fn attempts_outside_the_window_do_not_add_up() {
        let (s1, _) = reserve(None, t0(), policy());
        let (s2, _) = reserve(Some(s1), t0() + TimeDelta::minutes(1), policy());
        let (s3, verdict) = reserve(Some(s2), t0() + TimeDelta::minutes(16), policy());
        assert_eq!(s3.attempts, 1);
        assert_eq!(verdict, Verdict::Proceed { arms_lock: false });
    }

    #[test]
    fn giving_back_the_arming_attempt_unlocks_and_uncounts_it() {
        let mut state = None;
        for _ in 0..3 {
            state = Some(reserve(state, t0(), policy()).0);
        }
        let armed = state.unwrap_or_else(|| unreachable!("three reservations were made"));
        assert!(armed.locked_until.is_some());
        let back = give_back(armed, true);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.locked_until, None);
        let (_, verdict) = reserve(Some(back), t0(), policy());
        assert_eq!(
            verdict,
            Verdict::Proceed { arms_lock: true },
            "the next attempt arms it again"
        );
        let plain = give_back(back, false);
        assert_eq!((plain.attempts, plain.window_started_at), (1, t0()));
        assert_eq!(
            give_back(give_back(plain, false), false).attempts,
            0,
            "never below zero"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(seconds_until(t0() + TimeDelta::milliseconds(1500), t0()), 2);
        assert_eq!(seconds_until(t0(), t0()), 1);
    }
}
