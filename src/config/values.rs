//! The typed values that settings take: rate quotas, the refresh-cookie
//! mode, the log format and the signing algorithm.

use std::{fmt, str::FromStr, time::Duration};

/// A rate-limit quota: `count` requests per `per`, written `N/s`, `N/min` or `N/h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    /// Requests allowed per period; at least 1.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl FromStr for RateQuota {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a quota: write N/s, N/min, N/h or N/d"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number"))?;
        if count == 0 {
            return Err("a quota must allow at least 1 request".into());
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => return Err(format!("unknown quota unit `{other}`: use s, min, h or d")),
        };
        Ok(Self { count, per })
    }
}

impl fmt::Display for RateQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            86_400 => "d",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Whether the refresh token also travels in an HttpOnly cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshCookieMode {
    /// Only in response bodies and arguments.
    Off,
    /// In bodies and in the `warden_refresh` cookie.
    On,
    /// In the cookie alone: `AuthPayload.refreshToken` is returned empty, so no
    /// script ever sees the token (a deliberate use of the non-null field).
    Only,
}

impl RefreshCookieMode {
    /// True when the cookie is set and read.
    pub fn enabled(self) -> bool {
        self != Self::Off
    }

    /// True when response bodies must not carry the refresh token.
    pub fn cookie_only(self) -> bool {
        self == Self::Only
    }
}

pub(super) fn parse_refresh_cookie(s: &str) -> Result<RefreshCookieMode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "false" | "0" | "no" => Ok(RefreshCookieMode::Off),
        "on" | "true" | "1" | "yes" => Ok(RefreshCookieMode::On),
        "only" => Ok(RefreshCookieMode::Only),
        _ => Err(format!("`{s}` is not one of off, on, only (or true/false)")),
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The signing algorithm, from `WARDEN_JWT_ALGORITHM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret: fastest; only Warden can verify.
    Hs256,
    /// Ed25519: anyone can verify with the public keys from JWKS.
    EdDsa,
}

impl JwtAlgorithm {
    /// The stored and configured name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hs256" => Ok(Self::Hs256),
            "eddsa" | "ed25519" => Ok(Self::EdDsa),
            _ => Err(format!("`{s}` is not one of HS256, EdDSA")),
        }
    }
}
