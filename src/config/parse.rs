//! Value parsers for [`Config`](super::Config): each refuses a bad value
//! with a message that, with clap's, names the variable.

use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

pub(super) use super::values::parse_refresh_cookie;

pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s, 15m or 7d ({e})"))
}

pub(super) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

pub(super) fn parse_non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_owned())
}

pub(super) fn parse_body_limit(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of bytes"))?;
    if n < 1024 {
        return Err("must be at least 1024 bytes".into());
    }
    Ok(n)
}

pub(super) fn parse_batch(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Accepts `sqlite://<file>` and `postgres://…`. An in-memory SQLite
/// database is refused: each pool would get its own empty database.
pub(super) fn parse_database_url(s: &str) -> Result<SecretString, String> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        if lower.contains(":memory:") || lower.contains("mode=memory") {
            return Err("an in-memory SQLite database is not supported: use a file, like sqlite://warden.db?mode=rwc".into());
        }
    } else if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        return Err("must start with sqlite:// or postgres://".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// An exact origin: `scheme://host[:port]`, nothing else. A wildcard is
/// refused: with credentials it would hand sessions to any site.
pub(super) fn parse_origin(s: &str) -> Result<String, String> {
    let origin = s.trim().trim_end_matches('/');
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err(format!(
            "`{origin}` is not an origin like https://app.example.com"
        ));
    };
    let host_ok = !host.is_empty() && !host.contains(['/', '*', '?', '#', ' ']);
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(format!(
            "`{origin}` is not an origin like https://app.example.com (no wildcards, no paths)"
        ));
    }
    Ok(origin.to_owned())
}

/// A boolean setting. With its flag, every form works: `--x` alone (the
/// field's `default_missing_value`), `--x=false`, `--x false`, and the
/// variable, `WARDEN_X=off`. A field using it needs, besides
/// `value_parser = parse_switch`: `action = ArgAction::Set` (a `bool` field
/// otherwise gets clap's `SetTrue`, which takes no value at all), and
/// `num_args = 0..=1` with `default_missing_value` (`"true"`, or `"on"` for
/// a setting documented as on/off), so the value may be left out.
pub(super) fn parse_switch(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        // A bare switch takes the next word as its value: say how to put
        // a subcommand after it.
        _ => Err(format!(
            "`{s}` is not a switch: use true or false (or on/off, yes/no, 1/0); \
             before a subcommand, write the switch as --flag=true"
        )),
    }
}

/// A [`clap::ValueEnum`] setting, case-insensitively (`WARDEN_LOG_FORMAT=JSON`);
/// a bad value's message lists the valid ones. Use it as
/// `value_parser = parse_enum::<TheEnum>` (clap's own parser for a value
/// enum matches case-sensitively, and its error lists the values on a
/// second line that the one-line start-up error leaves out).
pub(super) fn parse_enum<E: clap::ValueEnum>(s: &str) -> Result<E, String> {
    E::from_str(s.trim(), true).map_err(|_| {
        let valid: Vec<String> = E::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        format!("`{s}` is not one of {}", valid.join(", "))
    })
}

/// `HS256` or `EdDSA`, in any case.
pub(super) fn parse_jwt_algorithm(s: &str) -> Result<super::JwtAlgorithm, String> {
    s.trim().parse()
}

/// A Redis URL the client can use; the message never repeats it (it may
/// hold a password).
pub(super) fn parse_redis_url(s: &str) -> Result<SecretString, String> {
    redis::Client::open(s)
        .map(|_| SecretString::from(s.to_owned()))
        .map_err(|_| "not a usable redis:// URL".into())
}

/// Example values that appear in docs and tutorials: a server started with
/// one of them signs tokens anyone can forge.
pub(super) const EXAMPLE_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "your-secret",
    "your-256-bit-secret",
    "example",
];

pub(super) fn parse_jwt_secret(s: &str) -> Result<SecretString, String> {
    if s.len() < 32 {
        return Err(format!("must be at least 32 bytes, got {}", s.len()));
    }
    let lower = s.to_ascii_lowercase();
    if EXAMPLE_SECRETS
        .iter()
        .any(|example| lower.contains(example))
        || s.bytes().all(|b| b == s.as_bytes()[0])
    {
        return Err(
            "looks like an example value: generate one with `openssl rand -base64 48`".into(),
        );
    }
    Ok(SecretString::from(s.to_owned()))
}

pub(super) fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
}
