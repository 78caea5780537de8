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
//! logs anyone in: the app (or the user) then calls `login`, which keeps
//! any second factor in force. A GET is not counted against the rule: it
//! spends nothing, and guessing a 256-bit token by its page is hopeless.
//!
//! # Hardening
//! The pages have no script and no external asset; their one inline style
//! is allowed by its hash ([`page::CSP`]). `Referrer-Policy: no-referrer`
//! (the token is in the URL), `X-Frame-Options: DENY`, `Cache-Control:
//! no-store`, `X-Content-Type-Options: nosniff`. A token that is not 43
//! base64url characters (the shape Warden issues) gets the "not valid" page
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

mod flow;
mod guard;
mod outcome;
mod page;

use std::sync::Arc;

use poem::{
    get, handler,
    http::{header, StatusCode},
    web::Data,
    Body, EndpointExt, Request, Response, Route,
};
use serde::Deserialize;

use self::flow::Flow;
use self::guard::{from_another_site, is_form};
use self::outcome::{dead_link, failure, not_valid, sentence, wait_in_words};
use self::page::Problems;
use super::HttpState;
use crate::{
    auth::{opaque_token, password::Password},
    config::Config,
    error::AppError,
    meta::RequestMeta,
    services::email::{self as flows, TokenInput, TokenState},
};

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

/// True when `token` has the shape of a link token (43 base64url
/// characters): anything else gets the "not valid" page with no lookup,
/// and is never echoed.
fn well_formed(token: &str) -> bool {
    opaque_token::looks_valid(token)
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
    fn only_tokens_of_the_issued_shape_are_looked_up() {
        assert!(well_formed(&"a".repeat(43)));
        assert!(well_formed(&format!("{}-_", "aZ0".repeat(13) + "x9")));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}<", "a".repeat(42))));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
    }
}
