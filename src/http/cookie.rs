//! The refresh cookie of cookie mode (`WARDEN_REFRESH_COOKIE=on|only`), and
//! the attributes every Warden cookie shares ([`Attributes`]).
//!
//! HttpOnly so page scripts (and an XSS) cannot read it; Path=/graphql so
//! it goes nowhere else; Secure unless `WARDEN_COOKIE_SECURE=false`
//! (plain-HTTP local development only). `SameSite` is `Strict` by default,
//! so another site cannot make the browser send it; `Lax` changes nothing
//! for `fetch`; `None` (an app on another site) is refused without Secure,
//! and adds `Partitioned`: the browser keeps the cookie in a jar keyed by
//! the app's site (CHIPS), which works where third-party cookies are
//! blocked (headless Chromium 156 blocks them by default) and gives no other
//! site's pages that cookie. `WARDEN_COOKIE_DOMAIN` adds `Domain`, widening
//! the cookie to every subdomain. A cookie is cleared with the very
//! attributes it was set with, or the browser keeps it. With the JSON-only
//! POST rule and CORS, a cross-site page can neither read nor use it.

use poem::http::{header, HeaderMap};

use crate::config::{Config, SameSite};

/// The cookie's name.
pub const NAME: &str = "warden_refresh";

/// The first refresh token in the request's `Cookie` headers, if any.
pub fn read(headers: &HeaderMap) -> Option<String> {
    read_all(headers).into_iter().next()
}

/// At most this many `warden_refresh` cookies of one request are tried.
/// Several are legitimate (a stale one at another path or domain); many
/// are an attempt to make one request cost many rotations.
pub const MAX_TRIED: usize = 4;

/// Every refresh token in the request's `Cookie` headers, in the order
/// sent (browsers send the most specific path first), without repeats,
/// at most [`MAX_TRIED`]: `refresh` tries each until one rotates.
pub fn read_all(headers: &HeaderMap) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == NAME)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty());
    for value in values {
        if found.len() == MAX_TRIED {
            break;
        }
        if !found.iter().any(|seen| seen == value) {
            found.push(value.to_owned());
        }
    }
    found
}

/// What every Warden cookie carries after its value and `Max-Age`.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// Add `Secure`.
    pub secure: bool,
    /// The `SameSite` value.
    pub same_site: SameSite,
    /// The `Domain`, when set.
    pub domain: Option<&'a str>,
}

impl<'a> Attributes<'a> {
    /// The attributes `config` asks for.
    pub fn of(config: &'a Config) -> Self {
        Self {
            secure: config.cookie_secure,
            same_site: config.cookie_same_site,
            domain: config.cookie_domain.as_deref(),
        }
    }

    /// `{name}={value}; Max-Age=…; Path=/graphql[; Domain=…]; HttpOnly;
    /// SameSite=…[; Secure][; Partitioned]`.
    pub fn cookie(&self, name: &str, value: &str, max_age: i64) -> String {
        let mut out = format!("{name}={value}; Max-Age={}; Path=/graphql", max_age.max(0));
        if let Some(domain) = self.domain {
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        out.push_str("; HttpOnly; SameSite=");
        out.push_str(self.same_site.as_str());
        if self.secure {
            out.push_str("; Secure");
        }
        // Config refuses `None` without Secure, and browsers refuse
        // `Partitioned` without it: both go together.
        if self.same_site == SameSite::None && self.secure {
            out.push_str("; Partitioned");
        }
        out
    }
}

/// `Set-Cookie` value that stores `token` for `max_age` seconds.
pub fn set(token: &str, max_age: i64, attributes: &Attributes<'_>) -> String {
    attributes.cookie(NAME, token, max_age)
}

/// `Set-Cookie` value that deletes the cookie: the same attributes as
/// [`set`], or a browser keeps the one it has (a `Domain` or partitioned
/// cookie is another cookie than a host-only one).
pub fn clear(attributes: &Attributes<'_>) -> String {
    set("", 0, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; warden_refresh=abc_DEF-123; b=2"),
        );
        assert_eq!(read(&headers).as_deref(), Some("abc_DEF-123"));
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("warden_refresh=; other=x"),
        );
        assert_eq!(read(&empty), None);
    }

    #[test]
    fn every_refresh_cookie_is_read_in_order_without_repeats_up_to_the_bound() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("warden_refresh=a; x=1; warden_refresh=b; warden_refresh=a"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("warden_refresh=c; warden_refresh=d; warden_refresh=e"),
        );
        assert_eq!(read_all(&headers), ["a", "b", "c", "d"]);
        assert_eq!(read(&headers).as_deref(), Some("a"));
    }

    const STRICT: Attributes<'static> = Attributes {
        secure: true,
        same_site: SameSite::Strict,
        domain: None,
    };

    #[test]
    fn set_cookie_has_every_protective_attribute() {
        let cookie = set("tok", 604_800, &STRICT);
        assert_eq!(
            cookie,
            "warden_refresh=tok; Max-Age=604800; Path=/graphql; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = Attributes {
            secure: false,
            ..STRICT
        };
        assert!(!set("tok", 1, &plain).contains("Secure"));
        assert!(clear(&STRICT).contains("Max-Age=0"));
    }

    #[test]
    fn same_site_none_is_partitioned_and_a_domain_is_written_when_set() {
        let cross = Attributes {
            secure: true,
            same_site: SameSite::None,
            domain: Some("example.com"),
        };
        assert_eq!(
            clear(&cross),
            "warden_refresh=; Max-Age=0; Path=/graphql; Domain=example.com; HttpOnly; \
             SameSite=None; Secure; Partitioned"
        );
        let lax = Attributes {
            same_site: SameSite::Lax,
            ..STRICT
        };
        assert!(set("t", 5, &lax).ends_with("HttpOnly; SameSite=Lax; Secure"));
    }
}
