//! Emails and usernames that cannot impersonate, and passwords that are hard to guess.

use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::{code, email, s, spawn_app, TestApp, PASSWORD};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id email username } } }";

async fn register_with(
    app: &TestApp,
    email: &str,
    password: &str,
    username: Option<&str>,
) -> Value {
    app.gql(
        None,
        REGISTER,
        json!({ "i": { "email": email, "password": password, "username": username } }),
    )
    .await
}

fn field(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["field"].as_str()
}

async fn user_count(app: &TestApp) -> usize {
    user::Entity::find()
        .all(app.state.db.read())
        .await
        .expect("users read")
        .len()
}

#[tokio::test]
async fn an_invisible_or_bidi_twin_of_an_email_cannot_be_registered() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let twins = [
        "ada\u{200B}@example.com",         // zero-width space
        "ad\u{200D}a@example.com",         // zero-width joiner
        "ada@exam\u{AD}ple.com",           // soft hyphen (IDNA would drop it silently)
        "\u{FEFF}ada@example.com",         // BOM
        "ada\u{2060}@example.com",         // word joiner
        "\u{202E}moc.elpmaxe@ada",         // right-to-left override
        "ada\u{2066}\u{2069}@example.com", // LRI PDI
        "ada\u{FE0F}@example.com",         // variation selector
        "ada\u{E0061}@example.com",        // tag character
        "ada\u{E000}@example.com",         // private use
    ];
    for twin in twins {
        let body = register_with(&app, twin, PASSWORD, None).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{twin:?}: {body}");
        assert_eq!(field(&body), Some("email"), "{twin:?}");
        let login = app.login(twin, PASSWORD).await;
        assert!(login["data"].is_null(), "{twin:?} logged in: {login}");
    }
    assert_eq!(user_count(&app).await, 1, "no twin account was created");
}

#[tokio::test]
async fn usernames_with_invisible_bidi_or_odd_spaces_are_refused() {
    let app = spawn_app().await;
    for name in [
        "ad\u{202E}nimda",
        "admin\u{200B}",
        "Ada\u{A0}Lovelace",
        "Ada\u{2028}Lovelace",
        "admin\u{FE0F}",
        "\u{3164}",
    ] {
        let body = register_with(&app, &email(), PASSWORD, Some(name)).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{name:?}: {body}");
        assert_eq!(field(&body), Some("username"), "{name:?}");
    }
    let body = register_with(
        &app,
        &email(),
        PASSWORD,
        Some(" Jose\u{301} Lovelace 山田 "),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["register"]["user"]["username"],
        "José Lovelace 山田"
    );
}

#[tokio::test]
async fn a_unicode_domain_is_stored_in_ascii_and_its_spellings_are_one_account() {
    let app = spawn_app().await;
    let first = register_with(&app, "Ada@BÜCHER.example", PASSWORD, None).await;
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(
        first["data"]["register"]["user"]["email"],
        "ada@xn--bcher-kva.example"
    );
    for twin in [
        "ada@xn--bcher-kva.example",
        "ada@bücher.example",
        "ADA@XN--BCHER-KVA.EXAMPLE",
    ] {
        let body = register_with(&app, twin, PASSWORD, None).await;
        assert_eq!(code(&body), Some("EMAIL_TAKEN"), "{twin}: {body}");
        let login = app.login(twin, PASSWORD).await;
        assert_eq!(
            login["data"]["login"]["user"]["id"], first["data"]["register"]["user"]["id"],
            "{twin}: {login}"
        );
    }
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn a_domain_that_is_not_a_host_name_is_refused_as_bad_input() {
    let app = spawn_app().await;
    for bad in [
        "ada@exa_mple.com",
        "ada@-example.com",
        "ada@example.com.",
        "ada@xn--zz.example",
        "ada@ex..com",
        &format!("ada@{}.com", "b".repeat(64)),
    ] {
        let body = register_with(&app, bad, PASSWORD, None).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{bad}: {body}");
        assert_eq!(field(&body), Some("email"), "{bad}");
    }
}

#[tokio::test]
async fn a_local_part_mixing_lookalike_scripts_is_refused_and_a_single_script_one_is_kept() {
    let app = spawn_app().await;
    app.register("paypal@example.com").await;
    // "pаypal" with a Cyrillic а (U+0430): the spoof.
    let spoof = register_with(&app, "p\u{430}ypal@example.com", PASSWORD, None).await;
    assert_eq!(code(&spoof), Some("BAD_USER_INPUT"), "{spoof}");
    assert_eq!(field(&spoof), Some("email"));
    // A real Cyrillic mailbox, and a decomposed é stored composed (NFC).
    let cyrillic = register_with(&app, "мария@example.com", PASSWORD, None).await;
    assert_eq!(
        cyrillic["data"]["register"]["user"]["email"], "мария@example.com",
        "{cyrillic}"
    );
    let nfd = register_with(&app, "Jose\u{301}@example.com", PASSWORD, None).await;
    assert_eq!(
        nfd["data"]["register"]["user"]["email"], "josé@example.com",
        "{nfd}"
    );
    let nfc = register_with(&app, "jos\u{e9}@example.com", PASSWORD, None).await;
    assert_eq!(code(&nfc), Some("EMAIL_TAKEN"), "{nfc}");
    assert_eq!(user_count(&app).await, 3);
}

#[tokio::test]
async fn an_account_stored_with_a_unicode_domain_before_the_change_still_logs_in() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    // What an older Warden stored for "Ada@BÜCHER.example": lowercase only.
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value("ada@bücher.example"))
        .filter(user::Column::Email.eq(payload["user"]["email"].as_str().unwrap_or_default()))
        .exec(app.state.db.write())
        .await
        .expect("row rewritten");
    for spelling in ["Ada@BÜCHER.example", "ada@bücher.example"] {
        let login = app.login(spelling, PASSWORD).await;
        assert_eq!(
            login["data"]["login"]["user"]["id"], payload["user"]["id"],
            "{spelling}: {login}"
        );
    }
    let taken = register_with(&app, "ada@bücher.example", PASSWORD, None).await;
    assert_eq!(code(&taken), Some("EMAIL_TAKEN"), "{taken}");
    let _ = s(&payload, "accessToken");
}

const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

#[tokio::test]
async fn passwords_an_estimator_guesses_in_under_a_million_tries_are_refused_with_advice() {
    let app = spawn_app().await;
    for weak in [
        "aaaaaaaa",
        "abcdefgh",
        "Passw0rd!",
        "mnbvcxzlkjhg",
        "p4$$w0rd!p4$$w0rd!p4$$w0rd!p4$$w0rd!",
    ] {
        let body = register_with(&app, &email(), weak, None).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{weak}: {body}");
        assert_eq!(field(&body), Some("password"), "{weak}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("too easy to guess"), "{message}");
        assert!(
            !message.contains(weak),
            "the password was echoed: {message}"
        );
    }
    // The account's own words are guessable: its email, local part, username.
    let personal = register_with(
        &app,
        "grace.hopper@navy.example",
        "grace.hopper",
        Some("amazing grace"),
    )
    .await;
    assert_eq!(field(&personal), Some("password"), "{personal}");
    let username = register_with(&app, &email(), "cobolqueen1906", Some("cobolqueen1906")).await;
    assert_eq!(field(&username), Some("password"), "{username}");
    assert_eq!(user_count(&app).await, 0);
    for strong in [
        PASSWORD,
        "a brand new passphrase",
        "bench tide pool lantern 42",
    ] {
        let body = register_with(&app, &email(), strong, None).await;
        assert!(body["errors"].is_null(), "{strong}: {body}");
    }
}

#[tokio::test]
async fn change_password_refuses_a_guessable_new_password_naming_the_field() {
    let app = spawn_app().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let local = who.split('@').next().unwrap_or_default().to_owned();
    for weak in ["abcdefgh", "Passw0rd!", local.as_str()] {
        let body = app
            .gql(Some(&token), CHANGE, json!({ "c": PASSWORD, "n": weak }))
            .await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{weak}: {body}");
        assert_eq!(field(&body), Some("newPassword"), "{weak}");
    }
    let ok = app
        .gql(
            Some(&token),
            CHANGE,
            json!({ "c": PASSWORD, "n": "a brand new passphrase" }),
        )
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
}

#[tokio::test]
async fn a_72_byte_password_of_l33t_symbols_costs_the_estimator_little() {
    let app = spawn_app().await;
    // Every symbol zxcvbn reads as a letter: unbounded, its l33t pass tries
    // hundreds of substitution sets over every substring (0.4-0.8 s of CPU
    // in a release build, ~10 s in this debug one).
    let worst = "4@8({[<369!1|70$5+%2".repeat(4)[..72].to_owned();
    let started = std::time::Instant::now();
    let body = register_with(&app, &email(), &worst, None).await;
    let took = started.elapsed();
    assert!(body["errors"].is_null(), "{body}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "register took {took:?}"
    );
}
