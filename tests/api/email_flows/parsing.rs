//! The harness itself: a composed link mail crosses real SMTP and MIME
//! encoding, and the parser gives back exactly the token and code put in.

use warden::services::mail::{compose, enqueue_now, MailKind, MailValues};

use super::support::{mail_app_with, Received};
use crate::helpers::email;

#[tokio::test]
async fn a_composed_link_mail_gives_back_its_token_and_code_after_smtp() {
    let app = mail_app_with(|c| c.app_url = Some("https://app.example.com".to_owned())).await;
    // Long enough that quoted-printable must wrap the link's line.
    let token = format!("{}_-{}", "Ab9".repeat(30), uuid::Uuid::new_v4().simple());
    let to = email();
    for kind in [
        MailKind::VerifyEmail,
        MailKind::PasswordReset,
        MailKind::EmailChange,
    ] {
        let values = MailValues {
            token: Some(token.clone()),
            code: Some("042917".to_owned()),
            valid_for: Some("30 minutes".to_owned()),
            ..MailValues::default()
        };
        let mail = compose(&app.state, kind, &to, &values).unwrap();
        enqueue_now(&app.state, mail).await.unwrap();
    }
    let got = app.wait_mails(&to, 3).await;
    let paths: Vec<Option<String>> = got.iter().map(Received::link_path).collect();
    assert_eq!(
        paths,
        [
            Some("verify-email".to_owned()),
            Some("reset-password".to_owned()),
            Some("confirm-email".to_owned())
        ]
    );
    for mail in &got {
        assert_eq!(mail.token(), token, "{}", mail.raw);
        assert_eq!(mail.code(), "042917");
        assert!(
            mail.link().starts_with("https://app.example.com/"),
            "{}",
            mail.link()
        );
        assert!(!mail.html.is_empty(), "an HTML part too");
    }
}
