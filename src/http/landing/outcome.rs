//! The pages that end a visit without a form: a link that no longer works,
//! and any other error, in words.

use poem::{http::StatusCode, Response};

use super::{page, Flow};
use crate::{
    error::{AppError, Chain},
    services::email::TokenState,
};

/// The page for a link that cannot be used.
pub(super) fn dead_link(product: &str, flow: Flow, state: TokenState) -> Response {
    match state {
        TokenState::Expired => page::message(
            StatusCode::GONE,
            product,
            "Link expired",
            &["This link has expired.", flow.ask_again()],
        ),
        TokenState::Used => page::message(
            StatusCode::GONE,
            product,
            "Link already used",
            &[
                "This link was already used or a newer email replaced it.",
                match flow {
                    Flow::Verify => "If you already verified your email, there is nothing left to do. Otherwise open the link in the most recent email, or log in to the app and ask for a new one.",
                    Flow::Reset => "If you already chose a new password, log in with it. Otherwise open the link in the most recent email, or ask for a new password reset.",
                    Flow::Change => "If you already confirmed the change, log in with the new address. Otherwise open the link in the most recent email.",
                },
            ],
        ),
        TokenState::Live | TokenState::Unknown => not_valid(product, flow),
    }
}

pub(super) fn not_valid(product: &str, flow: Flow) -> Response {
    page::message(
        StatusCode::NOT_FOUND,
        product,
        "Link not valid",
        &[
            "This link is not valid.",
            &format!(
                "Check that you opened the whole link from the email. {}",
                flow.ask_again()
            ),
        ],
    )
}

/// Any other error: a generic page; an internal one is logged with its cause.
pub(super) fn failure(product: &str, err: AppError, request_id: &str) -> Response {
    match &err {
        AppError::ServiceUnavailable(_) => page::message(
            StatusCode::SERVICE_UNAVAILABLE,
            product,
            "Try again shortly",
            &[
                "The service is busy or briefly unavailable.",
                "Wait a moment, then reload this page.",
            ],
        ),
        AppError::Internal(source) => {
            tracing::error!(request_id, error = %Chain(source.as_ref()), "internal error on a landing page");
            page::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                product,
                "Something went wrong",
                &[
                    "Something went wrong on our side; nothing was changed by this page.",
                    &format!("Try again later. If it keeps happening, contact support and quote reference {request_id}."),
                ],
            )
        }
        _ => page::message(
            StatusCode::BAD_REQUEST,
            product,
            "Request not completed",
            &[
                "This request could not be completed.",
                "Open the link from your email again.",
            ],
        ),
    }
}

/// `message` with a capital first letter and a final full stop.
pub(super) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// `secs` as a person would say it, rounded up: "45 seconds", "2 minutes".
pub(super) fn wait_in_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs < 60 {
        plural(secs.max(1), "second")
    } else if secs < 3600 {
        plural(secs.div_ceil(60), "minute")
    } else {
        plural(secs.div_ceil(3600), "hour")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_and_messages_read_as_sentences() {
        assert_eq!(wait_in_words(1), "1 second");
        assert_eq!(wait_in_words(61), "2 minutes");
        assert_eq!(wait_in_words(3600), "1 hour");
        assert_eq!(
            sentence("password must be at least 8 bytes"),
            "Password must be at least 8 bytes."
        );
    }
}
