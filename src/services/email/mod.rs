//! Account lifecycle over email: verified addresses, password reset and
//! email change, each carried by a mailed single-use token (a link) and a
//! 6-digit code (for a mail read on another device).
//!
//! - `tokens.rs`: issuing a token and its code (a newer mail supersedes the
//!   older ones of the same purpose), and consuming one, once;
//! - `verify.rs`: the verification mail (`register`, `sendVerificationEmail`)
//!   and `verifyEmail`;
//! - `reset.rs`: `requestPasswordReset` (queued as an outbox job: the
//!   request does the same work for every address) and `resetPassword`;
//! - `change.rs`: `requestEmailChange` and `confirmEmailChange`.
//!
//! # What an attacker can do
//! A token is 256 random bits and only its SHA-256 is stored; a code is
//! stored as a keyed hash bound to its row ([`crate::auth::email_code`]).
//! Each code dies after [`CODE_TRIES`] wrong tries, counted *before* the
//! comparison by a conditional `UPDATE`, so concurrent guesses cannot
//! exceed it; codes are also limited per address (`WARDEN_RATE_EMAIL_CODE`),
//! every token or code attempt per IP (`WARDEN_RATE_EMAIL_TOKEN_IP`), and
//! every mail per IP and per address (`WARDEN_RATE_MAIL_*`). A token is
//! consumed by a conditional `UPDATE … WHERE used_at IS NULL` inside the
//! transaction of its effect, so of two concurrent uses one wins. Mail goes
//! through the outbox in the same transaction as the token it carries.

mod change;
mod reset;
pub(crate) mod tokens;
pub mod verify;

pub use change::{confirm_email_change, request_email_change};
pub use reset::{queue_reset, request_password_reset, reset_password, run_job};
pub use tokens::{token_state, Purpose, TokenInput, TokenState, CODE_TRIES};
pub use verify::{queue_verification, send_verification_email, verify_email};

/// A lifetime in words, for the mail ("30 minutes", "24 hours").
fn in_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 3600 && secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_a_token_or_an_email_and_a_code() {
        let s = |v: &str| Some(v.to_owned());
        assert!(matches!(
            TokenInput::parse(s("abc"), None, None),
            Ok(TokenInput::Link(t)) if t == "abc"
        ));
        assert!(matches!(
            TokenInput::parse(None, s("a@b.c"), s(" 012345 ")),
            Ok(TokenInput::Code { code, .. }) if code == "012345"
        ));
        for (t, e, c) in [
            (None, None, None),
            (s("abc"), s("a@b.c"), s("012345")),
            (s("abc"), None, s("012345")),
            (None, s("a@b.c"), None),
            (None, None, s("012345")),
            (None, s("a@b.c"), s("12345")),
            (None, s("a@b.c"), s("12345x")),
        ] {
            let err = TokenInput::parse(t, e, c).unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT");
        }
        assert!(TokenInput::parse(s(""), s("a@b.c"), s("000000")).is_ok());
    }

    #[test]
    fn lifetimes_read_as_words() {
        use std::time::Duration;
        assert_eq!(in_words(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(in_words(Duration::from_secs(86400)), "24 hours");
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(90)), "90 seconds");
    }
}
