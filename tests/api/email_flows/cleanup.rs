//! Cleanup of email tokens: used, superseded and expired ones go, live
//! ones stay and still work.

use std::time::Duration;

use chrono::TimeDelta;
use uuid::Uuid;

use super::support::{by_token, mail_app_with};
use crate::helpers::{email, s};

#[tokio::test]
async fn cleanup_purges_used_superseded_and_expired_email_tokens_and_keeps_live_ones() {
    let app = mail_app_with(|c| c.revoked_retention = Duration::from_secs(60)).await;
    let t0 = app.clock.now();

    // Used: a verified address.
    let used = email();
    let used_id = s(&app.register(&used).await["user"], "id").to_owned();
    let used_mail = app.nth_mail(&used, 1).await;
    let body = app.verify(by_token(&used_mail.token())).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");

    // Superseded, then the newer one expires: a reset asked twice.
    let reset = email();
    let reset_id = s(&app.register(&reset).await["user"], "id").to_owned();
    app.request_reset(&reset).await;
    app.nth_mail(&reset, 2).await;
    app.request_reset(&reset).await;
    app.nth_mail(&reset, 3).await;

    // Live: a verification not yet used (24 h).
    let live = email();
    let live_id = s(&app.register(&live).await["user"], "id").to_owned();
    let live_mail = app.nth_mail(&live, 1).await;

    let of = |id: &str| id.parse::<Uuid>().unwrap();
    let tokens = app.email_tokens().await;
    let count = |user: &str| tokens.iter().filter(|t| t.user_id == of(user)).count();
    assert_eq!(count(&used_id), 1);
    assert_eq!(count(&reset_id), 3, "its verification and two resets");
    assert_eq!(count(&live_id), 1);

    // An hour on, past the reset TTL and the retention.
    let when = t0 + TimeDelta::hours(1);
    app.clock.advance(Duration::from_secs(3600));
    warden::cleanup::run_once(&app.state.db, &app.config, when)
        .await
        .unwrap();
    let left: Vec<(Uuid, String)> = app
        .email_tokens()
        .await
        .into_iter()
        .map(|t| (t.user_id, t.purpose))
        .collect();
    let mut expected = vec![
        (of(&reset_id), "verify".to_owned()),
        (of(&live_id), "verify".to_owned()),
    ];
    expected.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, expected, "only the live verifications stay");

    let body = app.verify(by_token(&live_mail.token())).await;
    assert_eq!(
        body["data"]["verifyEmail"], true,
        "the live one still works: {body}"
    );
}
