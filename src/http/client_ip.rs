//! The client IP: the TCP peer, unless that peer is a trusted proxy.
//!
//! `X-Forwarded-For` is written by whoever sends the request, so it is read
//! only when the peer is listed in `WARDEN_TRUSTED_PROXIES`, and then right to
//! left: each trusted hop is skipped and the first untrusted address is the
//! client. Anything a client prepends stays to the left and is never reached.
//! (poem's `RealIp` believes any client and is not used for this.)

use std::net::IpAddr;

use ipnet::IpNet;

/// Resolves the client IP from the peer and the `X-Forwarded-For` values.
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    // `::ffff:10.0.0.1` on a dual-stack socket is the IPv4 peer 10.0.0.1.
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded_for
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return Some(ip),
            // Garbage in the chain: stop at the last address we could vouch for.
            Err(_) => return Some(client),
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|s| s.parse().ok()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let got = client_ip(
            Some(ip("203.0.113.9")),
            ["1.2.3.4"].into_iter(),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn trusted_hops_are_skipped_right_to_left() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_ip(
            Some(ip("10.0.0.1")),
            ["6.6.6.6, 198.51.100.7, 10.0.0.2"].into_iter(),
            &trusted,
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_treated_as_ipv4() {
        let got = client_ip(
            Some(ip("::ffff:10.0.0.1")),
            ["::ffff:198.51.100.7"].into_iter(),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let got = client_ip(
            Some(ip("10.0.0.1")),
            std::iter::empty(),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(got, Some(ip("10.0.0.1")));
    }
}
