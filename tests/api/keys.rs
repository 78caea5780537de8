//! Signing keys: EdDSA with JWKS, algorithm pinning per key, rotation.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    decode, decode_header, encode, jwk::JwkSet, Algorithm, DecodingKey, EncodingKey, Header,
    Validation,
};
use serde_json::Value;
use warden::{auth::signing::JwtAlgorithm, services::signing_keys};

use crate::{
    cli::warden,
    helpers::{email, reason, s, spawn_app, spawn_app_with, TestApp, PASSWORD},
};

fn eddsa(c: &mut warden::config::Config) {
    c.jwt_algorithm = JwtAlgorithm::EdDsa;
}

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.unwrap()
}

fn kid(token: &str) -> String {
    decode_header(token).unwrap().kid.expect("kid")
}

#[tokio::test]
async fn with_eddsa_a_token_verifies_with_nothing_but_the_jwks_document() {
    let app = spawn_app_with(eddsa).await;
    let payload = app.register(&email()).await;
    let token = s(&payload, "accessToken");
    assert_eq!(decode_header(token).unwrap().alg, Algorithm::EdDSA);

    // What a separate resource server does: fetch JWKS, pick the key by kid, verify.
    let set = jwks(&app).await;
    let jwk = set.find(&kid(token)).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["warden"]);
    validation.set_audience(&["warden"]);
    let claims = decode::<Value>(token, &key, &validation).unwrap().claims;
    assert_eq!(claims["sub"], payload["user"]["id"]);
    assert_eq!(claims["sid"], payload["sessionId"]);
    assert!(app.me(Some(token)).await["errors"].is_null());
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let app = spawn_app_with(eddsa).await;
    let payload = app.register(&email()).await;
    let token = s(&payload, "accessToken");
    let set = jwks(&app).await;
    let jwk = set.find(&kid(token)).unwrap();
    let x = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone(),
        other => panic!("not an OKP key: {other:?}"),
    };
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid(token));
    let confused = encode(&header, &claims, &EncodingKey::from_secret(&public)).unwrap();
    assert_eq!(reason(&app.me(Some(&confused)).await), Some("INVALID"));
}

#[tokio::test]
async fn hs256_publishes_no_keys_but_still_names_its_key() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    assert!(
        jwks(&app).await.keys.is_empty(),
        "a shared secret is never published"
    );
    assert!(kid(s(&payload, "accessToken")).starts_with("hs-"));
}

#[tokio::test]
async fn after_rotate_now_old_tokens_still_verify_and_new_ones_carry_the_new_kid() {
    let app = spawn_app_with(eddsa).await;
    let other_instance = app.sibling().await;
    let who = email();
    let before = app.register(&who).await;
    let old_token = s(&before, "accessToken").to_owned();
    let old_kid = kid(&old_token);

    let out = warden(
        &app.database_url(),
        &["keys", "rotate", "--now"],
        "",
        &[("WARDEN_JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the server's once-a-second watch does.
    signing_keys::reload(
        &app.state.db,
        &app.config,
        &app.state.tokens,
        app.clock.now(),
    )
    .await
    .unwrap();

    let after = app.login(&who, PASSWORD).await;
    let new_token = s(&after["data"]["login"], "accessToken").to_owned();
    assert_ne!(kid(&new_token), old_kid, "new tokens carry the new kid");
    assert!(
        app.me(Some(&old_token)).await["errors"].is_null(),
        "old tokens still verify"
    );
    assert!(app.me(Some(&new_token)).await["errors"].is_null());
    // An instance that has not reloaded yet learns the new kid on first sight.
    assert!(other_instance.me(Some(&new_token)).await["errors"].is_null());
    let kids: Vec<String> = jwks(&app)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&kid(&new_token)),
        "{kids:?}"
    );

    // Once every token of the old key has expired, the old key retires.
    app.clock.advance(Duration::from_secs(16 * 60 + 61));
    let kids: Vec<String> = jwks(&app)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, [kid(&new_token)]);
}

#[tokio::test]
async fn an_eddsa_key_survives_a_restart() {
    let app = spawn_app_with(eddsa).await;
    let payload = app.register(&email()).await;
    let app = app.restart().await;
    assert!(app.me(Some(s(&payload, "accessToken"))).await["errors"].is_null());
    assert_eq!(jwks(&app).await.keys.len(), 1);
}

// ---------------------------------------------------------------------------
// Keys that stop verifying when the operator says so.
// ---------------------------------------------------------------------------

/// A token for `payload`'s user and session, freshly dated at the server's
/// `now`, signed with the stored key `kid`: what someone holding a copy of an
/// old key (a backup, a leaked database dump) can mint.
async fn forge_with_stored_key(app: &TestApp, kid: &str, payload: &Value) -> String {
    use sea_orm::EntityTrait;
    let row = entity::signing_key::Entity::find_by_id(kid.to_owned())
        .one(app.state.db.read())
        .await
        .unwrap()
        .expect("the key is stored");
    let (alg, key) = match row.algorithm.as_str() {
        "EdDSA" => (Algorithm::EdDSA, EncodingKey::from_ed_der(&row.private_key)),
        _ => (Algorithm::HS256, EncodingKey::from_secret(&row.private_key)),
    };
    forge(app, alg, kid, &key, payload)
}

/// A token for `payload`'s user and session, dated at the server's `now`.
fn forge(app: &TestApp, alg: Algorithm, kid: &str, key: &EncodingKey, payload: &Value) -> String {
    let now = app.clock.now().timestamp();
    let claims = serde_json::json!({
        "iss": "warden", "aud": "warden",
        "sub": payload["user"]["id"], "sid": payload["sessionId"],
        "role": "USER", "iat": now, "exp": now + 900,
        "jti": uuid::Uuid::new_v4(),
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, key).unwrap()
}

/// The kids a JWKS document lists.
async fn published(app: &TestApp) -> Vec<String> {
    jwks(app)
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

/// Past the longest access-token lifetime (15 min) and the 60 s leeway.
const PAST_THE_GRACE: Duration = Duration::from_secs(15 * 60 + 61);

#[tokio::test]
async fn a_generated_key_stops_verifying_a_token_lifetime_after_a_jwt_secret_is_set() {
    let mut app = spawn_app().await;
    let who = email();
    let before = app.register(&who).await;
    let old_token = s(&before, "accessToken").to_owned();
    let old_kid = kid(&old_token);

    app.config.jwt_secret = Some("k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs".to_owned().into());
    let app = app.restart().await;
    assert!(
        app.me(Some(&old_token)).await["errors"].is_null(),
        "the switch logs nobody out: tokens of the old key verify to their end"
    );
    let fresh = app.login(&who, PASSWORD).await["data"]["login"].clone();
    assert_ne!(
        kid(s(&fresh, "accessToken")),
        old_kid,
        "the secret signs now"
    );

    app.clock.advance(PAST_THE_GRACE);
    let forged = forge_with_stored_key(&app, &old_kid, &fresh).await;
    assert_eq!(
        reason(&app.me(Some(&forged)).await),
        Some("INVALID"),
        "a token minted with the old key after its retirement is refused"
    );
    let later = app.login(&who, PASSWORD).await;
    assert!(app
        .me(Some(s(&later["data"]["login"], "accessToken")))
        .await["errors"]
        .is_null());
}

#[tokio::test]
async fn an_hs256_key_stops_verifying_a_token_lifetime_after_the_switch_to_eddsa() {
    let mut app = spawn_app().await;
    let who = email();
    let before = app.register(&who).await;
    let old_token = s(&before, "accessToken").to_owned();
    let old_kid = kid(&old_token);

    app.config.jwt_algorithm = JwtAlgorithm::EdDsa;
    let app = app.restart().await;
    let sibling = app.sibling().await;
    assert!(app.me(Some(&old_token)).await["errors"].is_null());
    let fresh = app.login(&who, PASSWORD).await["data"]["login"].clone();
    assert_eq!(
        decode_header(s(&fresh, "accessToken")).unwrap().alg,
        Algorithm::EdDSA
    );

    app.clock.advance(PAST_THE_GRACE);
    let forged = forge_with_stored_key(&app, &old_kid, &fresh).await;
    for instance in [&app, &sibling] {
        assert_eq!(reason(&instance.me(Some(&forged)).await), Some("INVALID"));
    }
}

#[tokio::test]
async fn a_jwt_secret_keeps_verifying_after_the_switch_to_eddsa_only_for_a_token_lifetime() {
    const SECRET: &str = "k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs";
    let mut app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let who = email();
    let before = app.register(&who).await;
    let old_token = s(&before, "accessToken").to_owned();
    let old_kid = kid(&old_token);

    app.config.jwt_algorithm = JwtAlgorithm::EdDsa;
    let app = app.restart().await;
    assert!(
        app.me(Some(&old_token)).await["errors"].is_null(),
        "the switch logs nobody out"
    );
    app.clock.advance(PAST_THE_GRACE);
    let fresh = app.login(&who, PASSWORD).await["data"]["login"].clone();
    let forged = forge(
        &app,
        Algorithm::HS256,
        &old_kid,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &fresh,
    );
    assert_eq!(reason(&app.me(Some(&forged)).await), Some("INVALID"));
}

/// Runs `warden keys …` against `app`'s database and asserts it succeeded.
async fn keys_cli(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    let out = warden(&app.database_url(), &all, "", env).await;
    assert!(
        out.status.success(),
        "warden {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `done` every 50 ms for at most `limit`; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut done: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn a_rotated_key_is_published_on_every_instance_before_it_signs_anything() {
    let app = spawn_app_with(eddsa).await;
    let sibling = app.sibling().await;
    let who = email();
    let old_kid = kid(s(&app.register(&who).await, "accessToken"));

    let rotating = app.clock.now();
    keys_cli(&app, &["rotate"], &[("WARDEN_JWT_ALGORITHM", "EdDSA")]).await;
    let rotated = app.clock.now();
    // Every instance publishes the new key within a second (a busy test
    // machine gets five).
    let took = within(Duration::from_secs(5), || async {
        published(&app).await.len() == 2 && published(&sibling).await.len() == 2
    })
    .await;
    println!("new key in JWKS on both instances after {took:?}");
    assert!(took.is_some(), "the new key is published at once");
    let new_kid = published(&app)
        .await
        .into_iter()
        .find(|k| *k != old_kid)
        .unwrap();

    // Until a JWKS document cached just before the new key appeared has
    // expired, the old key still signs...
    let max_age = jwks_max_age(&app).await as i64;
    advance_to(&app, rotating + chrono::TimeDelta::seconds(max_age));
    for instance in [&app, &sibling] {
        let login = instance.login(&who, PASSWORD).await;
        assert_eq!(kid(s(&login["data"]["login"], "accessToken")), old_kid);
    }
    // ...and the new one right after (two watch periods later).
    advance_to(&app, rotated + chrono::TimeDelta::seconds(max_age + 3));
    for instance in [&app, &sibling] {
        let login = instance.login(&who, PASSWORD).await;
        let token = s(&login["data"]["login"], "accessToken");
        assert_eq!(kid(token), new_kid, "the new key signs after the cache age");
        assert!(app.me(Some(token)).await["errors"].is_null());
        assert!(sibling.me(Some(token)).await["errors"].is_null());
    }

    // The old key leaves JWKS once the last token it signed has expired.
    app.clock.advance(PAST_THE_GRACE);
    assert_eq!(published(&app).await, std::slice::from_ref(&new_kid));
    assert_eq!(published(&sibling).await, [new_kid]);
}

/// Moves `app`'s clock (shared with its siblings) forward to `at`.
fn advance_to(app: &TestApp, at: chrono::DateTime<chrono::Utc>) {
    let ahead = (at - app.clock.now()).to_std().unwrap_or_default();
    app.clock.advance(ahead);
}

/// The `max-age` of the JWKS response.
async fn jwks_max_age(app: &TestApp) -> u64 {
    let response = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap();
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .expect("JWKS has a max-age")
}

#[tokio::test]
async fn rotate_now_signs_with_the_new_key_at_once() {
    let app = spawn_app_with(eddsa).await;
    let who = email();
    let old_kid = kid(s(&app.register(&who).await, "accessToken"));
    keys_cli(
        &app,
        &["rotate", "--now"],
        &[("WARDEN_JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    let took = within(Duration::from_secs(5), || async {
        let login = app.login(&who, PASSWORD).await;
        kid(s(&login["data"]["login"], "accessToken")) != old_kid
    })
    .await;
    assert!(took.is_some(), "the new key signs within a second");
}

#[tokio::test]
async fn a_revoked_key_stops_verifying_on_every_instance_within_a_second() {
    let app = spawn_app_with(eddsa).await;
    let sibling = app.sibling().await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken").to_owned();
    let leaked = kid(&token);
    let forged = forge_with_stored_key(&app, &leaked, &payload).await;
    assert!(sibling.me(Some(&forged)).await["errors"].is_null());

    keys_cli(
        &app,
        &["rotate", "--now"],
        &[("WARDEN_JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    keys_cli(
        &app,
        &["revoke", &leaked],
        &[("WARDEN_JWT_ALGORITHM", "EdDSA")],
    )
    .await;
    let took = within(Duration::from_secs(5), || async {
        reason(&app.me(Some(&forged)).await) == Some("INVALID")
            && reason(&sibling.me(Some(&forged)).await) == Some("INVALID")
    })
    .await;
    println!("revoked key refused by both instances after {took:?}");
    assert!(took.is_some(), "both instances refuse the revoked key");
    for instance in [&app, &sibling] {
        assert_eq!(reason(&instance.me(Some(&token)).await), Some("INVALID"));
        assert!(!published(instance).await.contains(&leaked));
        let login = instance.login(&who, PASSWORD).await;
        assert_ne!(kid(s(&login["data"]["login"], "accessToken")), leaked);
    }
    let audit = audit_kinds(&app).await;
    assert!(
        audit.contains(&"SIGNING_KEY_REVOKED".to_owned()),
        "{audit:?}"
    );
    use sea_orm::EntityTrait;
    let row = entity::signing_key::Entity::find_by_id(leaked.clone())
        .one(app.state.db.read())
        .await
        .unwrap()
        .unwrap();
    assert!(row.private_key.is_empty(), "a revoked key is wiped");
}

#[tokio::test]
async fn a_replaced_jwt_secret_can_be_revoked_and_is_then_refused_at_start_up() {
    const FIRST: &str = "k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs";
    const SECOND: &str = "Zq8wN3vB6xT1mK4pR7sY0cH2jF5gD9aL3eU6iOp";
    let mut app = spawn_app_with(|c| c.jwt_secret = Some(FIRST.to_owned().into())).await;
    let who = email();
    let old_token = s(&app.register(&who).await, "accessToken").to_owned();

    app.config.jwt_secret = Some(SECOND.to_owned().into());
    let app = app.restart().await;
    // A secret lives only in the environment: once replaced, nothing can
    // verify with it (clients refresh; sessions are untouched).
    assert_eq!(reason(&app.me(Some(&old_token)).await), Some("INVALID"));
    let said = keys_cli(
        &app,
        &["revoke", &kid(&old_token)],
        &[("WARDEN_JWT_SECRET", SECOND)],
    )
    .await;
    assert!(said.contains("revoked"), "{said}");
    let login = app.login(&who, PASSWORD).await;
    assert!(app
        .me(Some(s(&login["data"]["login"], "accessToken")))
        .await["errors"]
        .is_null());

    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.jwt_secret = Some(FIRST.to_owned().into());
    let refused = warden::startup::App::build(config, app.clock.clone()).await;
    let err = refused
        .err()
        .expect("a revoked secret does not start")
        .to_string();
    assert!(
        err.contains("WARDEN_JWT_SECRET") && !err.contains(FIRST),
        "{err}"
    );
}

#[tokio::test]
async fn revoking_the_key_that_signs_rotates_first_so_logins_keep_working() {
    let app = spawn_app().await;
    let sibling = app.sibling().await;
    let who = email();
    let token = s(&app.register(&who).await, "accessToken").to_owned();
    let signing = kid(&token);

    let said = keys_cli(&app, &["revoke", &signing], &[]).await;
    assert!(said.contains(&signing), "{said}");
    let took = within(Duration::from_secs(5), || async {
        reason(&app.me(Some(&token)).await) == Some("INVALID")
            && reason(&sibling.me(Some(&token)).await) == Some("INVALID")
    })
    .await;
    assert!(took.is_some());
    for instance in [&app, &sibling] {
        let login = instance.login(&who, PASSWORD).await;
        let fresh = s(&login["data"]["login"], "accessToken");
        assert_ne!(kid(fresh), signing, "a new key signs");
        assert!(app.me(Some(fresh)).await["errors"].is_null());
        assert!(sibling.me(Some(fresh)).await["errors"].is_null());
    }
}

#[tokio::test]
async fn revoke_refuses_an_unknown_kid_and_the_configured_jwt_secret() {
    const SECRET: &str = "k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs";
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    let out = warden(&app.database_url(), &["keys", "revoke", "hs-nope"], "", &[]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hs-nope"));
    let out = warden(
        &app.database_url(),
        &["keys", "revoke", &kid(&token)],
        "",
        &[("WARDEN_JWT_SECRET", SECRET)],
    )
    .await;
    assert!(
        !out.status.success(),
        "the configured secret cannot be revoked while it signs"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARDEN_JWT_SECRET") && !stderr.contains(SECRET),
        "{stderr}"
    );
    assert!(app.me(Some(&token)).await["errors"].is_null());
}

/// The kinds in the audit log, newest first, read from the database.
async fn audit_kinds(app: &TestApp) -> Vec<String> {
    use sea_orm::{EntityTrait, QueryOrder};
    entity::audit_event::Entity::find()
        .order_by_desc(entity::audit_event::Column::Id)
        .all(app.state.db.read())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_cli_command_run_with_other_settings_retires_no_key() {
    use sea_orm::EntityTrait;
    let app = spawn_app_with(eddsa).await;
    let who = email();
    app.register(&who).await;
    // `warden admin …` run without the servers' WARDEN_JWT_ALGORITHM.
    let out = warden(&app.database_url(), &["admin", "promote", &who], "", &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = entity::signing_key::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].retire_after.is_none(), "{rows:?}");
    app.clock.advance(PAST_THE_GRACE);
    let login = app.login(&who, PASSWORD).await;
    assert!(app
        .me(Some(s(&login["data"]["login"], "accessToken")))
        .await["errors"]
        .is_null());
}
