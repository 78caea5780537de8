//! Cookies as the resolvers see them, in cookie mode
//! (`WARDEN_REFRESH_COOKIE=on|only`): what the request carried
//! ([`RefreshCookie`], [`DeviceCookie`]) and what the response should set
//! ([`ResponseCookies`]).
//!
//! A resolver never writes a `Set-Cookie` header itself: it records a
//! [`CookieIntent`], and the HTTP layer, which owns the cookies' names and
//! attributes, turns each operation's intents into headers after execution,
//! in the order they were recorded. So the API layer does not depend on the
//! transport above it.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use secrecy::SecretString;

/// The refresh tokens of the request's `warden_refresh` cookies, in cookie
/// mode (empty otherwise): in the order sent, without repeats, at most the
/// few the HTTP layer reads.
#[derive(Clone, Debug, Default)]
pub struct RefreshCookie(pub Vec<String>);

/// The device token from the `warden_device` cookie, in cookie mode.
#[derive(Clone, Debug, Default)]
pub struct DeviceCookie(pub Option<String>);

/// One cookie a resolver asked the response to set.
#[derive(Clone, Debug)]
pub enum CookieIntent {
    /// Store `token` in the refresh cookie for `max_age` seconds.
    SetRefresh {
        /// The refresh token.
        token: SecretString,
        /// Seconds the cookie lives (the token's remaining lifetime).
        max_age: i64,
    },
    /// Delete the refresh cookie.
    ClearRefresh,
    /// Store `token` in the device cookie for `max_age` seconds.
    SetDevice {
        /// The device token.
        token: SecretString,
        /// Seconds the cookie lives (the device token's lifetime).
        max_age: i64,
    },
}

/// The cookies one operation asked its response to set, in the order asked.
///
/// The HTTP layer attaches a fresh one to each operation (so a batch keeps
/// each operation's cookies apart, in operation order) and keeps a handle
/// to read it back: clones share one list.
#[derive(Clone, Default)]
pub struct ResponseCookies(Arc<Mutex<Vec<CookieIntent>>>);

impl ResponseCookies {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `intent` after those recorded before.
    pub fn record(&self, intent: CookieIntent) {
        self.lock().push(intent);
    }

    /// Everything recorded so far, in order, leaving the list empty.
    pub fn take(&self) -> Vec<CookieIntent> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CookieIntent>> {
        // A push or a take cannot leave the list half-changed: a poisoned
        // lock still holds a whole list.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ResponseCookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lock().iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn intents_come_back_in_the_order_recorded_through_any_clone_once() {
        let cookies = ResponseCookies::new();
        let handle = cookies.clone();
        cookies.record(CookieIntent::ClearRefresh);
        cookies.record(CookieIntent::SetRefresh {
            token: "r".into(),
            max_age: 5,
        });
        cookies.record(CookieIntent::SetDevice {
            token: "d".into(),
            max_age: 9,
        });
        let taken = handle.take();
        assert!(matches!(taken[0], CookieIntent::ClearRefresh));
        assert!(
            matches!(&taken[1], CookieIntent::SetRefresh { token, max_age: 5 } if token.expose_secret() == "r")
        );
        assert!(
            matches!(&taken[2], CookieIntent::SetDevice { token, max_age: 9 } if token.expose_secret() == "d")
        );
        assert_eq!(taken.len(), 3);
        assert!(cookies.take().is_empty(), "taken once");
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let cookies = ResponseCookies::new();
        cookies.record(CookieIntent::SetRefresh {
            token: "hunter2-refresh".into(),
            max_age: 1,
        });
        cookies.record(CookieIntent::SetDevice {
            token: "hunter2-device".into(),
            max_age: 1,
        });
        let shown = format!("{cookies:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("SetRefresh") && shown.contains("SetDevice"),
            "{shown}"
        );
    }
}
