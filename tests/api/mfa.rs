//! Second factors over HTTP: enrolling an authenticator app, codes accepted
//! once, the clock moved across steps, recovery codes, turning it off.
//! Codes are computed by [`authenticator`], written here from RFC 6238 and
//! RFC 4648 (not the server's implementation).

mod authenticator;
mod enrollment;
mod login;

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{code, s, TestApp};
pub use authenticator::Authenticator;

/// Moves the app's clock to one second into a fresh 30-second step, so the
/// step cannot change during the few requests a test makes.
pub fn align_to_step(app: &TestApp) {
    let now = app.clock.now();
    let into = u64::try_from(now.timestamp()).unwrap() % 30;
    let micros = u64::from(now.timestamp_subsec_micros());
    let to_next = Duration::from_secs(30 - into) - Duration::from_micros(micros);
    app.clock.advance(to_next + Duration::from_secs(1));
}

/// The app's current Unix time.
pub fn unix(app: &TestApp) -> u64 {
    u64::try_from(app.clock.now().timestamp()).unwrap()
}

/// `startTotpEnrollment` for `token`: the whole payload.
pub async fn start(app: &TestApp, token: &str) -> Value {
    let body = app
        .gql(
            Some(token),
            "mutation { startTotpEnrollment { secret otpauthUri qrSvg } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["startTotpEnrollment"].clone()
}

/// `confirmTotpEnrollment(code)`: the whole body.
pub async fn confirm(app: &TestApp, token: &str, totp: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($c: String!) { confirmTotpEnrollment(code: $c) }",
        json!({ "c": totp }),
    )
    .await
}

/// Registers an account and turns an authenticator app on for it (the
/// clock aligned to a step first); the access token, the authenticator,
/// the recovery codes and the step whose code confirmed it.
pub async fn enrolled(app: &TestApp, who: &str) -> (String, Authenticator, Vec<String>) {
    let token = s(&app.register(who).await, "accessToken").to_owned();
    let enrollment = start(app, &token).await;
    let auth = Authenticator::from_base32(s(&enrollment, "secret"));
    align_to_step(app);
    let body = confirm(app, &token, &auth.code_at(unix(app))).await;
    assert!(body["errors"].is_null(), "{body}");
    let codes = body["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (token, auth, codes)
}

/// `me { mfaEnabled }` and `recoveryCodesLeft`.
pub async fn factor_state(app: &TestApp, token: &str) -> (bool, i64) {
    let body = app
        .gql(
            Some(token),
            "{ me { mfaEnabled } recoveryCodesLeft }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    (
        body["data"]["me"]["mfaEnabled"].as_bool().unwrap(),
        body["data"]["recoveryCodesLeft"].as_i64().unwrap(),
    )
}

/// `regenerateRecoveryCodes(code)`: the whole body.
pub async fn regenerate(app: &TestApp, token: &str, totp: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($c: String!) { regenerateRecoveryCodes(code: $c) }",
        json!({ "c": totp }),
    )
    .await
}

/// The error code of `body`, or `"ok"` without errors.
pub fn outcome(body: &Value) -> &str {
    if body["errors"].is_null() {
        "ok"
    } else {
        code(body).unwrap_or("no code")
    }
}
