//! Trusted devices in the API: the `TrustedDevice` type, and the device
//! token's way in (`LoginInput.deviceToken` or, in cookie mode, the
//! `warden_device` cookie) and out (`AuthPayload.deviceToken` and the cookie).

use async_graphql::{Context, SimpleObject, ID};
use chrono::{DateTime, Utc};

pub use crate::graphql::cookies::DeviceCookie;
use crate::{
    graphql::{
        context::ContextExt,
        cookies::{CookieIntent, ResponseCookies},
    },
    services::AuthOutcome,
};

/// The device cookie's token, in cookie mode.
pub fn cookie<'a>(ctx: &'a Context<'_>) -> Option<&'a str> {
    ctx.data::<DeviceCookie>().ok().and_then(|c| c.0.as_deref())
}

/// In cookie mode, asks the response for the device cookie holding the
/// outcome's device token (the HTTP layer writes it), and with `WARDEN_REFRESH_COOKIE=only` takes it out of the body: no
/// script sees it then.
pub fn deliver(ctx: &Context<'_>, mut outcome: AuthOutcome) -> AuthOutcome {
    let Ok(state) = ctx.state() else {
        return outcome;
    };
    let mode = state.config.refresh_cookie;
    if !mode.enabled() {
        return outcome;
    }
    // Without the HTTP layer there is no response to carry the cookie.
    if let (Some(token), Ok(cookies)) = (&outcome.device_token, ctx.data::<ResponseCookies>()) {
        let max_age = i64::try_from(state.config.device_token_ttl.as_secs()).unwrap_or(i64::MAX);
        cookies.record(CookieIntent::SetDevice {
            token: token.clone(),
            max_age,
        });
    }
    if mode.cookie_only() {
        outcome.device_token = None;
    }
    outcome
}

/// A device trusted for the caller's account: it logged in before, and may
/// still try the password while too many failures from elsewhere have
/// closed the email to other clients.
#[derive(SimpleObject, Clone, Debug)]
pub struct TrustedDevice {
    /// Pass to `revokeTrustedDevice` to stop trusting it.
    pub id: ID,
    /// When it first logged in.
    pub created_at: DateTime<Utc>,
    /// When it last logged in (each login renews its device token).
    pub last_used_at: DateTime<Utc>,
    /// When its trust ends unless it logs in again.
    pub expires_at: DateTime<Utc>,
    /// Client IP of its last login.
    pub ip: Option<String>,
    /// User agent of its last login.
    pub user_agent: Option<String>,
}

impl From<entity::trusted_device::Model> for TrustedDevice {
    fn from(row: entity::trusted_device::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            ip: row.ip,
            user_agent: row.user_agent,
        }
    }
}
