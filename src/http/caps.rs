//! Connection caps: how many connections the server holds at once, in all
//! and per client, so no one client (and no crowd) can take every file
//! descriptor or every byte of memory.
//!
//! A client is the bucket limits use: an IPv4 address, or the IPv6 network
//! of `WARDEN_IPV6_PREFIX` bits (one subscriber holds a whole /64, and would
//! otherwise get a fresh cap per address). The check runs in the accept
//! loop before anything is allocated for the connection; a connection over
//! a cap is closed there and never gets a task.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use ipnet::IpNet;

use crate::{meta::client_bucket, metrics::Metrics};

/// Which cap refused a connection; the `reason` label of
/// `warden_connections_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    Global,
    /// The client holds `max_connections_per_ip` already.
    PerIp,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::PerIp => "per_ip",
        }
    }
}

/// The caps and the connections open under them. Cheap to clone: clones
/// share the counts.
#[derive(Clone, Debug)]
pub struct ConnectionCaps {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_client: usize,
    ipv6_prefix: u8,
    /// Peers not capped per client: trusted proxies.
    exempt: Vec<IpNet>,
    open: Mutex<Open>,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Only clients with at least one open connection, so the map cannot
    /// grow with the number of addresses ever seen.
    per_client: HashMap<IpNet, usize>,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    client: Option<IpNet>,
}

impl ConnectionCaps {
    /// Caps of `max_total` connections in all and `max_per_client` per
    /// client (IPv6 clients grouped by `ipv6_prefix` bits).
    ///
    /// Peers in `exempt` are counted only against the global cap: a load
    /// balancer or reverse proxy (`WARDEN_TRUSTED_PROXIES`) brings every
    /// user's traffic from its own address, and capping it per IP would cap
    /// the whole service. Behind such a proxy, capping clients per IP is the
    /// proxy's job; Warden cannot see the client before the request head.
    ///
    /// With `metrics`, refusals and open connections are counted there.
    pub fn new(
        max_total: usize,
        max_per_client: usize,
        ipv6_prefix: u8,
        exempt: Vec<IpNet>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total: max_total.max(1),
                max_per_client: max_per_client.max(1),
                ipv6_prefix,
                exempt,
                open: Mutex::new(Open::default()),
                metrics,
            }),
        }
    }

    /// No cap worth the name: for tests and tools.
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, usize::MAX, 64, Vec::new(), None)
    }

    /// The global cap.
    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    /// Admits a connection from `peer`, or says which cap it is over.
    pub fn admit(&self, peer: IpAddr) -> Result<Permit, Refusal> {
        let inner = &self.inner;
        let client = (!inner
            .exempt
            .iter()
            .any(|net| net.contains(&peer.to_canonical())))
        .then(|| client_bucket(peer, inner.ipv6_prefix));
        let admitted = {
            let mut open = inner.lock();
            if open.total >= inner.max_total {
                Err(Refusal::Global)
            } else if client.is_some_and(|c| {
                open.per_client.get(&c).copied().unwrap_or(0) >= inner.max_per_client
            }) {
                Err(Refusal::PerIp)
            } else {
                open.total += 1;
                if let Some(c) = client {
                    *open.per_client.entry(c).or_insert(0) += 1;
                }
                Ok(())
            }
        };
        if let Some(metrics) = &inner.metrics {
            match admitted {
                Ok(()) => metrics.connections_open.inc(),
                Err(refusal) => metrics
                    .connections_refused
                    .with_label_values(&[refusal.label()])
                    .inc(),
            }
        }
        admitted.map(|()| Permit {
            inner: inner.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: every
        // critical section is a few integer updates.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut open = self.inner.lock();
            open.total = open.total.saturating_sub(1);
            if let Some(client) = self.client {
                if let Some(count) = open.per_client.get_mut(&client) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        open.per_client.remove(&client);
                    }
                }
            }
        }
        if let Some(metrics) = &self.inner.metrics {
            metrics.connections_open.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn a_client_gets_its_cap_and_its_places_back_when_connections_close() {
        let caps = ConnectionCaps::new(100, 2, 64, Vec::new(), None);
        let a = caps.admit(ip("203.0.113.9"));
        let b = caps.admit(ip("203.0.113.9"));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(caps.admit(ip("203.0.113.9")).err(), Some(Refusal::PerIp));
        // Another client is not affected.
        assert!(caps.admit(ip("203.0.113.10")).is_ok());
        drop(a);
        assert!(caps.admit(ip("203.0.113.9")).is_ok());
        drop(b);
        assert_eq!(caps.open(), 0);
        assert!(caps.inner.lock().per_client.is_empty());
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_a_cap() {
        let caps = ConnectionCaps::new(100, 1, 64, Vec::new(), None);
        let _held = caps.admit(ip("2001:db8:1:2::1"));
        assert_eq!(
            caps.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerIp)
        );
        assert!(caps.admit(ip("2001:db8:1:3::1")).is_ok());
        // An IPv4-mapped address is the IPv4 client.
        let _v4 = caps.admit(ip("203.0.113.9"));
        assert_eq!(
            caps.admit(ip("::ffff:203.0.113.9")).err(),
            Some(Refusal::PerIp)
        );
    }

    #[test]
    fn the_global_cap_counts_everyone_and_trusted_proxies_only_there() {
        let proxy: IpNet = "10.0.0.0/8"
            .parse()
            .unwrap_or_else(|_| IpNet::from(ip("10.0.0.1")));
        let caps = ConnectionCaps::new(3, 1, 64, vec![proxy], None);
        let held: Vec<_> = (0..3).map(|_| caps.admit(ip("10.0.0.5"))).collect();
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(caps.admit(ip("203.0.113.9")).err(), Some(Refusal::Global));
        drop(held);
        assert!(caps.admit(ip("203.0.113.9")).is_ok());
    }

    #[test]
    fn refusals_and_open_connections_show_up_in_metrics() {
        let Ok(metrics) = Metrics::new() else {
            panic!("registry")
        };
        let metrics = Arc::new(metrics);
        let caps = ConnectionCaps::new(10, 1, 64, Vec::new(), Some(metrics.clone()));
        let held = caps.admit(ip("203.0.113.9"));
        let _ = caps.admit(ip("203.0.113.9"));
        assert_eq!(metrics.connections_open.get(), 1);
        assert_eq!(
            metrics
                .connections_refused
                .with_label_values(&["per_ip"])
                .get(),
            1
        );
        drop(held);
        assert_eq!(metrics.connections_open.get(), 0);
    }
}
