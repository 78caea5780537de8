//! Access tokens: `me` with good, missing, expired, revoked and forged tokens.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{code, email, reason, s, spawn_app, spawn_app_with};

const SECRET: &str = "k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXsW";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs `claims` with the server's own secret under `kid`, so only what
/// the test changes (algorithm or claims) can make the token fail.
fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("every token has a kid")
}

#[tokio::test]
async fn a_token_carries_the_contract_claims() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    let claims = claims_of(s(&payload, "accessToken"));
    for claim in ["iss", "aud", "sub", "sid", "role", "iat", "exp", "jti"] {
        assert!(!claims[claim].is_null(), "missing {claim} in {claims}");
    }
    assert_eq!(claims["iss"], "warden");
    assert_eq!(claims["aud"], "warden");
    assert_eq!(claims["sub"], payload["user"]["id"]);
    assert_eq!(claims["sid"], payload["sessionId"]);
    assert_eq!(claims["role"], "USER");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn me_without_a_token_is_unauthenticated_missing() {
    let app = spawn_app().await;
    let body = app.me(None).await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
    assert_eq!(reason(&body), Some("MISSING"));
}

#[tokio::test]
async fn a_token_in_the_url_or_body_is_ignored() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    let token = s(&payload, "accessToken");
    let url = format!("{}/graphql?access_token={token}", app.address);
    let body: Value = app
        .client
        .post(url)
        .json(&json!({ "query": "{ me { id } }", "accessToken": token, "access_token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reason(&body), Some("MISSING"));
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated_expired() {
    let app = spawn_app().await;
    let payload = app.register(&email()).await;
    app.clock.advance(std::time::Duration::from_secs(16 * 60));
    let body = app.me(Some(s(&payload, "accessToken"))).await;
    assert_eq!(code(&body), Some("UNAUTHENTICATED"));
    assert_eq!(reason(&body), Some("EXPIRED"));
}

#[tokio::test]
async fn forged_tokens_are_unauthenticated_invalid() {
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let payload = app.register(&email()).await;
    let good = s(&payload, "accessToken").to_owned();
    let kid = kid_of(&good);
    let claims = claims_of(&good);
    assert!(
        app.me(Some(&good)).await["errors"].is_null(),
        "the genuine token works"
    );

    let mut forged: Vec<(&str, String)> = Vec::new();
    let body = good.split('.').nth(1).unwrap();
    forged.push((
        "alg none",
        format!(
            "{}.{body}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        ),
    ));
    forged.push((
        "HS384 with the real key",
        sign(Algorithm::HS384, &kid, &claims),
    ));
    forged.push((
        "HS512 with the real key",
        sign(Algorithm::HS512, &kid, &claims),
    ));
    let mut admin = claims.clone();
    admin["role"] = json!("ADMIN");
    let tampered_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());
    let parts: Vec<&str> = good.split('.').collect();
    forged.push((
        "tampered claims",
        format!("{}.{tampered_body}.{}", parts[0], parts[2]),
    ));
    for (what, field, value) in [
        ("wrong iss", "iss", json!("evil")),
        ("wrong aud", "aud", json!("other-app")),
    ] {
        let mut c = claims.clone();
        c[field] = value;
        forged.push((what, sign(Algorithm::HS256, &kid, &c)));
    }
    let mut no_sid = claims.clone();
    no_sid.as_object_mut().unwrap().remove("sid");
    forged.push(("missing sid", sign(Algorithm::HS256, &kid, &no_sid)));
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    forged.push(("missing exp", sign(Algorithm::HS256, &kid, &no_exp)));
    forged.push(("garbage", "not.a.jwt".to_owned()));
    forged.push((
        "signed with another key",
        encode(
            &Header {
                kid: Some(kid.clone()),
                ..Header::new(Algorithm::HS256)
            },
            &claims,
            &EncodingKey::from_secret(b"another-key-of-at-least-32-bytes!!"),
        )
        .unwrap(),
    ));
    forged.push((
        "no kid",
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap(),
    ));
    let control = sign(Algorithm::HS256, &kid, &claims);
    assert!(
        app.me(Some(&control)).await["errors"].is_null(),
        "the test's own signing is right"
    );

    for (what, token) in forged {
        let body = app.me(Some(&token)).await;
        assert_eq!(code(&body), Some("UNAUTHENTICATED"), "{what}: {body}");
        assert_eq!(reason(&body), Some("INVALID"), "{what}");
    }

    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Token {good}"))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        reason(&body),
        Some("INVALID"),
        "a non-Bearer scheme is rejected, not anonymous"
    );
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_invalid() {
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let payload = app.register(&email()).await;
    let kid = kid_of(s(&payload, "accessToken"));
    let mut claims = claims_of(s(&payload, "accessToken"));
    let later = claims["iat"].as_i64().unwrap() + 3600;
    claims["iat"] = json!(later);
    claims["exp"] = json!(later + 900);
    let body = app.me(Some(&sign(Algorithm::HS256, &kid, &claims))).await;
    assert_eq!(reason(&body), Some("INVALID"));
}

/// Session checks of concurrent requests share database queries
/// (`db::liveness`); each request must still get its own answer.
/// Live, logged-out and cross-wired sessions are mixed in one burst.
#[tokio::test]
async fn concurrent_session_checks_each_get_their_own_answer() {
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let mut accounts = Vec::new();
    for _ in 0..12 {
        let who = email();
        let payload = app.register(&who).await;
        accounts.push((who, payload));
    }
    // Every third account logs out: its token must read REVOKED.
    for (_, payload) in accounts.iter().step_by(3) {
        let out = app
            .gql(
                None,
                "mutation($t: String) { logout(refreshToken: $t) }",
                json!({ "t": s(payload, "refreshToken") }),
            )
            .await;
        assert_eq!(out["data"]["logout"], true, "{out}");
    }
    // A genuine signature over one user's id and another's live session.
    let first = s(&accounts[1].1, "accessToken");
    let mut crossed = claims_of(first);
    crossed["sid"] = json!(s(&accounts[2].1, "sessionId"));
    let crossed = sign(Algorithm::HS256, &kid_of(first), &crossed);

    let mut expected = Vec::new();
    for round in 0..8 {
        for (i, (who, payload)) in accounts.iter().enumerate() {
            let alive = i % 3 != 0;
            expected.push((
                s(payload, "accessToken").to_owned(),
                alive.then(|| who.clone()),
            ));
        }
        if round % 2 == 0 {
            expected.push((crossed.clone(), None));
        }
    }
    let answers =
        futures::future::join_all(expected.iter().map(|(token, _)| app.me(Some(token)))).await;
    for ((_, want), body) in expected.iter().zip(&answers) {
        match want {
            Some(who) => assert_eq!(body["data"]["me"]["email"], json!(who), "{body}"),
            None => assert_eq!(reason(body), Some("REVOKED"), "{body}"),
        }
    }
}
