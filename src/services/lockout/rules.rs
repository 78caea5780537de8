//! The lockout's rules as pure state transitions, apart from storage:
//! one counter's reservation ([`reserve`]), one attempt over the client's
//! and the email's counters ([`decide`]), giving a reservation back
//! ([`give_back`]), and the keys of the two rows ([`Keys`]).

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::{clock::delta, config::Config};

/// Threshold, window and duration of one counter.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts per window that arm the lock.
    pub threshold: u32,
    /// How long attempts count.
    pub window: TimeDelta,
    /// How long a lock lasts.
    pub duration: TimeDelta,
}

impl Policy {
    /// A client's counter, from `WARDEN_LOCKOUT_*`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            threshold: config.lockout_threshold.max(1),
            window: delta(config.lockout_window),
            duration: delta(config.lockout_duration),
        }
    }

    /// The email's counter: `WARDEN_LOCKOUT_GLOBAL_THRESHOLD` in a window
    /// closes the email to untrusted clients until a window has passed.
    pub fn global_from_config(config: &Config) -> Self {
        let window = delta(config.lockout_window);
        Self {
            threshold: config.lockout_global_threshold.max(1),
            window,
            duration: window,
        }
    }
}

/// Both policies.
#[derive(Clone, Copy, Debug)]
pub struct Policies {
    /// Per email and client.
    pub client: Policy,
    /// Per email, from every client.
    pub email: Policy,
}

impl Policies {
    /// The configured policies.
    pub fn from_config(config: &Config) -> Self {
        Self {
            client: Policy::from_config(config),
            email: Policy::global_from_config(config),
        }
    }
}

/// One counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Attempts reserved in this window.
    pub attempts: u32,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// Locked until then, if set and in the future.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Counter {
    /// No attempts yet, the window starting `now`.
    pub fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            attempts: 0,
            window_started_at: now,
            locked_until: None,
        }
    }
}

/// Whether one counter lets an attempt check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Counted. `arms_lock`: this attempt reached the threshold, so the
    /// lock is on unless its password turns out right.
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

/// The pure state transition of one counter's reservation.
pub fn reserve(current: Option<Counter>, now: DateTime<Utc>, policy: Policy) -> (Counter, Step) {
    if let Some(counter) = current {
        if let Some(until) = counter.locked_until.filter(|until| *until > now) {
            return (counter, Step::Locked { until });
        }
    }
    let fresh = Counter::fresh(now);
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
    (counter, Step::Proceed { arms_lock })
}

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

/// Who is trying, as far as the lockout can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client<'a> {
    /// An untrusted client: its IP bucket (`limits::ip_key`).
    Ip(&'a str),
    /// A trusted device of the account, proven by its device token: counted
    /// on its own, so attackers sharing its address cannot lock it out.
    Device(Uuid),
    /// A live session of the account (`changePassword`): trusted like a
    /// device, and counted per session, so one stolen session gets the
    /// threshold in all, from however many addresses it calls.
    Session(Uuid),
}

/// The two `login_attempts` keys of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// The email's counter: its pseudonym.
    pub email: String,
    /// The client's counter for that email.
    pub client: String,
    /// Whether the client is a trusted device.
    pub trusted: bool,
}

impl Keys {
    /// Keys for `client` trying the email whose pseudonym is `pseudonym`.
    pub fn new(pseudonym: &str, client: Client<'_>) -> Self {
        let (client, trusted) = match client {
            Client::Ip(bucket) => (format!("{pseudonym}|ip:{bucket}"), false),
            Client::Device(id) => (format!("{pseudonym}|device:{id}"), true),
            Client::Session(id) => (format!("{pseudonym}|session:{id}"), true),
        };
        Self {
            email: pseudonym.to_owned(),
            client,
            trusted,
        }
    }
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
                Step::Proceed { arms_lock: false },
                Step::Proceed { arms_lock: false },
                Step::Proceed { arms_lock: true },
                Step::Locked { until },
                Step::Locked { until },
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
        assert_eq!(verdict, Step::Proceed { arms_lock: false });
        assert_eq!(s2.attempts, 1);
        assert_eq!(s2.locked_until, None);
    }

    #[test]
    fn attempts_outside_the_window_do_not_add_up() {
        let (s1, _) = reserve(None, t0(), policy());
        let (s2, _) = reserve(Some(s1), t0() + TimeDelta::minutes(1), policy());
        let (s3, verdict) = reserve(Some(s2), t0() + TimeDelta::minutes(16), policy());
        assert_eq!(s3.attempts, 1);
        assert_eq!(verdict, Step::Proceed { arms_lock: false });
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
            Step::Proceed { arms_lock: true },
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

    #[test]
    fn client_keys_extend_the_email_key_so_the_email_row_sorts_first() {
        let ip = Keys::new("abc", Client::Ip("192.0.2.1"));
        let device = Keys::new("abc", Client::Device(Uuid::nil()));
        assert!(ip.email < ip.client && ip.client.starts_with("abc|ip:"));
        assert!(device.trusted && !ip.trusted);
        assert_ne!(ip.client, device.client);
    }
}
