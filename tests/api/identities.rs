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

/// Rewrites the stored email of `payload`'s account to `old`, as an older
/// Warden would have stored it.
async fn store_old_spelling(app: &TestApp, payload: &Value, old: &str) {
    user::Entity::update_many()
        .col_expr(user::Column::Email, Expr::value(old))
        .filter(user::Column::Email.eq(payload["user"]["email"].as_str().unwrap_or_default()))
        .exec(app.state.db.write())
        .await
        .expect("row rewritten");
}

/// An old row `ada@bücher.example`: registering the ASCII spelling used to
/// create a second account that then shadowed the owner's at login.
#[tokio::test]
async fn the_ascii_spelling_of_an_old_unicode_account_cannot_be_registered_again() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    store_old_spelling(&app, &payload, "ada@bücher.example").await;
    let taken = register_with(&app, "ada@xn--bcher-kva.example", PASSWORD, None).await;
    assert_eq!(code(&taken), Some("EMAIL_TAKEN"), "{taken}");
    let login = app.login("ada@xn--bcher-kva.example", PASSWORD).await;
    assert_eq!(
        login["data"]["login"]["user"]["id"], payload["user"]["id"],
        "{login}"
    );
}

/// An address the older, looser rules accepted (an underscore in the
/// domain) still logs in and changes its password; it cannot be registered
/// anew.
#[tokio::test]
async fn an_account_whose_address_predates_the_stricter_rules_still_logs_in() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    store_old_spelling(&app, &payload, "bob@my_host.example.com").await;
    let login = app.login("Bob@My_Host.example.com", PASSWORD).await;
    assert_eq!(
        login["data"]["login"]["user"]["id"], payload["user"]["id"],
        "{login}"
    );
    let token = s(&login["data"]["login"], "accessToken").to_owned();
    let changed = app
        .gql(
            Some(&token),
            CHANGE,
            json!({ "c": PASSWORD, "n": "a wholly new passphrase 31" }),
        )
        .await;
    assert!(changed["errors"].is_null(), "{changed}");
    let again = register_with(&app, "bob@my_host.example.com", PASSWORD, None).await;
    assert_eq!(code(&again), Some("BAD_USER_INPUT"), "{again}");
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

/// A stand-in for the Pwned Passwords range API on `127.0.0.1:0`: it
/// records every request it receives and answers each, after `delay`, with
/// `body`.
struct RangeFixture {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn range_fixture(body: String, delay: std::time::Duration) -> RangeFixture {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (seen, body) = (seen.clone(), body.clone());
            tokio::spawn(async move {
                let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).into_owned());
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    RangeFixture { url, requests }
}

fn sha1_hex(password: &str) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

async fn breach_checks(app: &TestApp, outcome: &str) -> u64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = format!("warden_password_breach_checks_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn unavailable_rows(app: &TestApp) -> Vec<entity::audit_event::Model> {
    entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("PASSWORD_CHECK_UNAVAILABLE"))
        .all(app.state.db.read())
        .await
        .expect("audit read")
}

const BREACHED: &str = "ocean lantern quietly 1987";
const PADDED_ONLY: &str = "harbour violin sideways 2041";

#[tokio::test]
async fn a_breached_password_is_refused_and_only_five_hash_digits_leave_the_server() {
    // A padded range answer: the breached password's suffix with a count,
    // another password's suffix only as padding (count 0), and filler.
    let mut body = String::new();
    for i in 0..800 {
        body.push_str(&format!("{:035X}:0\r\n", i * 7919));
    }
    body.push_str(&format!("{}:42\r\n", &sha1_hex(BREACHED)[5..]));
    body.push_str(&format!("{}:0\r\n", &sha1_hex(PADDED_ONLY)[5..]));
    let fixture = range_fixture(body, std::time::Duration::ZERO).await;
    let url = fixture.url.clone();
    let app = crate::helpers::spawn_app_with(move |c| {
        c.pwned_passwords = true;
        c.pwned_passwords_url = url;
    })
    .await;

    let refused = register_with(&app, &email(), BREACHED, None).await;
    assert_eq!(code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    assert_eq!(field(&refused), Some("password"));
    let padded = register_with(&app, &email(), PADDED_ONLY, None).await;
    assert!(
        padded["errors"].is_null(),
        "a count-0 padding line matched: {padded}"
    );
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let change = app
        .gql(
            Some(&token),
            CHANGE,
            json!({ "c": PASSWORD, "n": BREACHED }),
        )
        .await;
    assert_eq!(field(&change), Some("newPassword"), "{change}");

    let requests = fixture.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4, "{requests:?}");
    for (request, password) in requests
        .iter()
        .zip([BREACHED, PADDED_ONLY, PASSWORD, BREACHED])
    {
        let hash = sha1_hex(password);
        let first = request.lines().next().unwrap_or_default();
        assert_eq!(first, format!("GET /range/{} HTTP/1.1", &hash[..5]));
        assert!(
            request
                .to_ascii_lowercase()
                .contains("\r\nadd-padding: true\r\n"),
            "{request}"
        );
        for secret in [password, hash.as_str(), &hash[5..], &hash[4..]] {
            assert!(!request.contains(secret), "{secret} left the server");
            assert!(!request
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()));
        }
    }
    assert_eq!(breach_checks(&app, "breached").await, 2);
    assert_eq!(breach_checks(&app, "clean").await, 2);
    assert!(unavailable_rows(&app).await.is_empty());
}

#[tokio::test]
async fn the_breach_check_fails_open_with_an_audit_row_and_a_metric_when_the_service_is_down() {
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let app = crate::helpers::spawn_app_with(move |c| {
        c.pwned_passwords = true;
        c.pwned_passwords_url = closed;
    })
    .await;
    let body = register_with(&app, &email(), BREACHED, None).await;
    assert!(body["errors"].is_null(), "the check must fail open: {body}");
    let rows = unavailable_rows(&app).await;
    assert_eq!(rows.len(), 1);
    let detail = rows[0].detail.clone().unwrap_or_default().to_string();
    assert!(detail.contains("unreachable"), "{detail}");
    assert!(!detail.contains(BREACHED) && !detail.contains(&sha1_hex(BREACHED)[5..]));
    assert_eq!(breach_checks(&app, "unavailable").await, 1);
}

#[tokio::test]
async fn a_slow_breach_service_delays_register_by_at_most_its_timeout() {
    let fixture = range_fixture(String::new(), std::time::Duration::from_secs(60)).await;
    let url = fixture.url.clone();
    let app = crate::helpers::spawn_app_with(move |c| {
        c.pwned_passwords = true;
        c.pwned_passwords_url = url;
    })
    .await;
    let started = std::time::Instant::now();
    let body = register_with(&app, &email(), BREACHED, None).await;
    let took = started.elapsed();
    assert!(body["errors"].is_null(), "{body}");
    // The timeout is 2 s; the bound leaves room for a busy machine.
    assert!(
        took < std::time::Duration::from_secs(10),
        "register took {took:?}"
    );
    assert_eq!(fixture.requests.lock().unwrap().len(), 1);
    let rows = unavailable_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0]
        .detail
        .clone()
        .unwrap_or_default()
        .to_string()
        .contains("timeout"));
}

#[tokio::test]
async fn the_breach_check_is_off_by_default_and_sends_nothing() {
    let fixture = range_fixture(String::new(), std::time::Duration::ZERO).await;
    let url = fixture.url.clone();
    let app = crate::helpers::spawn_app_with(move |c| c.pwned_passwords_url = url).await;
    assert!(!app.config.pwned_passwords);
    let body = register_with(&app, &email(), BREACHED, None).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(fixture.requests.lock().unwrap().is_empty());
}
