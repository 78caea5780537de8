//! Odd input to the token operations: typed errors only (never INTERNAL),
//! and answers that do not tell which addresses have accounts.

use serde_json::{json, Value};

use super::support::{
    by_code, by_token, codes, mail_app, new_password, CONFIRM_CHANGE, RESET, VERIFY,
};
use crate::helpers::{email, s};

#[tokio::test]
async fn garbage_tokens_and_codes_get_typed_errors() {
    let app = mail_app().await;
    let who = email();
    app.register(&who).await;
    let inputs: Vec<Value> = vec![
        by_token(&"A".repeat(20_000)),
        by_token("' OR 1=1 --"),
        by_token("\u{0}\u{1}"),
        by_token("%00%2e%2e"),
        by_token("ünïcödé-tökén"),
        by_code(&who, "١٢٣٤٥٦"),
        by_code(&who, "12345"),
        by_code(&who, "1234567"),
        by_code(&who, "12 345"),
        by_code(&who, "-12345"),
        by_code("not an email", "123456"),
        by_code(&"x".repeat(400), "123456"),
        json!({ "token": null, "email": null, "code": null }),
    ];
    for op in [VERIFY, RESET, CONFIRM_CHANGE] {
        for input in &inputs {
            let body = app
                .gql(None, op, json!({ "i": input, "p": new_password() }))
                .await;
            let got = codes(&body);
            assert!(
                got == ["BAD_USER_INPUT"] || got == ["INVALID_TOKEN"],
                "{op} {input}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_code_for_an_unknown_address_answers_like_a_wrong_code() {
    let app = mail_app().await;
    let known = email();
    let payload = app.register(&known).await;
    let right = app.nth_mail(&known, 1).await.code();
    let wrong = super::support::wrong_code(&right);
    for op in [VERIFY, RESET, CONFIRM_CHANGE] {
        let vars = |who: &str| json!({ "i": by_code(who, &wrong), "p": new_password() });
        let a = app
            .post(None, op, vars(&known))
            .await
            .bytes()
            .await
            .unwrap();
        let b = app
            .post(None, op, vars(&email()))
            .await
            .bytes()
            .await
            .unwrap();
        assert_eq!(a, b, "{op}");
    }
    // One of the code's five tries went on the wrong guess; it still works.
    let body = app.verify(by_code(&known, &right)).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    assert_eq!(
        app.email_verified(s(&payload, "accessToken")).await,
        json!(true)
    );
}
