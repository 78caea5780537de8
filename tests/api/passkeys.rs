//! Passkeys over HTTP, with a software authenticator ([`authenticator`]):
//! registration, passwordless sign-in, a passkey as the second step, the
//! refusals (replayed ceremony, counter gone backwards, wrong origin or RP
//! ID, no user verification), managing them, and what tokens and sessions
//! say about how the user signed in.

pub mod authenticator;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use entity::passkey;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::helpers::{code, email, s, spawn_app, TestApp, PASSWORD};
use crate::mfa::{enrolled, outcome, unix};
use authenticator::{handle_bytes, Soft, ORIGIN};

/// The payload claims of an access token.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn start_registration(app: &TestApp, token: &str) -> Value {
    start_registration_with(app, token, None).await
}

/// `startPasskeyRegistration`, with the authenticator-app `code` when one is on.
async fn start_registration_with(app: &TestApp, token: &str, code: Option<&str>) -> Value {
    let body = app
        .gql(
            Some(token),
            "mutation($c: String) { startPasskeyRegistration(code: $c) }",
            json!({ "c": code }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["startPasskeyRegistration"].clone()
}

async fn finish_registration(app: &TestApp, token: &str, response: Value, name: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($r: JSON!, $n: String) { finishPasskeyRegistration(response: $r, name: $n) { id name createdAt lastUsedAt synced } }",
        json!({ "r": response, "n": name }),
    )
    .await
}

/// Registers a passkey on `soft` for the account of `token`: the new `Passkey`.
pub async fn add_passkey(app: &TestApp, token: &str, soft: &mut Soft, name: &str) -> Value {
    add_passkey_with(app, token, soft, name, None).await
}

/// [`add_passkey`] for an account with the authenticator app on: `code` from it.
pub async fn add_passkey_with(
    app: &TestApp,
    token: &str,
    soft: &mut Soft,
    name: &str,
    code: Option<&str>,
) -> Value {
    let options = start_registration_with(app, token, code).await;
    let response = soft.create(ORIGIN, &options);
    let body = finish_registration(app, token, response, name).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["finishPasskeyRegistration"].clone()
}

/// `startPasskeyLogin`: the challenge id and the options.
pub async fn start_login(app: &TestApp) -> (String, Value) {
    let body = app
        .gql(
            None,
            "mutation { startPasskeyLogin { challengeId options } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let started = &body["data"]["startPasskeyLogin"];
    (
        s(started, "challengeId").to_owned(),
        started["options"].clone(),
    )
}

pub async fn finish_login(app: &TestApp, challenge_id: &str, response: &Value) -> Value {
    app.gql(
        None,
        "mutation($c: ID!, $r: JSON!) { finishPasskeyLogin(challengeId: $c, response: $r) { accessToken refreshToken user { email } } }",
        json!({ "c": challenge_id, "r": response }),
    )
    .await
}

/// A whole passwordless sign-in with `soft` at `origin`: the body.
async fn sign_in(app: &TestApp, soft: &mut Soft, origin: &str) -> Value {
    let (id, options) = start_login(app).await;
    let assertion = soft.get(origin, &options);
    finish_login(app, &id, &assertion).await
}

async fn sessions(app: &TestApp, token: &str) -> Value {
    let body = app
        .gql(
            Some(token),
            "{ sessions { method amr current } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["sessions"].clone()
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    use entity::audit_event;
    audit_event::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_passkey_registers_and_signs_in_without_a_password() {
    let app = spawn_app().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    let options = start_registration(&app, &token).await;
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["userVerification"], "required", "{options}");
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    // The user handle is 16 random bytes: not the email (which does not
    // fit in 16 bytes), nor the account's id.
    let handle = options["publicKey"]["user"]["id"].as_str().unwrap();
    let bytes = handle_bytes(handle);
    assert_eq!(bytes.len(), 16);
    assert!(!handle.contains(&who));
    let me = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    let account_id = uuid::Uuid::parse_str(me["data"]["me"]["id"].as_str().unwrap()).unwrap();
    assert_ne!(
        bytes,
        account_id.as_bytes().to_vec(),
        "the handle is not the account id"
    );

    let response = soft.create(ORIGIN, &options);
    let body = finish_registration(&app, &token, response, "  Work laptop ").await;
    assert!(body["errors"].is_null(), "{body}");
    let added = &body["data"]["finishPasskeyRegistration"];
    assert_eq!(added["name"], "Work laptop");
    assert!(added["lastUsedAt"].is_null());
    let listed = app
        .gql(Some(&token), "{ passkeys { id name } }", json!({}))
        .await;
    assert_eq!(
        listed["data"]["passkeys"],
        json!([{ "id": added["id"], "name": "Work laptop" }])
    );
    assert!(audit_kinds(&app)
        .await
        .contains(&"PASSKEY_ADDED".to_owned()));

    let body = sign_in(&app, &mut soft, ORIGIN).await;
    assert!(body["errors"].is_null(), "{body}");
    let payload = &body["data"]["finishPasskeyLogin"];
    assert_eq!(payload["user"]["email"], who.as_str());
    let access = s(payload, "accessToken");
    assert_eq!(
        app.me(Some(access)).await["data"]["me"]["email"],
        who.as_str()
    );
    let amr = claims(access)["amr"].clone();
    assert_eq!(amr, json!(["hwk", "user", "mfa"]), "a device-bound key");
    let current: Vec<Value> = sessions(&app, access)
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .cloned()
        .collect();
    assert_eq!(current[0]["method"], "PASSKEY");
    assert_eq!(current[0]["amr"], amr);
    // A refreshed token says the same.
    let refreshed = app.refresh(s(payload, "refreshToken")).await;
    let again = s(&refreshed["data"]["refresh"], "accessToken");
    assert_eq!(claims(again)["amr"], amr);
    // The passkey's use is recorded.
    let listed = app
        .gql(Some(&token), "{ passkeys { lastUsedAt } }", json!({}))
        .await;
    assert!(
        !listed["data"]["passkeys"][0]["lastUsedAt"].is_null(),
        "{listed}"
    );
}

#[tokio::test]
async fn a_ceremony_works_once() {
    let app = spawn_app().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    let options = start_registration(&app, &token).await;
    let response = soft.create(ORIGIN, &options);
    let first = finish_registration(&app, &token, response.clone(), "A").await;
    assert!(first["errors"].is_null(), "{first}");
    let again = finish_registration(&app, &token, response, "A").await;
    assert_eq!(outcome(&again), "INVALID_TOKEN", "{again}");

    let (id, options) = start_login(&app).await;
    let assertion = soft.get(ORIGIN, &options);
    let (a, b) = tokio::join!(
        finish_login(&app, &id, &assertion),
        finish_login(&app, &id, &assertion)
    );
    let mut outcomes = [outcome(&a).to_owned(), outcome(&b).to_owned()];
    outcomes.sort();
    assert_eq!(outcomes, ["INVALID_TOKEN", "ok"], "{a} {b}");
    let replay = finish_login(&app, &id, &assertion).await;
    assert_eq!(outcome(&replay), "INVALID_TOKEN", "{replay}");
    // Another ceremony's id with this assertion: refused too.
    let (other, _) = start_login(&app).await;
    let crossed = finish_login(&app, &other, &assertion).await;
    assert_eq!(outcome(&crossed), "INVALID_TOKEN", "{crossed}");
}

#[tokio::test]
async fn another_accounts_ceremony_cannot_finish_a_registration() {
    let app = spawn_app().await;
    let alice = s(&app.register(&email()).await, "accessToken").to_owned();
    let bob = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    let options = start_registration(&app, &alice).await;
    let response = soft.create(ORIGIN, &options);
    let body = finish_registration(&app, &bob, response, "stolen").await;
    assert_eq!(outcome(&body), "INVALID_TOKEN", "{body}");
    let listed = app.gql(Some(&bob), "{ passkeys { id } }", json!({})).await;
    assert_eq!(listed["data"]["passkeys"], json!([]));
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused() {
    let app = spawn_app().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    add_passkey(&app, &token, &mut soft, "key").await;
    let first = sign_in(&app, &mut soft, ORIGIN).await;
    assert!(first["errors"].is_null(), "{first}");
    // The genuine authenticator has since counted to 50: this one, at 2,
    // is a clone.
    let row = passkey::Entity::find()
        .one(app.state.db.read())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.sign_count, 1);
    let mut credential: Value = serde_json::from_str(&row.credential).unwrap();
    credential["cred"]["counter"] = json!(50);
    passkey::Entity::update_many()
        .col_expr(
            passkey::Column::Credential,
            sea_orm::sea_query::Expr::value(credential.to_string()),
        )
        .col_expr(
            passkey::Column::SignCount,
            sea_orm::sea_query::Expr::value(50),
        )
        .filter(passkey::Column::Id.eq(row.id))
        .exec(app.state.db.write())
        .await
        .unwrap();
    let cloned = sign_in(&app, &mut soft, ORIGIN).await;
    assert_eq!(outcome(&cloned), "INVALID_CREDENTIALS", "{cloned}");
    let failed = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::Kind.eq("LOGIN_FAILED"))
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].detail.as_ref().unwrap()["reason"],
        "counter regressed"
    );
    assert_eq!(failed[0].user_id, Some(row.user_id));
}

#[tokio::test]
async fn another_origin_or_rp_id_is_refused() {
    let app = spawn_app().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    // Registration from a page that is not one of Warden's origins (a
    // sibling subdomain the browser would let use the RP ID).
    let mut phished = Soft::new();
    let options = start_registration(&app, &token).await;
    let response = phished.create("https://evil.localhost", &options);
    let body = finish_registration(&app, &token, response, "x").await;
    assert_eq!(outcome(&body), "BAD_USER_INPUT", "{body}");

    let mut soft = Soft::new();
    add_passkey(&app, &token, &mut soft, "key").await;
    // An assertion made on another origin under the RP ID (a page on a
    // compromised subdomain relaying the options).
    let body = sign_in(&app, &mut soft, "https://login.localhost").await;
    assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    // An assertion for another RP ID (the authenticator signs its hash).
    let (id, mut options) = start_login(&app).await;
    options["publicKey"]["rpId"] = json!("evil.test");
    let assertion = soft.get("https://evil.test", &options);
    let body = finish_login(&app, &id, &assertion).await;
    assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    // The passkey still works where it belongs.
    let body = sign_in(&app, &mut soft, ORIGIN).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn user_verification_is_required() {
    let app = spawn_app().await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut presence_only = Soft::with_uv(false);
    let options = start_registration(&app, &token).await;
    let response = presence_only.create(ORIGIN, &options);
    let body = finish_registration(&app, &token, response, "x").await;
    assert_eq!(outcome(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_passkey_completes_a_password_login_for_its_own_account_only() {
    let app = spawn_app().await;
    let who = email();
    let (token, auth, _) = enrolled(&app, &who).await;
    let mut soft = Soft::new();
    // With the app on, adding a passkey (a way in that skips it) takes a code.
    let without = app
        .gql(
            Some(&token),
            "mutation { startPasskeyRegistration }",
            json!({}),
        )
        .await;
    assert_eq!(outcome(&without), "BAD_USER_INPUT", "{without}");
    assert_eq!(without["errors"][0]["extensions"]["field"], "code");
    app.clock.advance(std::time::Duration::from_secs(30));
    let totp = auth.code_at(unix(&app));
    add_passkey_with(&app, &token, &mut soft, "key", Some(&totp)).await;
    let other = email();
    let other_token = s(&app.register(&other).await, "accessToken").to_owned();
    let mut others = Soft::new();
    add_passkey(&app, &other_token, &mut others, "theirs").await;

    let login = app.login(&who, PASSWORD).await;
    assert_eq!(code(&login), Some("MFA_REQUIRED"), "{login}");
    let ext = &login["errors"][0]["extensions"];
    assert_eq!(ext["methods"], json!(["TOTP", "RECOVERY_CODE", "PASSKEY"]));
    let mfa_token = ext["mfaToken"].as_str().unwrap().to_owned();
    let complete = |assertion: Value| {
        let app = &app;
        let mfa_token = mfa_token.clone();
        async move {
            app.gql(
                None,
                "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken } }",
                json!({ "i": { "mfaToken": mfa_token, "passkey": assertion } }),
            )
            .await
        }
    };
    // Someone else's passkey does not complete this account's login.
    let (_, options) = start_login(&app).await;
    let body = complete(others.get(ORIGIN, &options)).await;
    assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    let (_, options) = start_login(&app).await;
    let body = complete(soft.get(ORIGIN, &options)).await;
    assert!(body["errors"].is_null(), "{body}");
    let access = s(&body["data"]["completeLogin"], "accessToken");
    assert_eq!(claims(access)["amr"], json!(["pwd", "hwk", "mfa"]));
    let current = sessions(&app, access).await;
    let method = current
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["method"]
        .clone();
    assert_eq!(method, "PASSWORD_PASSKEY");

    // And a TOTP completion says so in its token.
    app.clock.advance(std::time::Duration::from_secs(30));
    let login = app.login(&who, PASSWORD).await;
    let mfa_token = login["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap();
    let body = app
        .gql(
            None,
            "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken } }",
            json!({ "i": { "mfaToken": mfa_token, "totpCode": auth.code_at(unix(&app)) } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let access = s(&body["data"]["completeLogin"], "accessToken");
    assert_eq!(claims(access)["amr"], json!(["pwd", "otp", "mfa"]));
}

#[tokio::test]
async fn a_password_login_says_pwd_and_passkeys_alone_do_not_ask_for_a_second_factor() {
    let app = spawn_app().await;
    let who = email();
    let registered = app.register(&who).await;
    let token = s(&registered, "accessToken").to_owned();
    assert_eq!(claims(&token)["amr"], json!(["pwd"]));
    add_passkey(&app, &token, &mut Soft::new(), "key").await;
    let login = app.login(&who, PASSWORD).await;
    assert!(login["errors"].is_null(), "{login}");
    let access = s(&login["data"]["login"], "accessToken");
    assert_eq!(claims(access)["amr"], json!(["pwd"]));
    let me = app
        .gql(Some(access), "{ me { mfaEnabled } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["mfaEnabled"], false);
}

#[tokio::test]
async fn passkeys_are_renamed_and_deleted_by_their_owner_with_the_second_factor() {
    let app = spawn_app().await;
    let who = email();
    let (token, auth, _) = enrolled(&app, &who).await;
    let mut soft = Soft::new();
    app.clock.advance(std::time::Duration::from_secs(30));
    let totp = auth.code_at(unix(&app));
    let added = add_passkey_with(&app, &token, &mut soft, "old", Some(&totp)).await;
    let id = s(&added, "id").to_owned();
    let mut second = Soft::new();
    app.clock.advance(std::time::Duration::from_secs(30));
    let totp = auth.code_at(unix(&app));
    let other = add_passkey_with(&app, &token, &mut second, "phone", Some(&totp)).await;
    // One account, one user handle for all its passkeys.
    assert_eq!(soft.handle, second.handle);

    let renamed = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { renamePasskey(id: $id, name: \"desk key\") { id name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        renamed["data"]["renamePasskey"]["name"], "desk key",
        "{renamed}"
    );
    let too_long = app
        .gql(
            Some(&token),
            "mutation($id: ID!, $n: String!) { renamePasskey(id: $id, name: $n) { id } }",
            json!({ "id": id, "n": "x".repeat(65) }),
        )
        .await;
    assert_eq!(outcome(&too_long), "BAD_USER_INPUT");

    // Another account cannot touch it, and learns nothing.
    let stranger = s(&app.register(&email()).await, "accessToken").to_owned();
    let body = app
        .gql(
            Some(&stranger),
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(outcome(&body), "BAD_USER_INPUT", "{body}");

    let delete = |code: Option<String>| {
        let (app, token, id) = (&app, token.clone(), id.clone());
        async move {
            app.gql(
                Some(&token),
                "mutation($id: ID!, $c: String) { deletePasskey(id: $id, code: $c) }",
                json!({ "id": id, "c": code }),
            )
            .await
        }
    };
    let without = delete(None).await;
    assert_eq!(outcome(&without), "BAD_USER_INPUT", "{without}");
    assert_eq!(without["errors"][0]["extensions"]["field"], "code");
    let wrong = delete(Some(auth.code_at(unix(&app) + 900))).await;
    assert_eq!(outcome(&wrong), "INVALID_CREDENTIALS", "{wrong}");
    app.clock.advance(std::time::Duration::from_secs(30));
    let body = delete(Some(auth.code_at(unix(&app)))).await;
    assert_eq!(body["data"]["deletePasskey"], true, "{body}");
    assert!(audit_kinds(&app)
        .await
        .contains(&"PASSKEY_REMOVED".to_owned()));
    let listed = app
        .gql(Some(&token), "{ passkeys { id } }", json!({}))
        .await;
    assert_eq!(listed["data"]["passkeys"], json!([{ "id": other["id"] }]));
    // The deleted passkey signs in no more; the other one does.
    let body = sign_in(&app, &mut soft, ORIGIN).await;
    assert_eq!(outcome(&body), "INVALID_CREDENTIALS", "{body}");
    let body = sign_in(&app, &mut second, ORIGIN).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn chromium_registers_a_passkey_logs_out_and_signs_in_without_a_password() {
    let app = spawn_app().await;
    let who = email();
    let url = app.address.clone();
    let Some(report) = crate::node::run("passkey.mjs", &[&url, &who, PASSWORD], true).await else {
        return;
    };
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(report["createdType"], "public-key", "{report}");
    assert_eq!(report["added"]["name"], "Chromium", "{report}");
    assert_eq!(report["afterLogout"], "signed out", "{report}");
    assert_eq!(
        report["allowCredentials"],
        json!([]),
        "usernameless: {report}"
    );
    assert_eq!(report["signedInAs"], who.as_str(), "{report}");
    assert_eq!(report["me"], who.as_str(), "{report}");
    let amr = report["amr"].as_array().unwrap();
    assert!(
        amr.contains(&json!("user")) && amr.contains(&json!("mfa")),
        "{report}"
    );
    let credentials = report["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1, "{report}");
    assert_eq!(credentials[0]["rpId"], "localhost");
    assert_eq!(credentials[0]["resident"], true, "discoverable: {report}");
    assert_eq!(report["handleLength"], 16, "{report}");
    assert_eq!(report["handleHasEmail"], false, "{report}");
    // The server kept the counter the authenticator reported.
    let row = passkey::Entity::find()
        .one(app.state.db.read())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.sign_count,
        credentials[0]["signCount"].as_i64().unwrap(),
        "{report}"
    );
}

#[tokio::test]
async fn an_old_session_needs_the_password_to_add_a_factor_or_a_passkey() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.access_token_ttl = std::time::Duration::from_secs(3600)
    })
    .await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    // Ten minutes after signing in, a session is no longer trusted to add a
    // way in on its own: it may be a stolen one.
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    for (operation, query) in [
        (
            "startPasskeyRegistration",
            "mutation($p: String) { startPasskeyRegistration(password: $p) }",
        ),
        (
            "startTotpEnrollment",
            "mutation($p: String) { startTotpEnrollment(password: $p) { secret } }",
        ),
    ] {
        let without = app.gql(Some(&token), query, json!({})).await;
        assert_eq!(
            outcome(&without),
            "BAD_USER_INPUT",
            "{operation}: {without}"
        );
        assert_eq!(without["errors"][0]["extensions"]["field"], "password");
        let wrong = app.gql(Some(&token), query, json!({ "p": "not it" })).await;
        assert_eq!(
            outcome(&wrong),
            "INVALID_CREDENTIALS",
            "{operation}: {wrong}"
        );
        let right = app.gql(Some(&token), query, json!({ "p": PASSWORD })).await;
        assert_eq!(outcome(&right), "ok", "{operation}: {right}");
    }
}

#[tokio::test]
async fn a_ceremony_expires_after_five_minutes() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.access_token_ttl = std::time::Duration::from_secs(3600)
    })
    .await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let mut soft = Soft::new();
    // A registration finished too late.
    let options = start_registration(&app, &token).await;
    let response = soft.create(ORIGIN, &options);
    app.clock.advance(std::time::Duration::from_secs(301));
    let late = finish_registration(&app, &token, response, "late").await;
    assert_eq!(outcome(&late), "INVALID_TOKEN", "{late}");
    // A sign-in finished too late; one in time works.
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    add_passkey(&app, &token, &mut soft, "key").await;
    let (id, options) = start_login(&app).await;
    let assertion = soft.get(ORIGIN, &options);
    app.clock.advance(std::time::Duration::from_secs(301));
    let late = finish_login(&app, &id, &assertion).await;
    assert_eq!(outcome(&late), "INVALID_TOKEN", "{late}");
    let (id, options) = start_login(&app).await;
    let assertion = soft.get(ORIGIN, &options);
    app.clock.advance(std::time::Duration::from_secs(290));
    let in_time = finish_login(&app, &id, &assertion).await;
    assert!(in_time["errors"].is_null(), "{in_time}");
}

#[tokio::test]
async fn every_new_way_in_and_the_app_turned_off_are_mailed_to_the_owner() {
    let app = crate::email_flows::support::mail_app().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    add_passkey(&app, &token, &mut Soft::new(), "laptop").await;
    let added = app.nth_mail(&who, 2).await;
    assert!(
        added.subject.contains("A passkey was added"),
        "{}",
        added.subject
    );
    assert!(added.text.contains(&who), "{}", added.text);
    // The app on, then off (with the password).
    let other = email();
    let (token, _, _) = enrolled(&app, &other).await;
    let enabled = app.nth_mail(&other, 2).await;
    assert!(enabled.subject.contains("turned on"), "{}", enabled.subject);
    let body = app
        .gql(
            Some(&token),
            "mutation($p: String) { disableTotp(password: $p) }",
            json!({ "p": PASSWORD }),
        )
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    let disabled = app.nth_mail(&other, 3).await;
    assert!(
        disabled.subject.contains("turned off"),
        "{}",
        disabled.subject
    );
}
