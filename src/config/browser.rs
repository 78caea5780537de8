//! The settings browsers care about: the cookies' `SameSite` and `Domain`,
//! Warden's public URL (the API's site), and what CORS allows. Also the
//! checks across them that no single value parser can make: `None` needs
//! `Secure` (refused at start), and a CORS origin on another site than the
//! API's, in cookie mode, would never get the cookie (a start-up warning).

use super::{
    site::{self, Site},
    Config,
};

/// The `SameSite` attribute of Warden's cookies (`WARDEN_COOKIE_SAME_SITE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SameSite {
    /// Sent only on requests from the API's own site (the default).
    #[value(name = "Strict")]
    Strict,
    /// Like `Strict` for `fetch`; also sent on top-level navigations from
    /// other sites.
    #[value(name = "Lax")]
    Lax,
    /// Sent from every site: for a frontend on another site than the API.
    /// Requires `Secure`.
    #[value(name = "None")]
    None,
}

impl SameSite {
    /// The attribute's value, as written in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// The request headers a cross-origin page may send by default: what
/// Warden reads, what Apollo Client and its CSRF guard send, and the
/// tracing headers of OpenTelemetry and Sentry.
pub const DEFAULT_CORS_ALLOW_HEADERS: &str = "content-type,authorization,\
apollo-require-preflight,x-apollo-operation-name,apollographql-client-name,\
apollographql-client-version,traceparent,tracestate,baggage,sentry-trace,x-request-id";

/// A header name (an RFC 9110 token), lowercased.
pub(super) fn parse_header_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("`{name}` is not a header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// A cookie `Domain`: a host name (no scheme, port or path, no IP), at
/// least a registrable domain, so never a public suffix like `com` or
/// `co.uk` that would hand the cookie to other people's sites. A leading
/// dot (the old spelling) is dropped.
pub(super) fn parse_cookie_domain(s: &str) -> Result<String, String> {
    let domain = s.trim().trim_start_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is not a host name like example.com (no scheme, port or path)"
        ));
    }
    if site::is_ip_literal(&domain) {
        return Err("an IP address cannot be a cookie domain: leave it unset".into());
    }
    if site::registrable_domain(&domain).is_none() {
        return Err(format!(
            "`{domain}` is a public suffix or a single label: the cookie would go to other sites"
        ));
    }
    Ok(domain)
}

/// Warden's external URL: `http(s)://host[:port][/path]`, without a
/// trailing slash, query or fragment.
pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let url = s.trim().trim_end_matches('/');
    let bad = || format!("`{url}` is not a URL like https://auth.example.com");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || rest.contains(['?', '#', '@', ' ', '*']) {
        return Err(bad());
    }
    site::split_url(url).ok_or_else(bad)?;
    Ok(url.to_owned())
}

impl Config {
    /// `WARDEN_PUBLIC_URL`, or `http://` and `WARDEN_LISTEN` (an unspecified
    /// address, `0.0.0.0` or `[::]`, read as `localhost`).
    pub fn public_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        if self.listen.ip().is_unspecified() {
            format!("http://localhost:{}", self.listen.port())
        } else {
            format!("http://{}", self.listen)
        }
    }

    /// The checks across browser settings that stop start-up, each with one
    /// line naming the variable to change.
    pub fn check_browser_settings(&self) -> Result<(), String> {
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err("invalid WARDEN_COOKIE_SAME_SITE (--cookie-same-site): `None` needs \
                 WARDEN_COOKIE_SECURE=true (browsers drop a SameSite=None cookie that is not Secure)"
                .into());
        }
        if !self.cors_allow_headers.iter().any(|h| h == "content-type") {
            return Err(
                "invalid WARDEN_CORS_ALLOW_HEADERS (--cors-allow-headers): it must \
                 include content-type (every POST to Warden is JSON)"
                    .into(),
            );
        }
        Ok(())
    }

    /// What a browser would silently get wrong with these settings, one
    /// line each, for start-up warnings: in cookie mode, every CORS origin
    /// on another site than the API (its cookie is dropped unless
    /// `SameSite=None`), and a cookie `Domain` that does not cover the API's
    /// host (browsers refuse such a cookie).
    pub fn cookie_warnings(&self) -> Vec<String> {
        if !self.refresh_cookie.enabled() {
            return Vec::new();
        }
        let public_url = self.public_url();
        let source = if self.public_url.is_some() {
            "WARDEN_PUBLIC_URL"
        } else {
            "WARDEN_LISTEN; set WARDEN_PUBLIC_URL if browsers reach Warden elsewhere"
        };
        let Some(api) = Site::of(&public_url) else {
            return Vec::new();
        };
        let mut warnings = Vec::new();
        if self.cookie_same_site != SameSite::None {
            for origin in &self.cors_origins {
                if Site::of(origin).is_some_and(|site| site != api) {
                    warnings.push(format!(
                        "CORS origin {origin} is cross-site to the API (site {api}, from {source}): \
                         browsers drop the SameSite={} refresh cookie on its requests, so its \
                         `refresh` answers INVALID_REFRESH_TOKEN. Serve the app and the API from one \
                         site (a dev-server proxy), or set WARDEN_COOKIE_SAME_SITE=None (HTTPS only)",
                        self.cookie_same_site.as_str()
                    ));
                }
            }
        }
        if let (Some(domain), Some((_, host))) = (&self.cookie_domain, site::split_url(&public_url))
        {
            if !site::domain_matches(&host, domain) {
                warnings.push(format!(
                    "WARDEN_COOKIE_DOMAIN={domain} does not cover the API's host {host} (from \
                     {source}): browsers refuse its cookies"
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(vars.iter().copied()).unwrap()
    }

    #[test]
    fn same_site_is_case_insensitive_and_strict_by_default() {
        assert_eq!(config(&[]).cookie_same_site, SameSite::Strict);
        for (value, want) in [
            ("lax", SameSite::Lax),
            ("NONE", SameSite::None),
            ("Strict", SameSite::Strict),
        ] {
            let c = config(&[("WARDEN_COOKIE_SAME_SITE", value)]);
            assert_eq!(c.cookie_same_site, want);
        }
        assert!(Config::from_vars([("WARDEN_COOKIE_SAME_SITE", "relaxed")]).is_err());
    }

    #[test]
    fn none_without_secure_is_refused_naming_the_variable() {
        let mut c = config(&[("WARDEN_COOKIE_SAME_SITE", "None")]);
        c.cookie_secure = false;
        let err = c.check_browser_settings().unwrap_err();
        assert!(err.contains("WARDEN_COOKIE_SAME_SITE"), "{err}");
        assert!(config(&[("WARDEN_COOKIE_SAME_SITE", "None")])
            .check_browser_settings()
            .is_ok());
    }

    #[test]
    fn a_cookie_domain_is_a_registrable_host_name() {
        assert_eq!(
            parse_cookie_domain(".Example.COM").as_deref(),
            Ok("example.com")
        );
        assert!(parse_cookie_domain("auth.example.co.uk").is_ok());
        for bad in [
            "com",
            "co.uk",
            "localhost",
            "https://example.com",
            "example.com:443",
            "example.com/path",
            "127.0.0.1",
            "-a.example.com",
            "",
        ] {
            assert!(parse_cookie_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names_are_tokens_lowercased() {
        assert_eq!(parse_header_name(" X-Trace ").as_deref(), Ok("x-trace"));
        for bad in ["", "a b", "x:y", "naïve", "a\r\nb"] {
            assert!(parse_header_name(bad).is_err(), "{bad:?}");
        }
        let c = config(&[]);
        assert!(c.cors_allow_headers.iter().any(|h| h == "traceparent"));
        assert!(config(&[("WARDEN_CORS_ALLOW_HEADERS", "authorization")])
            .check_browser_settings()
            .is_err());
    }

    #[test]
    fn the_public_url_defaults_to_the_listen_address() {
        assert_eq!(config(&[]).public_url(), "http://127.0.0.1:8080");
        assert_eq!(
            config(&[("WARDEN_LISTEN", "0.0.0.0:9000")]).public_url(),
            "http://localhost:9000"
        );
        assert_eq!(
            config(&[("WARDEN_PUBLIC_URL", "https://auth.example.com/")]).public_url(),
            "https://auth.example.com"
        );
        for bad in ["auth.example.com", "ftp://x", "https://x/?a", "https://"] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cross_site_origin_in_cookie_mode_is_warned_about_unless_same_site_is_none() {
        let cross = [
            ("WARDEN_REFRESH_COOKIE", "on"),
            (
                "WARDEN_CORS_ORIGINS",
                "http://localhost:5173,http://127.0.0.1:5173",
            ),
        ];
        let warnings = config(&cross).cookie_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("http://localhost:5173"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("http://127.0.0.1"), "{warnings:?}");
        assert!(
            warnings[0].contains("WARDEN_COOKIE_SAME_SITE"),
            "{warnings:?}"
        );

        let mut none = cross.to_vec();
        none.push(("WARDEN_COOKIE_SAME_SITE", "None"));
        assert!(config(&none).cookie_warnings().is_empty());
        let off = [cross[1]];
        assert!(config(&off).cookie_warnings().is_empty());

        let same_site = [
            ("WARDEN_REFRESH_COOKIE", "only"),
            ("WARDEN_PUBLIC_URL", "https://api.example.com"),
            (
                "WARDEN_CORS_ORIGINS",
                "https://app.example.com,http://app.example.com,https://example.org",
            ),
        ];
        let warnings = config(&same_site).cookie_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("http://app.example.com "),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("https://example.org "), "{warnings:?}");
    }

    #[test]
    fn a_cookie_domain_that_misses_the_api_host_is_warned_about() {
        let base = [
            ("WARDEN_REFRESH_COOKIE", "on"),
            ("WARDEN_PUBLIC_URL", "https://api.example.com"),
        ];
        let mut covering = base.to_vec();
        covering.push(("WARDEN_COOKIE_DOMAIN", "example.com"));
        assert!(config(&covering).cookie_warnings().is_empty());
        let mut missing = base.to_vec();
        missing.push(("WARDEN_COOKIE_DOMAIN", "example.org"));
        let warnings = config(&missing).cookie_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("WARDEN_COOKIE_DOMAIN"), "{warnings:?}");
    }
}
