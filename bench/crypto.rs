//! Micro-benchmarks of the per-request crypto, the limits of BENCHMARKS.md:
//! - `jwt/verify_hs256`: `AccessTokens::verify` of a token Warden minted
//!   (HS256 decode, claim checks): the "JWT verify" limit;
//! - `jwt/mint_hs256`: minting one, for context;
//! - `jwt/verify_eddsa`, `jwt/mint_eddsa`: the same with Ed25519, to decide
//!   the default algorithm (HS256 stays unless EdDSA is within 2x);
//! - `bcrypt/verify_cost12` (and `cost10`): one password verification, the
//!   "password hash" limit that W4's goal is computed from;
//! - `refresh/sha256_hash` and `refresh/successor_hmac`: the hashing a
//!   refresh does per request.
//!
//! `cargo bench --bench crypto` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a short run). `bench/run` reads the estimates criterion writes under
//! `$CARGO_TARGET_DIR/criterion/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, time::Duration};

use chrono::TimeDelta;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use warden::{
    auth::{
        jwt::AccessTokens,
        opaque_token::{self, SuccessorKey},
        signing::{self, JwtAlgorithm, KeyRing},
    },
    clock::Clock,
    domain::Role,
};

fn jwt(c: &mut Criterion) {
    // As Warden builds it from WARDEN_JWT_SECRET: HS256, with a `kid`.
    let secret = SecretString::from(opaque_token::generate().expose_secret().repeat(2));
    let ring = KeyRing::build(&[], Some(&secret), JwtAlgorithm::Hs256).expect("key ring");
    let tokens = AccessTokens::new(ring, "warden", "warden", TimeDelta::minutes(15));
    let clock = Clock::system();
    let now = clock.now();
    let minted = tokens
        .mint(Uuid::now_v7(), Uuid::now_v7(), Role::User, "pwd", now)
        .expect("mint");
    assert!(tokens.verify(&minted.token, now).is_ok());

    let mut group = c.benchmark_group("jwt");
    group.bench_function("verify_hs256", |b| {
        b.iter(|| tokens.verify(black_box(&minted.token), now))
    });
    group.bench_function("mint_hs256", |b| {
        b.iter(|| {
            tokens.mint(
                Uuid::now_v7(),
                Uuid::now_v7(),
                Role::User,
                "pwd",
                black_box(now),
            )
        })
    });
    // The same with Ed25519 (WARDEN_JWT_ALGORITHM=EdDSA): HS256 stays the
    // default unless EdDSA is within 2x of it.
    let ed = AccessTokens::new(
        signing::ephemeral(JwtAlgorithm::EdDsa, now).expect("ed25519 key"),
        "warden",
        "warden",
        TimeDelta::minutes(15),
    );
    let ed_token = ed
        .mint(Uuid::now_v7(), Uuid::now_v7(), Role::User, "pwd", now)
        .expect("mint");
    assert!(ed.verify(&ed_token.token, now).is_ok());
    group.bench_function("verify_eddsa", |b| {
        b.iter(|| ed.verify(black_box(&ed_token.token), now))
    });
    group.bench_function("mint_eddsa", |b| {
        b.iter(|| {
            ed.mint(
                Uuid::now_v7(),
                Uuid::now_v7(),
                Role::User,
                "pwd",
                black_box(now),
            )
        })
    });
    group.finish();
}

fn bcrypt_verify(c: &mut Criterion) {
    let password = "tide pool lantern";
    let mut group = c.benchmark_group("bcrypt");
    // Hundreds of ms per iteration: ten flat samples of one iteration each.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));
    for cost in [12u32, 10] {
        let hash = bcrypt::hash(password, cost).expect("hash");
        group.bench_function(format!("verify_cost{cost}"), |b| {
            b.iter(|| bcrypt::verify(black_box(password), &hash).expect("verify"))
        });
    }
    group.finish();
}

fn refresh_tokens(c: &mut Criterion) {
    let key = SuccessorKey::new(opaque_token::random_bytes(32));
    let token = opaque_token::generate();
    let token = token.expose_secret();
    let mut group = c.benchmark_group("refresh");
    group.bench_function("sha256_hash", |b| {
        b.iter(|| opaque_token::hash(black_box(token)))
    });
    group.bench_function("successor_hmac", |b| {
        b.iter(|| key.successor(black_box(token)))
    });
    group.bench_function("random_token", |b| b.iter(opaque_token::generate));
    group.finish();
}

criterion_group!(benches, jwt, bcrypt_verify, refresh_tokens);
criterion_main!(benches);
