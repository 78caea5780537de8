//! [`RequestMeta`]: who is asking, as far as the transport can tell.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

/// The IPv6 prefix length that makes one client when none is configured:
/// a /64 is the smallest block a subscriber or a server is usually given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Longest user agent kept, in characters; the rest is cut.
const MAX_USER_AGENT: usize = 256;

/// Facts about one HTTP request, for sessions, limits and the audit log.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The client IP (the TCP peer unless a trusted proxy says otherwise).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to a sane length.
    pub user_agent: Option<String>,
    /// Unique per request; returned as `X-Request-Id` and in `INTERNAL` errors.
    pub request_id: String,
    /// The block that counts as one client in limits and lockout: the IPv4
    /// address itself, or the IPv6 address's `WARDEN_IPV6_PREFIX` network.
    pub bucket: Option<IpNet>,
}

impl RequestMeta {
    /// Builds the meta, trimming the user agent.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>, request_id: String) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT)
                    .collect::<String>()
            })
            .filter(|ua| !ua.is_empty());
        Self {
            ip,
            user_agent,
            request_id,
            bucket: ip.map(|ip| client_bucket(ip, DEFAULT_IPV6_PREFIX)),
        }
    }

    /// Groups IPv6 clients by `prefix` bits instead of the default /64.
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.bucket = self.ip.map(|ip| client_bucket(ip, prefix));
        self
    }

    /// The client's bucket as a key for limits and lockout counters:
    /// `203.0.113.9` or `2001:db8:1:2::/64`; `unknown` without an IP.
    pub fn bucket_key(&self) -> String {
        match self.bucket {
            Some(IpNet::V4(net)) => net.addr().to_string(),
            Some(net) => net.to_string(),
            None => "unknown".to_owned(),
        }
    }

    /// For work that does not come from a request (the CLI).
    pub fn local(request_id: &str) -> Self {
        Self {
            ip: None,
            user_agent: None,
            request_id: request_id.to_owned(),
            bucket: None,
        }
    }

    /// The IP as stored.
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// The network that counts as one client: an IPv4 address alone (a /32),
/// an IPv6 address cut to its first `prefix` bits. An attacker who holds a
/// /64 (as any IPv6 subscriber or cloud server does) holds 2^64 addresses;
/// keyed by address, every one would get fresh buckets.
pub fn client_bucket(ip: IpAddr, prefix: u8) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
        IpAddr::V6(v6) => Ipv6Net::new(v6, prefix.min(128))
            .map(|net| IpNet::V6(net.trunc()))
            .unwrap_or_else(|_| IpNet::from(IpAddr::V6(v6))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_a_bucket() {
        let a = RequestMeta::new(Some(ip("2001:db8:1:2::1")), None, "a".into());
        let b = RequestMeta::new(Some(ip("2001:db8:1:2:ffff:1:2:3")), None, "b".into());
        let c = RequestMeta::new(Some(ip("2001:db8:1:3::1")), None, "c".into());
        assert_eq!(a.bucket_key(), "2001:db8:1:2::/64");
        assert_eq!(a.bucket_key(), b.bucket_key());
        assert_ne!(a.bucket_key(), c.bucket_key());
        let wide = c.clone().with_ipv6_prefix(48);
        assert_eq!(
            wide.bucket_key(),
            a.clone().with_ipv6_prefix(48).bucket_key()
        );
        assert_eq!(a.with_ipv6_prefix(128).bucket_key(), "2001:db8:1:2::1/128");
    }

    #[test]
    fn ipv4_clients_are_their_own_bucket() {
        let a = RequestMeta::new(Some(ip("203.0.113.9")), None, "a".into());
        let mapped = RequestMeta::new(Some(ip("::ffff:203.0.113.9")), None, "m".into());
        assert_eq!(a.bucket_key(), "203.0.113.9");
        assert_eq!(mapped.bucket_key(), "203.0.113.9");
        assert_ne!(
            a.bucket_key(),
            RequestMeta::new(Some(ip("203.0.113.10")), None, "b".into()).bucket_key()
        );
        assert_eq!(RequestMeta::local("x").bucket_key(), "unknown");
    }
}
