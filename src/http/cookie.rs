//! The refresh cookie of cookie mode (`WARDEN_REFRESH_COOKIE=on|only`).
//!
//! HttpOnly so page scripts (and an XSS) cannot read it; SameSite=Strict so
//! another site cannot make the browser send it; Path=/graphql so it goes
//! nowhere else; Secure unless `WARDEN_COOKIE_SECURE=false` (plain-HTTP
//! local development only). Together with the JSON-only POST rule, a
//! cross-site page can neither read nor use it.

use poem::http::{header, HeaderMap};

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

/// `Set-Cookie` value that stores `token` for `max_age` seconds.
pub fn set(token: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{NAME}={token}; Max-Age={}; Path=/graphql; HttpOnly; SameSite=Strict{}",
        max_age.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` value that deletes the cookie.
pub fn clear(secure: bool) -> String {
    set("", 0, secure)
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

    #[test]
    fn set_cookie_has_every_protective_attribute() {
        let cookie = set("tok", 604_800, true);
        for part in [
            "warden_refresh=tok",
            "Max-Age=604800",
            "Path=/graphql",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        assert!(!set("tok", 1, false).contains("Secure"));
        assert!(clear(true).contains("Max-Age=0"));
    }
}
