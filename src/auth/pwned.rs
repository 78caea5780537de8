//! The Pwned Passwords range API: is a new password in a known breach?
//!
//! k-anonymity: only the first 5 hex digits of the password's SHA-1 leave
//! the process (`GET {url}/range/{prefix}`); the service answers with every
//! suffix it knows under that prefix (hundreds) and the comparison is made
//! here. With `Add-Padding: true` the answer is padded with fake suffixes
//! (count 0) to a size that does not depend on the prefix, so an observer
//! of the (TLS) response size learns nothing either. The password, its
//! full hash and the suffix are never sent, logged or returned.
//!
//! Mechanism only: the caller ([`crate::services::accounts`]) decides what
//! an unavailable answer means (it fails open, with an audit row).

use std::{sync::LazyLock, time::Duration};

use sha1::{Digest, Sha1};

use crate::auth::password::Password;

/// The longest the whole check may take: it runs on `register`, where a
/// slow third party must not become a slow sign-up.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A real padded answer is about 40 KB; anything far larger is refused
/// rather than read into memory.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// One HTTP client for the process: it keeps the TLS connection to the
/// range API alive between checks.
static CLIENT: LazyLock<Result<reqwest::Client, String>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent("warden-pwned-passwords-check")
        .build()
        .map_err(|err| err.to_string())
});

/// Why the check could not answer. Says nothing about the password.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// No answer within [`TIMEOUT`].
    #[error("timeout")]
    Timeout,
    /// No connection, or the HTTP exchange failed.
    #[error("unreachable")]
    Unreachable,
    /// The service answered with a status other than 200.
    #[error("status {0}")]
    Status(u16),
    /// The answer was too large or not the range format.
    #[error("malformed response")]
    Malformed,
}

impl Unavailable {
    /// A short label for the audit row and the log.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// The SHA-1 of `password` in uppercase hex, split into the 5-digit prefix
/// that is sent and the 35-digit suffix that is compared locally.
fn split_hash(password: &str) -> (String, String) {
    let digest = Sha1::digest(password.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let (prefix, suffix) = hex.split_at(5);
    (prefix.to_owned(), suffix.to_owned())
}

/// True when the range answer lists `suffix` with a count above zero
/// (padding lines have count 0 and never match).
fn listed(body: &str, suffix: &str) -> Result<bool, Unavailable> {
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (candidate, count) = line.split_once(':').ok_or(Unavailable::Malformed)?;
        let count: u64 = count.trim().parse().map_err(|_| Unavailable::Malformed)?;
        if count > 0 && candidate.eq_ignore_ascii_case(suffix) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Asks the range API at `base_url` whether `password` is in a breach.
#[tracing::instrument(skip_all)]
pub async fn is_breached(base_url: &str, password: &Password) -> Result<bool, Unavailable> {
    let client = CLIENT.as_ref().map_err(|_| Unavailable::Unreachable)?;
    let (prefix, suffix) = split_hash(password.expose());
    let url = format!("{}/range/{prefix}", base_url.trim_end_matches('/'));
    let exchange = async {
        let mut response = client
            .get(&url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(classify)?;
        if !response.status().is_success() {
            return Err(Unavailable::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Unavailable::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| Unavailable::Malformed)
    };
    // reqwest's own timeout covers each request; this one covers the whole
    // exchange, body included, whatever the server does.
    let body = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| Unavailable::Timeout)??;
    listed(&body, &suffix)
}

fn classify(err: reqwest::Error) -> Unavailable {
    if err.is_timeout() {
        Unavailable::Timeout
    } else {
        Unavailable::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_split_into_a_5_digit_prefix_and_a_local_suffix() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        let (prefix, suffix) = split_hash("password");
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }

    #[test]
    fn padding_lines_never_match_and_real_ones_do() {
        let suffix = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
        let padded = format!("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{suffix}:0\r\n");
        assert!(!listed(&padded, suffix).unwrap());
        let real = format!(
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{}:3861493\r\n",
            suffix.to_lowercase()
        );
        assert!(listed(&real, suffix).unwrap());
        assert!(matches!(
            listed("<html>", suffix),
            Err(Unavailable::Malformed)
        ));
    }
}
