//! Warden's own landing pages for mailed links (issue #20, item 6), used when
//! `WARDEN_APP_URL` is unset: `/verify-email`, `/reset-password` and
//! `/confirm-email`, each with `?token=…`.
//!
//! # A GET never consumes a token
//! Mail scanners and link previews follow links. A `GET` (or `HEAD`) only
//! reads the token's state ([`flows::token_state`]) and shows either a form
//! or a message saying why the link no longer works and what to do next.
//! Only the form's `POST` (`application/x-www-form-urlencoded`, to the same
//! path, the token in a hidden field) calls the flow, which spends the
//! token; the service applies `WARDEN_RATE_EMAIL_TOKEN_IP` there. The reset
//! form checks the repeated password and the policy before calling the
//! service, so a typo costs no token, and re-renders itself (token kept)
//! with the message beside the field (status 200: it is a page with a form,
//! and a 4xx document is a console error in every browser). Success never
//! logs anyone in: the app
//! (or the user) then calls `login`, which keeps any second factor in force.
//!
//! # Hardening
//! The pages have no script and no external asset; their one inline style
//! is allowed by its hash ([`page::CSP`]). `Referrer-Policy: no-referrer`
//! (the token is in the URL), `X-Frame-Options: DENY`, `Cache-Control:
//! no-store`, `X-Content-Type-Options: nosniff`. A token that is not 16 to
//! 128 characters of the base64url alphabet gets the "not valid" page
//! before any lookup, and every inserted value is escaped. The body is read
//! under `WARDEN_MAX_BODY_BYTES` and `WARDEN_IDLE_TIMEOUT`, like GraphQL's.
//!
//! # Cross-site posts
//! The token is the secret: a forged cross-site form can do no more than
//! whoever holds the token could do directly. A `POST` the browser marks as
//! coming from another site is still refused (403): an `Origin` that is
//! neither `WARDEN_PUBLIC_URL`'s origin nor the `Host` the browser
//! addressed, or `Sec-Fetch-Site: cross-site`/`same-site`. `Origin: null` is
//! what browsers send for a form on a page under `no-referrer`; it is judged
//! by `Sec-Fetch-Site` alone.
//!
//! Errors are told in words: `INVALID_TOKEN` becomes the expired / used /
//! not valid message of the token's state, `BAD_USER_INPUT` its message,
//! `RATE_LIMITED` the time to wait (and `Retry-After`); anything else a
//! generic message, never internal detail (an internal error is logged with
//! the request id, which the page shows).

mod flows;
mod page;

use std::sync::Arc;

use poem::{
    get, handler,
    http::{header, HeaderMap, StatusCode},
    web::Data,
    Body, EndpointExt, Request, Response, Route,
};
use serde::Deserialize;

use self::flows::{Purpose, TokenInput, TokenState};
use self::page::Problems;
use super::HttpState;
use crate::{
    auth::password::Password,
    config::Config,
    error::{AppError, Chain},
    meta::RequestMeta,
};

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
    fn path(self) -> &'static str {
        match self {
            Self::Verify => "verify-email",
            Self::Reset => "reset-password",
            Self::Change => "confirm-email",
        }
    }

    fn purpose(self) -> Purpose {
        match self {
            Self::Verify => Purpose::Verify,
            Self::Reset => Purpose::Reset,
            Self::Change => Purpose::Change,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Verify => "Verify your email",
            Self::Reset => "Choose a new password",
            Self::Change => "Confirm your new email",
        }
    }

    fn intro(self) -> &'static str {
        match self {
            Self::Verify => "Confirm that this email address belongs to your account.",
            Self::Reset => "Enter the new password for your account, twice.",
            Self::Change => "Confirm that your account should move to this email address.",
        }
    }

    fn button(self) -> &'static str {
        match self {
            Self::Verify => "Verify my email",
            Self::Reset => "Set my new password",
            Self::Change => "Confirm my new email",
        }
    }

    fn done(self) -> (&'static str, &'static str) {
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
    fn ask_again(self) -> &'static str {
        match self {
            Self::Verify => "Log in to the app and ask for a new verification email.",
            Self::Reset => "Ask for a new password reset email from the app's log-in page.",
            Self::Change => "Log in to the app and ask for the email change again.",
        }
    }
}

/// Adds the three pages to `route`.
pub fn register(route: Route) -> Route {
    [Flow::Verify, Flow::Reset, Flow::Change]
        .into_iter()
        .fold(route, |route, flow| {
            route.at(
                format!("/{}", flow.path()),
                get(show).post(submit).data(flow),
            )
        })
}

/// Longest token looked up, in characters.
const MAX_TOKEN: usize = 128;
/// Shortest token looked up, in characters.
const MIN_TOKEN: usize = 16;

/// True when `token` could be a link token: base64url, sane length.
fn well_formed(token: &str) -> bool {
    (MIN_TOKEN..=MAX_TOKEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The form's fields. No `Debug`: it holds a password.
#[derive(Deserialize)]
struct FormFields {
    token: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

/// `GET` (and `HEAD`): the form, or why the link no longer works.
/// Consumes nothing.
#[handler]
async fn show(
    req: &Request,
    Data(http): Data<&Arc<HttpState>>,
    Data(flow): Data<&Flow>,
) -> Response {
    let flow = *flow;
    let product = &http.app.config.product_name;
    let token = serde_urlencoded::from_str::<TokenQuery>(req.uri().query().unwrap_or_default())
        .ok()
        .and_then(|q| q.token)
        .filter(|t| well_formed(t));
    let Some(token) = token else {
        return not_valid(product, flow);
    };
    match flows::token_state(&http.app, flow.purpose(), &token).await {
        Ok(TokenState::Live) => {
            page::form(StatusCode::OK, product, flow, &token, &Problems::default())
        }
        Ok(state) => dead_link(product, flow, state),
        Err(err) => failure(product, err, &super::access::request_id(req)),
    }
}

/// `POST`: runs the flow with the form's token.
#[handler]
async fn submit(
    req: &Request,
    body: Body,
    Data(http): Data<&Arc<HttpState>>,
    Data(flow): Data<&Flow>,
) -> Response {
    let flow = *flow;
    let config = &http.app.config;
    let product = &config.product_name;
    if from_another_site(
        req.headers(),
        req.uri().authority().map(|a| a.as_str()),
        config,
    ) {
        return page::message(
            StatusCode::FORBIDDEN,
            product,
            "Request refused",
            &[
                "This form was sent from another website, so it was not accepted.",
                "Open the link from your email again and submit the form there.",
            ],
        );
    }
    if !is_form(req.headers()) {
        return page::message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            product,
            "Request refused",
            &[
                "This page only accepts its own form.",
                "Open the link from your email again.",
            ],
        );
    }
    let read = body.into_bytes_limit(config.max_body_bytes);
    let bytes = match tokio::time::timeout(config.idle_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            return page::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                product,
                "Request refused",
                &[
                    "The form sent was too large.",
                    "Open the link from your email again.",
                ],
            );
        }
        Ok(Err(_)) | Err(_) => {
            return page::message(
                StatusCode::BAD_REQUEST,
                product,
                "Request refused",
                &[
                    "The form did not arrive whole.",
                    "Open the link from your email again.",
                ],
            );
        }
    };
    let Ok(fields) = serde_urlencoded::from_bytes::<FormFields>(&bytes) else {
        return not_valid(product, flow);
    };
    let Some(token) = fields.token.filter(|t| well_formed(t)) else {
        return not_valid(product, flow);
    };
    let meta = request_meta(req, config);
    let input = TokenInput::Link(token.clone());
    let result = match flow {
        Flow::Verify => flows::verify_email(&http.app, &meta, input).await,
        Flow::Change => flows::confirm_email_change(&http.app, &meta, input, None).await,
        Flow::Reset => {
            let password = fields.password.unwrap_or_default();
            let retry = |problems: Problems<'_>| {
                page::form(StatusCode::OK, product, flow, &token, &problems)
            };
            if password != fields.confirm.unwrap_or_default() {
                return retry(Problems {
                    confirm: Some("The two passwords are not the same."),
                    ..Problems::default()
                });
            }
            // The policy without the account's context, before the token is
            // spent; the service applies it again with the context.
            if let Err(AppError::BadUserInput { message, .. }) =
                Password::parse(&password, "newPassword")
            {
                return retry(Problems {
                    password: Some(&sentence(&message)),
                    ..Problems::default()
                });
            }
            flows::reset_password(&http.app, &meta, input, &password).await
        }
    };
    match result {
        Ok(()) => {
            let (title, text) = flow.done();
            page::message(StatusCode::OK, product, title, &[text])
        }
        Err(AppError::InvalidToken) => {
            // Which message fits: read the state again (it consumes nothing).
            let state = flows::token_state(&http.app, flow.purpose(), &token)
                .await
                .unwrap_or(TokenState::Unknown);
            let state = if state == TokenState::Live {
                TokenState::Used
            } else {
                state
            };
            dead_link(product, flow, state)
        }
        Err(AppError::BadUserInput { message, .. }) => {
            let message = sentence(&message);
            let problems = if flow == Flow::Reset {
                Problems {
                    password: Some(&message),
                    ..Problems::default()
                }
            } else {
                Problems {
                    banner: Some(&message),
                    ..Problems::default()
                }
            };
            page::form(StatusCode::OK, product, flow, &token, &problems)
        }
        Err(AppError::RateLimited { retry_after }) => {
            let banner = format!(
                "Too many attempts from your network. Try again in {}.",
                wait_in_words(retry_after)
            );
            let mut response = page::form(
                StatusCode::TOO_MANY_REQUESTS,
                product,
                flow,
                &token,
                &Problems {
                    banner: Some(&banner),
                    ..Problems::default()
                },
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(AppError::EmailTaken) => page::message(
            StatusCode::CONFLICT,
            product,
            "Email not changed",
            &[
                "Another account now uses this email address, so yours was not moved to it.",
                "Log in and choose a different address.",
            ],
        ),
        Err(err) => failure(product, err, &meta.request_id),
    }
}

/// The page for a link that cannot be used.
fn dead_link(product: &str, flow: Flow, state: TokenState) -> Response {
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

fn not_valid(product: &str, flow: Flow) -> Response {
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
fn failure(product: &str, err: AppError, request_id: &str) -> Response {
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
fn sentence(message: &str) -> String {
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
fn wait_in_words(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs < 60 {
        plural(secs.max(1), "second")
    } else if secs < 3600 {
        plural(secs.div_ceil(60), "minute")
    } else {
        plural(secs.div_ceil(3600), "hour")
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// True when the browser says this POST comes from another site (see the
/// module docs). `authority` is the request URI's, for HTTP/2.
fn from_another_site(headers: &HeaderMap, authority: Option<&str>, config: &Config) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if matches!(text("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let public = config.public_url();
    if origin.eq_ignore_ascii_case(origin_of(&public)) {
        return false;
    }
    let addressed = text(header::HOST.as_str()).or(authority);
    let origin_authority = origin.split_once("://").map(|(_, rest)| rest);
    !matches!((origin_authority, addressed), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn request_meta(req: &Request, config: &Config) -> RequestMeta {
    // Found once by the access layer, which wraps every route.
    let ip = super::access::client(req).flatten();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    RequestMeta::new(ip, user_agent, super::access::request_id(req))
        .with_ipv6_prefix(config.ipv6_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64url_tokens_of_a_sane_length_are_looked_up() {
        assert!(well_formed(&"a".repeat(43)));
        assert!(well_formed("abcDEF012-_abcdef"));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed("short"));
        assert!(!well_formed("abcdefghijklmnop<"));
        assert!(!well_formed("abcdefghijklmnop=="));
    }

    #[test]
    fn waits_and_messages_read_as_sentences() {
        assert_eq!(wait_in_words(1), "1 second");
        assert_eq!(wait_in_words(61), "2 minutes");
        assert_eq!(wait_in_words(3600), "1 hour");
        assert_eq!(
            sentence("password must be at least 8 bytes"),
            "Password must be at least 8 bytes."
        );
        assert_eq!(
            origin_of("https://auth.example.com/base/"),
            "https://auth.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
