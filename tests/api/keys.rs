//! Signing keys: EdDSA with JWKS, algorithm pinning per key, rotation.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    decode, decode_header, encode, jwk::JwkSet, Algorithm, DecodingKey, EncodingKey, Header,
    Validation,
};
use serde_json::Value;
use warden::auth::signing::{self, JwtAlgorithm};

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
async fn after_rotation_old_tokens_still_verify_and_new_ones_carry_the_new_kid() {
    let app = spawn_app_with(eddsa).await;
    let other_instance = app.sibling().await;
    let who = email();
    let before = app.register(&who).await;
    let old_token = s(&before, "accessToken").to_owned();
    let old_kid = kid(&old_token);

    let out = warden(
        &app.database_url(),
        &["keys", "rotate"],
        "",
        &[("WARDEN_JWT_ALGORITHM", "EdDSA")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the server's 30-second reload does.
    signing::reload(
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
    signing::reload(
        &app.state.db,
        &app.config,
        &app.state.tokens,
        app.clock.now(),
    )
    .await
    .unwrap();
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
