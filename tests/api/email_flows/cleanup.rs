//! Cleanup of email tokens: used, superseded and expired ones are kept
//! (hashes only) for the retention, then go; unused live ones stay and work.

use std::time::Duration;

use chrono::TimeDelta;
use uuid::Uuid;

use super::support::{by_token, mail_app};
use crate::helpers::{email, s};

#[tokio::test]
async fn cleanup_purges_used_superseded_and_expired_email_tokens_and_keeps_live_ones() {
    let app = mail_app().await;
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

    // An hour on, the resets are dead, but dead tokens are kept (hashes
    // only) for the retention: nothing goes yet.
    app.clock.advance(Duration::from_secs(3600));
    let early = warden::cleanup::run_once(&app.state.db, &app.config, t0 + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(early.email_tokens, 0, "{early:?}");
    assert_eq!(app.email_tokens().await.len(), 5);

    // Past the retention: used, superseded and expired ones go.
    let when = t0 + warden::cleanup::EMAIL_TOKEN_RETENTION + TimeDelta::hours(1);
    let later = warden::cleanup::run_once(&app.state.db, &app.config, when)
        .await
        .unwrap();
    assert_eq!(later.email_tokens, 3, "{later:?}");
    let mut left: Vec<(Uuid, String)> = app
        .email_tokens()
        .await
        .into_iter()
        .map(|t| (t.user_id, t.purpose))
        .collect();
    left.sort();
    let mut expected = vec![
        (of(&reset_id), "verify".to_owned()),
        (of(&live_id), "verify".to_owned()),
    ];
    expected.sort();
    assert_eq!(left, expected, "only the unused verifications stay");

    let body = app.verify(by_token(&live_mail.token())).await;
    assert_eq!(
        body["data"]["verifyEmail"], true,
        "the live one still works: {body}"
    );
}
