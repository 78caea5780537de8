//! Login in two steps: `MFA_REQUIRED`, then `completeLogin` with a TOTP or
//! recovery code; wrong factors under the lockout; the token's life.

use std::time::Duration;

use serde_json::{json, Value};

use super::{enrolled, factor_state, outcome, unix};
use crate::helpers::{captured_logs, code, email, s, spawn_app, spawn_app_with, TestApp, PASSWORD};

/// `login` of an account with a factor: the `mfaToken` of its `MFA_REQUIRED`.
async fn mfa_token(app: &TestApp, who: &str) -> String {
    let body = app.login(who, PASSWORD).await;
    assert_eq!(code(&body), Some("MFA_REQUIRED"), "{body}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["methods"], json!(["TOTP", "RECOVERY_CODE"]), "{body}");
    assert!(body["data"].is_null() || body["data"]["login"].is_null());
    ext["mfaToken"].as_str().unwrap().to_owned()
}

async fn complete(app: &TestApp, token: &str, factor: Value) -> Value {
    let mut input = json!({ "mfaToken": token });
    for (k, v) in factor.as_object().unwrap() {
        input[k] = v.clone();
    }
    app.gql(
        None,
        "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken refreshToken deviceToken user { email mfaEnabled } } }",
        json!({ "i": input }),
    )
    .await
}

#[tokio::test]
async fn a_right_password_asks_for_the_factor_and_a_code_signs_in() {
    let app = spawn_app().await;
    let who = email();
    let (_, auth, _) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(30));
    let body = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let payload = &body["data"]["completeLogin"];
    assert_eq!(payload["user"]["email"], who.as_str());
    assert_eq!(payload["user"]["mfaEnabled"], true);
    let access = s(payload, "accessToken");
    assert_eq!(
        app.me(Some(access)).await["data"]["me"]["email"],
        who.as_str()
    );
    assert!(!s(payload, "deviceToken").is_empty());

    // A trusted device still gets asked.
    let device = s(payload, "deviceToken").to_owned();
    let again = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": who, "password": PASSWORD, "deviceToken": device } }),
        )
        .await;
    assert_eq!(code(&again), Some("MFA_REQUIRED"), "{again}");
    // A wrong password still gets the plain refusal, never the challenge.
    assert_eq!(
        code(&app.login(&who, "not the password").await),
        Some("INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn an_mfa_token_works_once_and_not_after_it_expires() {
    let app = spawn_app_with(|c| c.mfa_token_ttl = Duration::from_secs(120)).await;
    let who = email();
    let (_, auth, _) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(30));
    let first = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert!(first["errors"].is_null(), "{first}");
    app.clock.advance(Duration::from_secs(30));
    let twice = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert_eq!(outcome(&twice), "INVALID_TOKEN", "{twice}");

    let late = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(121));
    let expired = complete(&app, &late, json!({ "totpCode": auth.code_at(unix(&app)) })).await;
    assert_eq!(outcome(&expired), "INVALID_TOKEN", "{expired}");
    let unknown = complete(&app, "not-a-token", json!({ "totpCode": "123456" })).await;
    assert_eq!(outcome(&unknown), "INVALID_TOKEN", "{unknown}");
}

#[tokio::test]
async fn a_token_is_bound_to_its_account_and_another_accounts_factor_fails() {
    let app = spawn_app().await;
    let (alice, bob) = (email(), email());
    let (_, _, _) = enrolled(&app, &alice).await;
    let (_, bob_auth, bob_codes) = enrolled(&app, &bob).await;
    let alices = mfa_token(&app, &alice).await;
    app.clock.advance(Duration::from_secs(30));
    let with_bobs_code = complete(
        &app,
        &alices,
        json!({ "totpCode": bob_auth.code_at(unix(&app)) }),
    )
    .await;
    assert_eq!(
        outcome(&with_bobs_code),
        "INVALID_CREDENTIALS",
        "{with_bobs_code}"
    );
    let with_bobs_recovery = complete(&app, &alices, json!({ "recoveryCode": bob_codes[0] })).await;
    assert_eq!(outcome(&with_bobs_recovery), "INVALID_CREDENTIALS");
    // Bob's code was not spent by the failed attempts on Alice's token.
    let bobs = mfa_token(&app, &bob).await;
    let body = complete(&app, &bobs, json!({ "recoveryCode": bob_codes[0] })).await;
    assert_eq!(
        body["data"]["completeLogin"]["user"]["email"],
        bob.as_str(),
        "{body}"
    );
}

#[tokio::test]
async fn wrong_factors_count_toward_the_lockout_like_wrong_passwords() {
    let app = spawn_app_with(|c| c.lockout_threshold = 3).await;
    let who = email();
    let (_, auth, _) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    let wrong = auth.code_at(unix(&app) + 600);
    for _ in 0..2 {
        let body = complete(&app, &token, json!({ "totpCode": wrong })).await;
        assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let body = complete(&app, &token, json!({ "recoveryCode": "aaaaa-bbbbb" })).await;
    assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    app.clock.advance(Duration::from_secs(30));
    let locked = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert_eq!(
        outcome(&locked),
        "ACCOUNT_LOCKED",
        "even the right code: {locked}"
    );
    let password = app.login(&who, PASSWORD).await;
    assert_eq!(
        code(&password),
        Some("ACCOUNT_LOCKED"),
        "and the password: {password}"
    );
}

#[tokio::test]
async fn each_recovery_code_signs_in_once_even_when_raced() {
    let app = spawn_app().await;
    let who = email();
    let (_, _, codes) = enrolled(&app, &who).await;
    let (t1, t2) = (mfa_token(&app, &who).await, mfa_token(&app, &who).await);
    let typed = codes[3].to_uppercase().replace('-', " ");
    let (a, b) = tokio::join!(
        complete(&app, &t1, json!({ "recoveryCode": typed })),
        complete(&app, &t2, json!({ "recoveryCode": codes[3] }))
    );
    let mut outcomes = vec![outcome(&a).to_owned(), outcome(&b).to_owned()];
    outcomes.sort();
    assert_eq!(outcomes, ["INVALID_CREDENTIALS", "ok"], "{a} {b}");
    let signed_in = if outcome(&a) == "ok" { &a } else { &b };
    let access = s(&signed_in["data"]["completeLogin"], "accessToken");
    assert_eq!(factor_state(&app, access).await, (true, 9));
    let t3 = mfa_token(&app, &who).await;
    let reused = complete(&app, &t3, json!({ "recoveryCode": codes[3] })).await;
    assert_eq!(outcome(&reused), "INVALID_CREDENTIALS", "{reused}");
    let logs = captured_logs();
    assert!(
        !logs.contains(&t1) && !logs.contains(&t3),
        "an mfaToken in the logs"
    );
}

#[tokio::test]
async fn complete_login_takes_exactly_one_factor() {
    let app = spawn_app().await;
    let who = email();
    let (_, _, codes) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    let none = complete(&app, &token, json!({})).await;
    assert_eq!(outcome(&none), "BAD_USER_INPUT", "{none}");
    let both = complete(
        &app,
        &token,
        json!({ "totpCode": "123456", "recoveryCode": codes[0] }),
    )
    .await;
    assert_eq!(outcome(&both), "BAD_USER_INPUT", "{both}");
}

#[tokio::test]
async fn signing_in_with_a_recovery_code_is_audited_and_mailed_to_the_owner() {
    let app = crate::email_flows::support::mail_app().await;
    let who = email();
    let (_, _, codes) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    let body = complete(&app, &token, json!({ "recoveryCode": codes[0] })).await;
    assert!(body["errors"].is_null(), "{body}");
    // Registration's verification, the app turned on, then the notice.
    let enabled = app.nth_mail(&who, 2).await;
    assert!(
        enabled.subject.contains("Two-step sign-in was turned on"),
        "{}",
        enabled.subject
    );
    let notice = app.nth_mail(&who, 3).await;
    assert!(
        notice.subject.contains("recovery code"),
        "{}",
        notice.subject
    );
    assert!(notice.text.contains(&who), "{}", notice.text);
    for c in &codes {
        assert!(
            !notice.raw.contains(c.as_str()),
            "a recovery code in the mail"
        );
    }
    use entity::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let used = audit_event::Entity::find()
        .filter(audit_event::Column::Kind.eq("RECOVERY_CODE_USED"))
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].detail.as_ref().unwrap()["left"], 9);
}

#[tokio::test]
async fn an_mfa_token_dies_when_the_password_it_checked_changes() {
    let app = spawn_app().await;
    let who = email();
    let (access, auth, _) = enrolled(&app, &who).await;
    let token = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(30));
    let changed = app
        .gql(
            Some(&access),
            "mutation($c: String!, $n: String!, $code: String) { changePassword(currentPassword: $c, newPassword: $n, code: $code) }",
            json!({ "c": PASSWORD, "n": "a brand new passphrase", "code": auth.code_at(unix(&app)) }),
        )
        .await;
    assert!(changed["errors"].is_null(), "{changed}");
    app.clock.advance(Duration::from_secs(30));
    let body = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert_eq!(outcome(&body), "INVALID_TOKEN", "{body}");
}

#[tokio::test]
async fn a_trusted_device_completes_its_login_while_an_attack_closes_the_email() {
    let app = spawn_app_with(|c| {
        c.lockout_threshold = 1000;
        c.lockout_global_threshold = 3;
    })
    .await;
    let who = email();
    let (_, auth, _) = enrolled(&app, &who).await;
    // The owner's device signs in once and keeps its device token.
    let token = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(30));
    let first = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    let device = s(&first["data"]["completeLogin"], "deviceToken").to_owned();
    // Guessers everywhere: the email closes to every untrusted client.
    for _ in 0..3 {
        let body = app.login(&who, "a wrong guess").await;
        assert_eq!(code(&body), Some("INVALID_CREDENTIALS"), "{body}");
    }
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("ACCOUNT_LOCKED")
    );
    // The owner's device still gets through both steps.
    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": who, "password": PASSWORD, "deviceToken": device } }),
        )
        .await;
    assert_eq!(code(&login), Some("MFA_REQUIRED"), "{login}");
    let token = login["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap();
    app.clock.advance(Duration::from_secs(30));
    let body = complete(&app, token, json!({ "totpCode": auth.code_at(unix(&app)) })).await;
    assert!(
        body["errors"].is_null(),
        "the owner's device is locked out: {body}"
    );
}

#[tokio::test]
async fn codes_tried_per_account_are_bounded_and_a_right_password_does_not_reset_them() {
    let app = spawn_app_with(|c| c.rates.rate_mfa_user = "4/h".parse().unwrap()).await;
    let who = email();
    let (_, auth, _) = enrolled(&app, &who).await; // one try: the confirming code
    let wrong = auth.code_at(unix(&app) + 900);
    for _ in 0..3 {
        // A fresh right password each time: an attacker who has it.
        let token = mfa_token(&app, &who).await;
        let body = complete(&app, &token, json!({ "totpCode": wrong })).await;
        assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let token = mfa_token(&app, &who).await;
    app.clock.advance(Duration::from_secs(30));
    let body = complete(
        &app,
        &token,
        json!({ "totpCode": auth.code_at(unix(&app)) }),
    )
    .await;
    assert_eq!(outcome(&body), "RATE_LIMITED", "{body}");
}

#[tokio::test]
async fn a_pending_enrollment_expires_and_its_code_tries_are_bounded() {
    let app = spawn_app_with(|c| {
        c.access_token_ttl = Duration::from_secs(3600);
        c.rates.rate_mfa_user = "3/h".parse().unwrap();
    })
    .await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let enrollment = super::start(&app, &token).await;
    let auth = super::Authenticator::from_base32(s(&enrollment, "secret"));
    app.clock.advance(Duration::from_secs(11 * 60));
    let late = super::confirm(&app, &token, &auth.code_at(unix(&app))).await;
    assert_eq!(outcome(&late), "BAD_USER_INPUT", "{late}");
    // Guessing a pending enrollment's code is bounded like any code: the
    // late try was one of three. (A new sign-in: this session is old.)
    let login = app.login(&who, PASSWORD).await;
    let token = s(&login["data"]["login"], "accessToken").to_owned();
    super::start(&app, &token).await;
    for _ in 0..2 {
        let body = super::confirm(&app, &token, "000000").await;
        assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    }
    let body = super::confirm(&app, &token, "000000").await;
    assert_eq!(outcome(&body), "RATE_LIMITED", "{body}");
}
