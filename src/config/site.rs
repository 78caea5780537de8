//! Sites, as browsers use them for `SameSite` cookies: a scheme plus a
//! *registrable domain* (the host's public suffix and one label more). Two
//! URLs are same-site when both match; ports never matter, schemes do
//! (Chromium's "schemeful same-site").
//!
//! Warden carries no copy of the Public Suffix List, so the registrable
//! domain is an approximation, the rule this module applies:
//! - an IP literal is its own site (`127.0.0.1`, `[::1]`);
//! - a single label is its own site (`localhost`, an intranet name);
//! - otherwise the last two labels (`api.example.com` → `example.com`),
//!   or the last three when the last is a two-letter country code and the
//!   one before is a common second level (`co`, `com`, `org`, `net`, `ac`,
//!   `gov`, `edu`, …): `app.example.co.uk` → `example.co.uk`.
//!
//! Private suffixes of the list (`github.io`, `herokuapp.com`, …) are not
//! known: two apps under one of them look same-site here though browsers
//! treat them as cross-site. The checks built on this only warn, so the
//! approximation can miss a warning, never refuse a working setup.

use std::net::IpAddr;

/// Second-level labels that, under a two-letter country code, are public
/// suffixes in practice (`co.uk`, `com.au`, `ac.jp`, …).
const COMMON_SECOND_LEVELS: &[&str] = &[
    "ac", "co", "com", "edu", "gob", "go", "gov", "ltd", "mil", "ne", "net", "nic", "or", "org",
    "plc", "sch",
];

/// A URL's site: its scheme and registrable domain (or the whole host when
/// it has none), lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// `http` or `https`.
    pub scheme: String,
    /// The registrable domain, IP literal or single-label host.
    pub domain: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.domain)
    }
}

impl Site {
    /// The site of `url` (`scheme://host[:port][/path]`), or `None` when it
    /// is not such a URL.
    pub fn of(url: &str) -> Option<Self> {
        let (scheme, host) = split_url(url)?;
        Some(Self {
            domain: registrable_domain(&host).unwrap_or(host),
            scheme,
        })
    }
}

/// `(scheme, host)` of `scheme://[userinfo@]host[:port][/…]`, lowercase,
/// without a trailing dot; IPv6 hosts keep their brackets.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if authority.starts_with('[') {
        let end = authority.find(']')?;
        &authority[..=end]
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return None,
            None => authority,
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), host))
}

/// True for an IP literal, bracketed (IPv6 in a URL) or not.
pub fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// The registrable domain of `host` (lowercase, no trailing dot), by the
/// approximation above; `None` for an IP literal, a single label, or a
/// host that is itself a public suffix (`co.uk`).
pub fn registrable_domain(host: &str) -> Option<String> {
    if is_ip_literal(host) {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    if n < 2 {
        return None;
    }
    let country = labels[n - 1].len() == 2;
    let suffix_labels = if country && COMMON_SECOND_LEVELS.contains(&labels[n - 2]) {
        2
    } else {
        1
    };
    if n <= suffix_labels {
        return None;
    }
    Some(labels[n - suffix_labels - 1..].join("."))
}

/// True when `host` is `domain` or one of its subdomains: a cookie with
/// `Domain=domain` may be set by (and is sent to) `host`.
pub fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        Site::of(a).unwrap() == Site::of(b).unwrap()
    }

    #[test]
    fn ports_do_not_matter_and_subdomains_share_a_site() {
        assert!(same("http://localhost:5173", "http://localhost:8080"));
        assert!(same(
            "https://app.example.com",
            "https://api.example.com:8443"
        ));
        assert!(same(
            "https://example.com",
            "https://a.b.example.com/graphql"
        ));
        assert!(same(
            "https://app.example.co.uk",
            "https://api.example.co.uk"
        ));
    }

    #[test]
    fn schemes_hosts_and_ip_literals_make_different_sites() {
        assert!(!same("http://localhost:5173", "http://127.0.0.1:8080"));
        assert!(!same("http://app.example.com", "https://api.example.com"));
        assert!(!same("https://app.example.com", "https://api.example.org"));
        assert!(!same("https://example.co.uk", "https://other.co.uk"));
        assert!(!same("http://127.0.0.1:1", "http://127.0.0.2:1"));
        assert!(!same("http://[::1]:5173", "http://127.0.0.1:5173"));
        assert!(same("http://[::1]:5173", "http://[::1]:8080"));
        assert!(!same("http://app.localhost", "http://localhost"));
    }

    #[test]
    fn a_site_is_its_scheme_and_registrable_domain() {
        let site = Site::of("HTTPS://User@Api.Example.COM.:8443/graphql?x#y").unwrap();
        assert_eq!(site.to_string(), "https://example.com");
        assert_eq!(
            Site::of("http://127.0.0.1:8080").unwrap().to_string(),
            "http://127.0.0.1"
        );
        assert_eq!(
            Site::of("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]"
        );
        assert_eq!(Site::of("localhost:8080"), None);
        assert_eq!(Site::of("http://:80"), None);
        assert_eq!(Site::of("http://host:port"), None);
    }

    #[test]
    fn public_suffixes_and_single_labels_have_no_registrable_domain() {
        assert_eq!(registrable_domain("com"), None);
        assert_eq!(registrable_domain("co.uk"), None);
        assert_eq!(registrable_domain("localhost"), None);
        assert_eq!(registrable_domain("10.0.0.1"), None);
        assert_eq!(
            registrable_domain("example.de").as_deref(),
            Some("example.de")
        );
        assert_eq!(
            registrable_domain("a.example.test").as_deref(),
            Some("example.test")
        );
    }

    #[test]
    fn a_cookie_domain_covers_itself_and_its_subdomains_only() {
        assert!(domain_matches("example.com", "example.com"));
        assert!(domain_matches("api.example.com", "example.com"));
        assert!(!domain_matches("badexample.com", "example.com"));
        assert!(!domain_matches("example.com", "api.example.com"));
    }
}
