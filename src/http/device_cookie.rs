//! The device cookie of cookie mode: `warden_device` carries the device
//! token that proves a browser is a trusted device of an account (see
//! [`crate::services::trusted_devices`]).
//!
//! The same attributes as the refresh cookie ([`super::cookie::Attributes`]):
//! HttpOnly (no script, and so no XSS, reads it), `WARDEN_COOKIE_SAME_SITE`
//! (Strict by default: no other site makes the browser send it),
//! Path=/graphql, `WARDEN_COOKIE_DOMAIN` when set, Secure unless
//! `WARDEN_COOKIE_SECURE=false`. It lives
//! as long as the device token (`WARDEN_DEVICE_TOKEN_TTL`), and is kept
//! across `logout`: the device stays trusted after the session ends.

use poem::http::{header, HeaderMap};

use super::cookie::Attributes;

/// The cookie's name.
pub const NAME: &str = "warden_device";

/// The device token in the request's `Cookie` header, if any.
pub fn read(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == NAME)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` value that stores `token` for `max_age` seconds.
pub fn set(token: &str, max_age: i64, attributes: &Attributes<'_>) -> String {
    attributes.cookie(NAME, token, max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    #[test]
    fn the_device_cookie_is_read_apart_from_the_refresh_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("warden_refresh=r; warden_device=d_1-X"),
        );
        assert_eq!(read(&headers).as_deref(), Some("d_1-X"));
        let attributes = Attributes {
            secure: true,
            same_site: crate::config::SameSite::Strict,
            domain: None,
        };
        let cookie = set("tok", 7_776_000, &attributes);
        for part in [
            "warden_device=tok",
            "Max-Age=7776000",
            "Path=/graphql",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
    }
}
