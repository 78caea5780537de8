//! The open-files limit (`RLIMIT_NOFILE`) and what it leaves for connections.
//!
//! Every connection is a file descriptor. Many systems start processes with
//! a soft limit of 1,024 even where the hard limit is far higher, which
//! would make the connection cap a fiction: `accept` would fail with EMFILE
//! long before it, and so would opening a database connection or the SQLite
//! WAL. At start Warden raises its soft limit to the hard limit (an
//! unprivileged process may), and then holds at most as many connections as
//! the limit leaves after a reserve for everything else, so running out of
//! descriptors is never how a flood ends.

use crate::config::Config;

/// Descriptors kept for everything but client connections: the listener,
/// stdio, SQLite files and their WAL, Redis, the resolver, outgoing HTTP,
/// and room to spare. The database pool is added on top.
const RESERVE: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit now in force (`None` if it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(rlimit::INFINITY) {
        Ok(soft) => Some(soft),
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open files limit (RLIMIT_NOFILE)");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The global connection cap the server runs with: `max_connections`, or
/// less when the open-files limit `nofile` cannot hold that many plus the
/// reserve, in which case it warns (one line, naming both numbers).
pub fn connection_budget(config: &Config, nofile: Option<u64>) -> usize {
    let wanted = u64::from(config.max_connections);
    let Some(limit) = nofile else {
        return usize::try_from(wanted).unwrap_or(usize::MAX);
    };
    let reserve = RESERVE + u64::from(config.database_max_connections);
    let needed = wanted.saturating_add(reserve);
    if limit >= needed {
        return usize::try_from(wanted).unwrap_or(usize::MAX);
    }
    // Keep the reserve, but never cap connections below half the limit:
    // a tiny limit is the operator's to fix, not a reason to serve no one.
    let cap = limit.saturating_sub(reserve).max(limit / 2).max(1);
    tracing::warn!(
        limit,
        needed,
        max_connections = wanted,
        cap,
        "the open files limit (RLIMIT_NOFILE) is below what WARDEN_MAX_CONNECTIONS needs: \
         connections are capped lower; raise the hard limit (systemd LimitNOFILE=, ulimit -Hn)"
    );
    usize::try_from(cap).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_connections: u32) -> Config {
        let Ok(mut config) = Config::defaults() else {
            panic!("default config")
        };
        config.max_connections = max_connections;
        config.database_max_connections = 16;
        config
    }

    #[test]
    fn a_limit_with_room_leaves_the_cap_as_configured() {
        assert_eq!(connection_budget(&config(1000), Some(1_000_000)), 1000);
        assert_eq!(connection_budget(&config(1000), None), 1000);
    }

    #[test]
    fn a_low_limit_lowers_the_cap_and_keeps_a_reserve() {
        assert_eq!(connection_budget(&config(10_000), Some(1024)), 1024 - 144);
        assert_eq!(connection_budget(&config(10_000), Some(200)), 100);
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let soft = raise_open_files_limit();
        let hard = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(_, hard)| hard);
        assert!(soft.is_some());
        assert_eq!(soft, hard);
    }
}
