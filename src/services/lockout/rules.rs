//! The lockout's rules as a pure state transition, apart from storage:
//! one attempt over the client's and the email's counters ([`decide`]),
//! what it reserved ([`Reservation`]) and which lock refused it ([`Scope`]).
//! The arithmetic of one counter is in [`super::counter`], the keys of
//! the two rows in [`super::keys`].

use chrono::{DateTime, Utc};

use super::counter::{reserve, Counter, Policies, Step};

/// Which lock refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This client's, for this email.
    Client,
    /// The email's, for every client but its trusted devices.
    Email,
}

impl Scope {
    /// The name in audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Email => "email",
        }
    }
}

/// What a reservation took, so that it can be given back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    /// This attempt armed the client's lock.
    pub arms_client: bool,
    /// This attempt armed the email's lock.
    pub arms_email: bool,
    /// The email's counter counted it (a trusted device's attempt while the
    /// email is locked does not: it neither extends nor relies on that lock).
    pub counted_email: bool,
}

/// Whether an attempt may check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password.
    Proceed(Reservation),
    /// Locked: refuse without checking anything.
    Locked {
        /// When the lock ends.
        until: DateTime<Utc>,
        /// Whose lock.
        scope: Scope,
    },
}

/// The pure transition of one attempt over both counters: the client's
/// lock refuses first, then the email's (unless the client is a trusted
/// device); a refusal changes neither counter.
pub fn decide(
    client: Option<Counter>,
    email: Option<Counter>,
    now: DateTime<Utc>,
    policies: Policies,
    trusted: bool,
) -> (Option<Counter>, Option<Counter>, Verdict) {
    let live_lock = |c: Option<Counter>| c.and_then(|c| c.locked_until).filter(|u| *u > now);
    if let Some(until) = live_lock(client) {
        let scope = Scope::Client;
        return (client, email, Verdict::Locked { until, scope });
    }
    let email_locked = live_lock(email);
    if let (Some(until), false) = (email_locked, trusted) {
        let scope = Scope::Email;
        return (client, email, Verdict::Locked { until, scope });
    }
    let (client_next, client_step) = reserve(client, now, policies.client);
    let mut reservation = Reservation {
        arms_client: client_step == Step::Proceed { arms_lock: true },
        ..Reservation::default()
    };
    let email_next = if email_locked.is_some() {
        email
    } else {
        let (next, step) = reserve(email, now, policies.email);
        reservation.counted_email = true;
        reservation.arms_email = step == Step::Proceed { arms_lock: true };
        Some(next)
    };
    (Some(client_next), email_next, Verdict::Proceed(reservation))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::services::lockout::counter::{
        tests::{policy, t0},
        Policy,
    };

    fn policies() -> Policies {
        Policies {
            client: policy(),
            email: Policy {
                threshold: 5,
                window: TimeDelta::minutes(15),
                duration: TimeDelta::minutes(15),
            },
        }
    }

    /// Runs `n` attempts of one client through `decide`.
    fn attempts(
        mut client: Option<Counter>,
        mut email: Option<Counter>,
        n: usize,
        trusted: bool,
    ) -> (Option<Counter>, Option<Counter>, Vec<Verdict>) {
        let mut verdicts = Vec::new();
        for _ in 0..n {
            let (c, e, v) = decide(client, email, t0(), policies(), trusted);
            (client, email) = (c, e);
            verdicts.push(v);
        }
        (client, email, verdicts)
    }

    #[test]
    fn a_client_locks_only_itself_and_the_email_locks_only_untrusted_clients() {
        let (a, email, verdicts) = attempts(None, None, 4, false);
        let until = t0() + TimeDelta::minutes(15);
        assert_eq!(
            verdicts[3],
            Verdict::Locked {
                until,
                scope: Scope::Client
            }
        );
        assert_eq!(a.map(|c| c.attempts), Some(3));
        assert_eq!(
            email.map(|c| c.attempts),
            Some(3),
            "the refusal counted nowhere"
        );
        // Another client is not locked; its second attempt is the email's fifth.
        let (_, email, verdicts) = attempts(None, email, 3, false);
        let armed = Verdict::Proceed(Reservation {
            arms_client: false,
            arms_email: true,
            counted_email: true,
        });
        assert_eq!(verdicts[1], armed);
        assert_eq!(
            verdicts[2],
            Verdict::Locked {
                until,
                scope: Scope::Email
            }
        );
        // A trusted device passes the email's lock, without extending it.
        let (_, after, verdicts) = attempts(None, email, 2, true);
        assert!(matches!(
            verdicts[..],
            [
                Verdict::Proceed(Reservation {
                    counted_email: false,
                    ..
                }),
                Verdict::Proceed(_)
            ]
        ));
        assert_eq!(after, email);
    }

    #[test]
    fn a_trusted_device_is_still_held_to_its_own_threshold() {
        let (_, _, verdicts) = attempts(None, None, 4, true);
        assert!(matches!(
            verdicts[3],
            Verdict::Locked {
                scope: Scope::Client,
                ..
            }
        ));
    }
}
