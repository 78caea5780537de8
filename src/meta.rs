//! [`RequestMeta`]: who is asking, as far as the transport can tell.

use std::net::IpAddr;

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
        }
    }

    /// For work that does not come from a request (the CLI).
    pub fn local(request_id: &str) -> Self {
        Self {
            ip: None,
            user_agent: None,
            request_id: request_id.to_owned(),
        }
    }

    /// The IP as stored.
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}
