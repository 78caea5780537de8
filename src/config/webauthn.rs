//! The WebAuthn relying party: which domain passkeys are bound to
//! (`WARDEN_WEBAUTHN_RP_ID`) and which pages may use them
//! (`WARDEN_WEBAUTHN_ORIGINS`), with defaults that work on `localhost`.

use super::{site, Config};

/// A relying party id: a bare domain name (browsers refuse IP addresses).
pub(super) fn parse_rp_id(s: &str) -> Result<String, String> {
    let id = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if id.is_empty() || id.len() > 253 || !id.split('.').all(label_ok) {
        return Err(format!(
            "`{id}` is not a domain like example.com (no scheme, port or path)"
        ));
    }
    if id.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "`{id}` is an IP address: passkeys need a domain name (`localhost` on a laptop)"
        ));
    }
    Ok(id)
}

/// The relying party a server runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingParty {
    /// The RP ID.
    pub id: String,
    /// Origins whose pages may register and use passkeys.
    pub origins: Vec<String>,
}

impl RelyingParty {
    /// On `localhost` any port of an allowed origin is accepted (an app's
    /// dev server and Warden run on different ports of one machine).
    pub fn any_port(&self) -> bool {
        self.id == "localhost"
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// `scheme://host[:port]` of `raw` (the URL crate's parsing: a default
/// port dropped, the host lowercased), with a loopback host read as
/// `localhost`.
fn origin_of(raw: &str) -> Option<String> {
    let url = webauthn_rs::prelude::Url::parse(raw).ok()?;
    let host = url.host_str()?;
    let host = if is_loopback(host) { "localhost" } else { host };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}", url.scheme()))
}

/// Whether a page of `origin` may use passkeys of `rp_id`: its host is the
/// RP ID or under it (browsers enforce the same).
fn under(origin: &str, rp_id: &str) -> bool {
    site::split_url(origin)
        .is_some_and(|(_, host)| host == rp_id || host.ends_with(&format!(".{rp_id}")))
}

impl Config {
    /// The relying party: the settings, or the defaults derived from
    /// `WARDEN_PUBLIC_URL` (a loopback host becomes `localhost`), its
    /// origin, `WARDEN_APP_URL`'s and `WARDEN_CORS_ORIGINS`.
    pub fn relying_party(&self) -> Result<RelyingParty, String> {
        let public = self.public_url();
        let id = match &self.webauthn_rp_id {
            Some(id) => id.clone(),
            None => {
                let (_, host) = site::split_url(&public).unwrap_or_default();
                if is_loopback(&host) {
                    "localhost".to_owned()
                } else {
                    parse_rp_id(&host).map_err(|e| {
                        format!(
                            "WARDEN_WEBAUTHN_RP_ID is unset and the host of WARDEN_PUBLIC_URL \
                             cannot be one: {e}; set WARDEN_WEBAUTHN_RP_ID"
                        )
                    })?
                }
            }
        };
        let origins = if self.webauthn_origins.is_empty() {
            let mut origins: Vec<String> = [Some(public.as_str()), self.app_url.as_deref()]
                .into_iter()
                .flatten()
                .chain(self.cors_origins.iter().map(String::as_str))
                .filter_map(origin_of)
                .collect();
            origins.dedup();
            // Defaults on another domain (a CORS origin of another site)
            // could never use these passkeys: left out.
            origins.retain(|o| under(o, &id));
            origins
        } else {
            let origins: Vec<String> = self
                .webauthn_origins
                .iter()
                .filter_map(|o| origin_of(o))
                .collect();
            if let Some(outside) = origins.iter().find(|o| !under(o, &id)) {
                return Err(format!(
                    "WARDEN_WEBAUTHN_ORIGINS: `{outside}` is not on `{id}` (WARDEN_WEBAUTHN_RP_ID) \
                     or under it: browsers would refuse its passkeys"
                ));
            }
            origins
        };
        Ok(RelyingParty { id, origins })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(vars.iter().copied()).unwrap()
    }

    #[test]
    fn a_laptop_gets_localhost() {
        let rp = config(&[]).relying_party().unwrap();
        assert_eq!(rp.id, "localhost");
        assert_eq!(rp.origins, ["http://localhost:8080"]);
        assert!(rp.any_port());
    }

    #[test]
    fn a_public_url_gives_its_host_and_the_app_origins_join() {
        let rp = config(&[
            ("WARDEN_PUBLIC_URL", "https://auth.example.com"),
            ("WARDEN_APP_URL", "https://app.example.com/account"),
            ("WARDEN_CORS_ORIGINS", "https://www.example.com"),
        ])
        .relying_party()
        .unwrap();
        assert_eq!(rp.id, "auth.example.com");
        // The app's pages are not under auth.example.com: left out.
        assert_eq!(rp.origins, ["https://auth.example.com"]);
        assert!(!rp.any_port());
        let shared = config(&[
            ("WARDEN_PUBLIC_URL", "https://auth.example.com"),
            ("WARDEN_APP_URL", "https://app.example.com/account"),
            (
                "WARDEN_CORS_ORIGINS",
                "https://www.example.com,https://other.test",
            ),
            ("WARDEN_WEBAUTHN_RP_ID", "example.com"),
        ])
        .relying_party()
        .unwrap();
        assert_eq!(
            shared.origins,
            [
                "https://auth.example.com",
                "https://app.example.com",
                "https://www.example.com"
            ]
        );
    }

    #[test]
    fn settings_win_and_an_ip_is_refused() {
        let rp = config(&[
            ("WARDEN_PUBLIC_URL", "https://auth.example.com"),
            ("WARDEN_WEBAUTHN_RP_ID", "Example.com"),
            ("WARDEN_WEBAUTHN_ORIGINS", "https://app.example.com:8443"),
        ])
        .relying_party()
        .unwrap();
        assert_eq!(rp.id, "example.com");
        assert_eq!(rp.origins, ["https://app.example.com:8443"]);
        assert!(parse_rp_id("10.0.0.1").is_err());
        assert_eq!(
            origin_of("https://App.Example.com:443/x").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            origin_of("http://[::1]:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert!(parse_rp_id("https://example.com").is_err());
        let ip = config(&[("WARDEN_PUBLIC_URL", "https://10.1.2.3")]).relying_party();
        assert!(ip.unwrap_err().contains("WARDEN_WEBAUTHN_RP_ID"));
        let elsewhere = config(&[
            ("WARDEN_WEBAUTHN_RP_ID", "example.com"),
            ("WARDEN_WEBAUTHN_ORIGINS", "https://example.org"),
        ])
        .relying_party();
        assert!(elsewhere.unwrap_err().contains("not on `example.com`"));
    }
}
