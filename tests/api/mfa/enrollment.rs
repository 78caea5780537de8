//! `startTotpEnrollment`, `confirmTotpEnrollment`, replay refusal, steps,
//! `regenerateRecoveryCodes`, `disableTotp`, and no secret anywhere but in
//! the answers that create it.

use std::time::Duration;

use entity::{audit_event, recovery_code, totp_factor};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::{
    align_to_step, confirm, enrolled, factor_state, outcome, regenerate, start, unix, Authenticator,
};
use crate::helpers::{captured_logs, email, s, spawn_app, TestApp, PASSWORD};

async fn audit_kinds(app: &TestApp, user: Uuid) -> Vec<String> {
    audit_event::Entity::find()
        .filter(audit_event::Column::UserId.eq(user))
        .all(app.state.db.read())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.kind)
        .collect()
}

async fn user_id(app: &TestApp, token: &str) -> Uuid {
    let me = app.me(Some(token)).await;
    Uuid::parse_str(me["data"]["me"]["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn enrolling_shows_the_secret_and_a_code_from_it_turns_the_factor_on() {
    let app = spawn_app().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    assert_eq!(factor_state(&app, &token).await, (false, 0));

    let enrollment = start(&app, &token).await;
    let secret = s(&enrollment, "secret");
    let uri = s(&enrollment, "otpauthUri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=Warden"), "{uri}");
    assert!(
        uri.contains(&who.replace('@', "%40")),
        "the account is the email: {uri}"
    );
    assert!(s(&enrollment, "qrSvg").contains("<svg"));
    let auth = Authenticator::from_base32(secret);
    assert_eq!(auth.bytes().len(), 20, "160-bit secrets");
    assert_eq!(
        factor_state(&app, &token).await,
        (false, 0),
        "pending is not on"
    );

    align_to_step(&app);
    let now = unix(&app);
    let wrong = confirm(&app, &token, &auth.code_at(now + 300)).await;
    assert_eq!(outcome(&wrong), "INVALID_CREDENTIALS", "{wrong}");
    let body = confirm(&app, &token, &auth.code_at(now)).await;
    assert!(body["errors"].is_null(), "{body}");
    let codes: Vec<&str> = body["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_eq!(factor_state(&app, &token).await, (true, 10));

    let id = user_id(&app, &token).await;
    let kinds = audit_kinds(&app, id).await;
    assert!(kinds.contains(&"MFA_ENABLED".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"MFA_FAILED".to_owned()),
        "the wrong code: {kinds:?}"
    );

    // A second enrollment while on is refused, and the factor stays.
    let again = app
        .gql(
            Some(&token),
            "mutation { startTotpEnrollment { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(outcome(&again), "BAD_USER_INPUT", "{again}");
    assert_eq!(factor_state(&app, &token).await, (true, 10));
}

#[tokio::test]
async fn a_restarted_enrollment_replaces_the_pending_secret() {
    let app = spawn_app().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let first = Authenticator::from_base32(s(&start(&app, &token).await, "secret"));
    let second = Authenticator::from_base32(s(&start(&app, &token).await, "secret"));
    assert_ne!(first.bytes(), second.bytes());
    align_to_step(&app);
    let now = unix(&app);
    let stale = confirm(&app, &token, &first.code_at(now)).await;
    assert_eq!(outcome(&stale), "INVALID_CREDENTIALS", "{stale}");
    let body = confirm(&app, &token, &second.code_at(now)).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn a_code_accepted_once_is_refused_again_in_its_window() {
    let app = spawn_app().await;
    let (token, auth, _) = enrolled(&app, &email()).await;
    let confirmed_with = auth.code_at(unix(&app));
    let replay = regenerate(&app, &token, &confirmed_with).await;
    assert_eq!(outcome(&replay), "INVALID_CREDENTIALS", "{replay}");
    // The previous step's code is older than the accepted one: refused too.
    let older = regenerate(&app, &token, &auth.code_at(unix(&app) - 30)).await;
    assert_eq!(outcome(&older), "INVALID_CREDENTIALS", "{older}");
    // The next step's code (one step of skew) is new: accepted, and then spent.
    let next = auth.code_at(unix(&app) + 30);
    let fresh = regenerate(&app, &token, &next).await;
    assert!(fresh["errors"].is_null(), "{fresh}");
    app.clock.advance(Duration::from_secs(30));
    let spent = regenerate(&app, &token, &next).await;
    assert_eq!(outcome(&spent), "INVALID_CREDENTIALS", "{spent}");
}

#[tokio::test]
async fn codes_work_one_step_either_side_and_no_further() {
    let app = spawn_app().await;
    let (token, auth, _) = enrolled(&app, &email()).await;
    let enrolled_at = unix(&app);
    // Two steps later: the code of the step before now is still accepted
    // (skew), the one of two steps before is not.
    app.clock.advance(Duration::from_secs(60));
    let now = unix(&app);
    let too_old = regenerate(&app, &token, &auth.code_at(now - 60)).await;
    assert_eq!(outcome(&too_old), "INVALID_CREDENTIALS", "{too_old}");
    let too_new = regenerate(&app, &token, &auth.code_at(now + 60)).await;
    assert_eq!(outcome(&too_new), "INVALID_CREDENTIALS", "{too_new}");
    let previous = regenerate(&app, &token, &auth.code_at(now - 30)).await;
    assert!(previous["errors"].is_null(), "{previous}");
    assert!(now - 30 > enrolled_at);
    // Across a step boundary the current code works as well.
    app.clock.advance(Duration::from_secs(30));
    let current = regenerate(&app, &token, &auth.code_at(unix(&app))).await;
    assert!(current["errors"].is_null(), "{current}");
}

#[tokio::test]
async fn two_concurrent_uses_of_one_code_let_exactly_one_through() {
    let app = spawn_app().await;
    let (token, auth, _) = enrolled(&app, &email()).await;
    app.clock.advance(Duration::from_secs(30));
    let totp = auth.code_at(unix(&app));
    let (a, b) = tokio::join!(
        regenerate(&app, &token, &totp),
        regenerate(&app, &token, &totp)
    );
    let mut outcomes = vec![outcome(&a).to_owned(), outcome(&b).to_owned()];
    outcomes.sort();
    assert_eq!(outcomes, ["INVALID_CREDENTIALS", "ok"], "{a} {b}");
}

#[tokio::test]
async fn regenerating_replaces_every_recovery_code() {
    let app = spawn_app().await;
    let (token, auth, old) = enrolled(&app, &email()).await;
    app.clock.advance(Duration::from_secs(30));
    let body = regenerate(&app, &token, &auth.code_at(unix(&app))).await;
    let new: Vec<String> = body["data"]["regenerateRecoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    assert_eq!(factor_state(&app, &token).await, (true, 10));
    let id = user_id(&app, &token).await;
    let rows = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(id))
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(rows.len(), 10, "the old codes are gone");
}

#[tokio::test]
async fn disabling_needs_a_code_or_the_password_and_removes_everything() {
    let app = spawn_app().await;
    let (token, auth, _) = enrolled(&app, &email()).await;
    let disable = |code: Option<String>, password: Option<&str>| {
        app.gql(
            Some(&token),
            "mutation($c: String, $p: String) { disableTotp(code: $c, password: $p) }",
            json!({ "c": code, "p": password }),
        )
    };
    let neither = disable(None, None).await;
    assert_eq!(outcome(&neither), "BAD_USER_INPUT", "{neither}");
    let wrong = disable(None, Some("not the password")).await;
    assert_eq!(outcome(&wrong), "INVALID_CREDENTIALS", "{wrong}");
    let wrong_code = disable(Some(auth.code_at(unix(&app) + 900)), None).await;
    assert_eq!(outcome(&wrong_code), "INVALID_CREDENTIALS", "{wrong_code}");
    assert_eq!(factor_state(&app, &token).await, (true, 10));

    let done = disable(None, Some(PASSWORD)).await;
    assert_eq!(done["data"]["disableTotp"], true, "{done}");
    assert_eq!(factor_state(&app, &token).await, (false, 0));
    let id = user_id(&app, &token).await;
    assert!(totp_factor::Entity::find_by_id(id)
        .one(app.state.db.read())
        .await
        .unwrap()
        .is_none());
    assert!(audit_kinds(&app, id)
        .await
        .contains(&"MFA_DISABLED".to_owned()));
    let again = disable(None, Some(PASSWORD)).await;
    assert_eq!(again["data"]["disableTotp"], false, "{again}");

    // And it can be enrolled again, by code this time off again.
    let auth = Authenticator::from_base32(s(&start(&app, &token).await, "secret"));
    align_to_step(&app);
    assert!(confirm(&app, &token, &auth.code_at(unix(&app))).await["errors"].is_null());
    app.clock.advance(Duration::from_secs(30));
    let by_code = disable(Some(auth.code_at(unix(&app))), None).await;
    assert_eq!(by_code["data"]["disableTotp"], true, "{by_code}");
}

#[tokio::test]
async fn no_secret_or_code_is_stored_in_clear_logged_or_audited() {
    let app = spawn_app().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let enrollment = start(&app, &token).await;
    let secret = s(&enrollment, "secret").to_owned();
    let auth = Authenticator::from_base32(&secret);
    align_to_step(&app);
    let totp = auth.code_at(unix(&app));
    let body = confirm(&app, &token, &totp).await;
    let codes: Vec<String> = body["data"]["confirmTotpEnrollment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();

    let id = user_id(&app, &token).await;
    let factor = totp_factor::Entity::find_by_id(id)
        .one(app.state.db.read())
        .await
        .unwrap()
        .unwrap();
    let sealed = &factor.secret_sealed;
    assert!(!sealed
        .windows(auth.bytes().len())
        .any(|w| w == auth.bytes()));
    assert!(!String::from_utf8_lossy(sealed).contains(&secret));
    let rows = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(id))
        .all(app.state.db.read())
        .await
        .unwrap();
    for row in &rows {
        for c in &codes {
            assert!(!row.code_hash.contains(&c.replace('-', "")));
        }
    }
    let audit = format!(
        "{:?}",
        audit_event::Entity::find()
            .filter(audit_event::Column::UserId.eq(id))
            .all(app.state.db.read())
            .await
            .unwrap()
    );
    let logs = captured_logs();
    for (place, text) in [("audit", &audit), ("logs", &logs)] {
        assert!(!text.contains(&secret), "the secret in {place}");
        for c in &codes {
            assert!(!text.contains(c.as_str()), "a recovery code in {place}");
        }
    }
    assert!(!audit.contains(&totp), "the code in the audit rows");
}
