//! What a POST must be: the form's media type, from this site.

use poem::http::{header, HeaderMap};

use crate::config::Config;

pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// True when the browser says this POST comes from another site (see the
/// module docs). `authority` is the request URI's, for HTTP/2.
pub(super) fn from_another_site(
    headers: &HeaderMap,
    authority: Option<&str>,
    config: &Config,
) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if matches!(text("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let public = config.public_url();
    if origin.eq_ignore_ascii_case(origin_of(&public)) {
        return false;
    }
    let addressed = text(header::HOST.as_str()).or(authority);
    let origin_authority = origin.split_once("://").map(|(_, rest)| rest);
    !matches!((origin_authority, addressed), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// `scheme://host[:port]` of a URL.
pub(super) fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_url_drops_its_path() {
        assert_eq!(
            origin_of("https://auth.example.com/base/"),
            "https://auth.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
