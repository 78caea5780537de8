//! GCRA in Redis: the Lua script that spends buckets on the server, and the
//! constants it takes, derived from a quota exactly as governor derives
//! them, so a bucket behaves the same in Redis as in
//! [`MemoryLimiter`](super::memory::MemoryLimiter).

use std::time::Duration;

use super::store::{governor_quota, BucketState};
use crate::config::{RateQuota, Rule};

/// GCRA in governor's terms, with every time relative to Redis's clock and
/// in nanoseconds. Doubles (Lua's only numbers) are exact up to 2^53, which
/// epoch nanoseconds exceed, so the TAT is stored as `seconds:nanos` and the
/// arithmetic is done on `tat - now`, which stays small.
///
/// - a missing key is a full bucket (TAT = now);
/// - refused when `now < TAT - tau`, with a wait of `TAT - tau - now`
///   (governor's `wait_time_from`), and nothing is written;
/// - allowed otherwise, TAT becomes `max(TAT, now) + t`, and the key expires
///   when that TAT passes: the bucket is full again then, which is exactly
///   what a missing key means.
///
/// Key `i` is spent with `ARGV[2i-1]` (t) and `ARGV[2i]` (tau), in order; the
/// first refusal ends the script, so later keys are not spent. The reply is
/// flat, two numbers per bucket checked: `1` (spent) or `0` (refused), then
/// `TAT - now` in nanoseconds after the spend (before it, when refused),
/// from which [`BucketState::from_gcra`] derives what is left exactly as
/// the memory store does. Login checks two buckets in one round trip this
/// way.
pub(super) const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local now_s = tonumber(now[1])
local now_ns = tonumber(now[2]) * 1000
local reply = {}
for i, key in ipairs(KEYS) do
  local t = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local d = 0
  local stored = redis.call('GET', key)
  if stored then
    local s, ns = string.match(stored, '^(%d+):(%d+)$')
    if s then
      d = (tonumber(s) - now_s) * 1000000000 + (tonumber(ns) - now_ns)
    end
  end
  if d - tau > 0 then
    table.insert(reply, 0)
    table.insert(reply, d)
    return reply
  end
  local next_d = math.max(d, 0) + t
  local abs_ns = now_ns + next_d
  local tat_s = now_s + math.floor(abs_ns / 1000000000)
  local tat_ns = abs_ns % 1000000000
  local ttl_ms = math.max(1, math.ceil(next_d / 1000000))
  redis.call('SET', key, string.format('%d:%d', tat_s, tat_ns),
    'PX', string.format('%d', ttl_ms))
  table.insert(reply, 1)
  table.insert(reply, next_d)
end
return reply
";

/// governor's GCRA constants for one quota, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraParams {
    /// The emission interval: one unit comes back every `t`.
    pub t_ns: u64,
    /// The tolerance: `t * (burst - 1)`, how far ahead the TAT may run.
    pub tau_ns: u64,
}

impl GcraParams {
    /// The constants governor derives from [`governor_quota`], computed the
    /// same way (`t` at least 1 ns), so both stores make the same decisions.
    pub fn of(quota: RateQuota) -> Self {
        let quota = governor_quota(quota);
        let t = quota.replenish_interval().max(Duration::from_nanos(1));
        let t_ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        let tau_ns = t_ns.saturating_mul(u64::from(quota.burst_size().get() - 1));
        Self { t_ns, tau_ns }
    }
}

/// The script's reply (two numbers per bucket checked, see
/// [`GCRA_SCRIPT`]) as the states of `checks`' buckets, in order.
pub(super) fn states(reply: &[i64], checks: &[(Rule, RateQuota)]) -> Vec<BucketState> {
    reply
        .chunks_exact(2)
        .zip(checks)
        .map(|(pair, (rule, quota))| {
            let params = GcraParams::of(*quota);
            let d_ns = u64::try_from(pair[1]).unwrap_or(0);
            BucketState::from_gcra(
                *rule,
                *quota,
                pair[0] == 1,
                d_ns,
                params.t_ns,
                params.tau_ns,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> GcraParams {
        GcraParams::of(q.parse().unwrap())
    }

    #[test]
    fn params_are_governors_interval_and_tolerance() {
        assert_eq!(
            params("5/s"),
            GcraParams {
                t_ns: 200_000_000,
                tau_ns: 800_000_000
            }
        );
        assert_eq!(
            params("3/min"),
            GcraParams {
                t_ns: 20_000_000_000,
                tau_ns: 40_000_000_000
            }
        );
        // governor floors `per / count` to whole nanoseconds.
        assert_eq!(params("7/min").t_ns, 8_571_428_571);
        assert_eq!(params("1/h").tau_ns, 0, "a burst of one has no tolerance");
        assert_eq!(params("4000000000/s").t_ns, 1, "t is at least 1 ns");
    }

    #[test]
    fn the_largest_tolerance_fits_a_lua_double_exactly() {
        let worst = params(&format!("{}/h", u32::MAX));
        assert!(worst.tau_ns + worst.t_ns < 1 << 53);
        let hour = params("1/h");
        assert!(hour.t_ns < 1 << 53);
    }

    #[test]
    fn replies_become_bucket_states() {
        let quota: RateQuota = "3/min".parse().unwrap();
        let checks = [(Rule::LoginIp, quota), (Rule::LoginEmail, quota)];
        assert!(states(&[], &checks).is_empty());
        let spent = states(&[1, 20_000_000_000, 0, 60_000_000_000], &checks);
        assert_eq!(spent.len(), 2);
        assert!(spent[0].allowed && !spent[1].allowed);
        assert_eq!(
            (spent[0].remaining, spent[0].reset),
            (2, Duration::from_secs(20))
        );
        assert_eq!(spent[0].retry_after, Duration::ZERO);
        assert_eq!(spent[1].remaining, 0);
        assert_eq!(spent[1].retry_after, Duration::from_secs(20));
        assert_eq!(spent[1].rule, Rule::LoginEmail);
    }
}
