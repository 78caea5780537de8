//! [`RateReport`]: what the rate limits of one HTTP request said, for its
//! `RateLimit-Policy` and `RateLimit` headers.
//!
//! The syntax is that of the IETF httpapi draft "RateLimit header fields
//! for HTTP", draft-ietf-httpapi-ratelimit-headers-10 (the latest published
//! revision when this was written): both fields are Structured Field Lists
//! (RFC 8941) of items named by the policy, a String:
//!
//! ```text
//! RateLimit-Policy: "login_ip";q=10;w=60, "login_email";q=5;w=60
//! RateLimit: "login_ip";r=7;t=18, "login_email";r=4;t=12
//! ```
//!
//! - a policy is a rule of the table in [`config::rates`](crate::config::rates),
//!   named as there: `q` is its quota, `w` its window in seconds;
//! - `r` is what is left of it for this client, `t` the seconds until it is
//!   whole again (the bucket full); when nothing is left, `t` is the wait
//!   before the next unit, the same instant as `Retry-After`, as the draft
//!   asks;
//! - every rule the request checked is listed, each at its state after the
//!   request's last spend (a batch, or aliases, spend a rule several times).
//!
//! Only rule names appear: never a bucket key (an IP, an email pseudonym,
//! an account id).

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::store::BucketState;

/// Whole seconds, rounded up: a client told to wait must not come back a
/// fraction of a second early.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The buckets one request checked, each at its latest state, in the order
/// first checked. Clones share one report.
#[derive(Clone, Debug, Default)]
pub struct RateReport(Arc<Mutex<Vec<BucketState>>>);

impl RateReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the states of a check; a rule seen before keeps, in its old
    /// place, the state with the fewest units left (the newer on a tie).
    ///
    /// Not simply the newer record: the operations of a batch run at once,
    /// and their answers (a Redis round trip, a hashing thread) come back in
    /// any order, so the last state recorded may be of an earlier spend.
    /// Within one request a bucket only empties (short of a refill between
    /// two spends, which this reports one unit low at most).
    pub fn record(&self, states: &[BucketState]) {
        let mut seen = self.lock();
        for state in states {
            match seen.iter_mut().find(|s| s.rule == state.rule) {
                Some(old) if state.remaining <= old.remaining => *old = *state,
                Some(_) => {}
                None => seen.push(*state),
            }
        }
    }

    /// The states recorded, in order.
    pub fn states(&self) -> Vec<BucketState> {
        self.lock().clone()
    }

    /// The `RateLimit-Policy` value, or `None` when nothing was checked.
    pub fn policy_header(&self) -> Option<String> {
        self.render(|out, s| {
            let _ = write!(
                out,
                "\"{}\";q={};w={}",
                s.rule.name(),
                s.quota.count,
                ceil_secs(s.quota.per)
            );
        })
    }

    /// The `RateLimit` value, or `None` when nothing was checked.
    pub fn limit_header(&self) -> Option<String> {
        self.render(|out, s| {
            let t = if s.remaining == 0 {
                s.retry_after
            } else {
                s.reset
            };
            let _ = write!(
                out,
                "\"{}\";r={};t={}",
                s.rule.name(),
                s.remaining,
                ceil_secs(t)
            );
        })
    }

    fn render(&self, item: impl Fn(&mut String, &BucketState)) -> Option<String> {
        let states = self.lock();
        if states.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, state) in states.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            item(&mut out, state);
        }
        Some(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<BucketState>> {
        // Each record replaces whole states: a poisoned list is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateQuota, Rule};

    fn state(rule: Rule, allowed: bool, remaining: u32, reset: u64, retry: u64) -> BucketState {
        BucketState {
            rule,
            quota: RateQuota {
                count: 10,
                per: Duration::from_secs(60),
            },
            allowed,
            remaining,
            reset: Duration::from_millis(reset),
            retry_after: Duration::from_millis(retry),
        }
    }

    #[test]
    fn nothing_checked_means_no_headers() {
        let report = RateReport::new();
        assert_eq!(report.policy_header(), None);
        assert_eq!(report.limit_header(), None);
    }

    #[test]
    fn every_rule_checked_is_listed_at_its_latest_state() {
        let report = RateReport::new();
        let handle = report.clone();
        report.record(&[state(Rule::LoginIp, true, 9, 6_000, 0)]);
        report.record(&[
            state(Rule::LoginIp, true, 8, 12_000, 0),
            state(Rule::LoginEmail, true, 4, 5_500, 0),
        ]);
        assert_eq!(
            handle.policy_header().as_deref(),
            Some("\"login_ip\";q=10;w=60, \"login_email\";q=10;w=60")
        );
        assert_eq!(
            handle.limit_header().as_deref(),
            Some("\"login_ip\";r=8;t=12, \"login_email\";r=4;t=6")
        );
    }

    /// Two operations of a batch spent login_ip (9, then 8 left) and their
    /// states were recorded in the other order: the header still says 8.
    #[test]
    fn a_later_spend_recorded_first_still_wins() {
        let report = RateReport::new();
        report.record(&[state(Rule::LoginIp, true, 8, 12_000, 0)]);
        report.record(&[state(Rule::LoginIp, true, 9, 6_000, 0)]);
        assert_eq!(
            report.limit_header().as_deref(),
            Some("\"login_ip\";r=8;t=12")
        );
    }

    #[test]
    fn a_spent_rule_announces_the_wait_for_its_next_unit() {
        let report = RateReport::new();
        report.record(&[state(Rule::RegisterIp, false, 0, 60_000, 5_001)]);
        assert_eq!(
            report.limit_header().as_deref(),
            Some("\"register_ip\";r=0;t=6")
        );
    }
}
