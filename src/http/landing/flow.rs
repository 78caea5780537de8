//! [`Flow`]: the three links a mail may carry, and what each page says.

use crate::services::email::Purpose;

/// The three links a mail may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// `/verify-email`.
    Verify,
    /// `/reset-password`.
    Reset,
    /// `/confirm-email`.
    Change,
}

impl Flow {
    /// The path segment (relative, so a `WARDEN_PUBLIC_URL` with a path
    /// prefix keeps working as the form's `action`).
    pub(super) fn path(self) -> &'static str {
        match self {
            Self::Verify => "verify-email",
            Self::Reset => "reset-password",
            Self::Change => "confirm-email",
        }
    }

    pub(super) fn purpose(self) -> Purpose {
        match self {
            Self::Verify => Purpose::Verify,
            Self::Reset => Purpose::Reset,
            Self::Change => Purpose::Change,
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Self::Verify => "Verify your email",
            Self::Reset => "Choose a new password",
            Self::Change => "Confirm your new email",
        }
    }

    pub(super) fn intro(self) -> &'static str {
        match self {
            Self::Verify => "Confirm that this email address belongs to your account.",
            Self::Reset => "Enter the new password for your account, twice.",
            Self::Change => "Confirm that your account should move to this email address.",
        }
    }

    pub(super) fn button(self) -> &'static str {
        match self {
            Self::Verify => "Verify my email",
            Self::Reset => "Set my new password",
            Self::Change => "Confirm my new email",
        }
    }

    pub(super) fn done(self) -> (&'static str, &'static str) {
        match self {
            Self::Verify => (
                "Email verified",
                "Your email address is verified. You can close this page.",
            ),
            Self::Reset => (
                "Password changed",
                "Your password was changed. You can now log in.",
            ),
            Self::Change => (
                "Email changed",
                "Your email address was changed. Use it the next time you log in.",
            ),
        }
    }

    /// What to do when this flow's link no longer works.
    pub(super) fn ask_again(self) -> &'static str {
        match self {
            Self::Verify => "Log in to the app and ask for a new verification email.",
            Self::Reset => "Ask for a new password reset email from the app's log-in page.",
            Self::Change => "Log in to the app and ask for the email change again.",
        }
    }
}
