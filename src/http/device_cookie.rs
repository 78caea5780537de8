//! The device cookie of cookie mode: `warden_device` carries the device
//! token that proves a browser is a trusted device of an account (see
//! [`crate::services::trusted_devices`]).
//!
//! The same protections as the refresh cookie: HttpOnly (no script, and so
//! no XSS, reads it), SameSite=Strict (no other site makes the browser send
//! it), Path=/graphql, Secure unless `WARDEN_COOKIE_SECURE=false`. It lives
//! as long as the device token (`WARDEN_DEVICE_TOKEN_TTL`), and is kept
//! across `logout`: the device stays trusted after the session ends.

use poem::http::{header, HeaderMap};

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
pub fn set(token: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{NAME}={token}; Max-Age={}; Path=/graphql; HttpOnly; SameSite=Strict{}",
        max_age.max(0),
        if secure { "; Secure" } else { "" }
    )
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
        let cookie = set("tok", 7_776_000, true);
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
