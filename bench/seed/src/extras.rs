//! The tables of the newer features, each in the state cleanup leaves it
//! (nothing here is old enough for cleanup at the default retentions):
//! `trusted_devices` (live), `email_tokens` (of the last day), `mail_outbox`
//! (sent or given up in the last week, bodies erased), `totp_factors` and
//! `recovery_codes` (the MFA users'), `passkeys`, `api_keys` (the heavy
//! users' first, with secrets the summary prints) and `login_attempts`
//! (counters of the current window).

use std::time::Instant;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use crate::{
    agent, between, hex, hex32, ip, ms_time,
    sink::{Cell, Table},
    users::{Person, DISABLED, MFA},
    uuid7, Ctx, SeedError, DAY, HOUR, MINUTE, RECOVERY_CODES_EACH,
};

/// What the summary needs from here.
pub struct Extras {
    /// One live API key per heavy user, in full.
    pub heavy_keys: Vec<String>,
}

fn someone(rng: &mut ChaCha8Rng, ctx: &Ctx<'_>, people: &[Person]) -> usize {
    let lo = usize::try_from(ctx.plan.heavy_users + ctx.plan.admins).unwrap_or(0);
    let hi = people.len().max(lo + 1);
    rng.random_range(lo..hi).min(people.len().saturating_sub(1))
}

/// Writes every table of this module, timing each with `timed`.
pub async fn write(
    db: &DatabaseConnection,
    ctx: &Ctx<'_>,
    people: &[Person],
    timed: &mut impl FnMut(&'static str, u64, Instant),
) -> Result<Extras, SeedError> {
    let plan = ctx.plan;
    let now = ctx.now_ms;

    let t = Instant::now();
    let mut rng = ctx.rng(10);
    let mut table = Table::open(
        db,
        "trusted_devices",
        &[
            "id",
            "user_id",
            "token_hash",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "ip",
            "user_agent",
        ],
    )
    .await?;
    for _ in 0..plan.trusted_devices {
        let p = &people[someone(&mut rng, ctx, people)];
        let created = between(&mut rng, p.created_ms, now - HOUR);
        let used = between(&mut rng, now - 80 * DAY, now - MINUTE).max(created);
        let row: Vec<Cell> = vec![
            uuid7(&mut rng, created).into(),
            p.id.into(),
            hex32(&mut rng).into(),
            ms_time(created).into(),
            ms_time(used).into(),
            ms_time(used + 90 * DAY).into(),
            Cell::Null,
            ip(&mut rng).into(),
            agent(&mut rng).into(),
        ];
        table.push(row).await?;
    }
    timed("trusted_devices", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(11);
    let mut table = Table::open(
        db,
        "email_tokens",
        &[
            "id",
            "user_id",
            "purpose",
            "token_hash",
            "code_hash",
            "email_key",
            "new_email",
            "attempts",
            "created_at",
            "expires_at",
            "used_at",
        ],
    )
    .await?;
    for i in 0..plan.email_tokens {
        let p = &people[someone(&mut rng, ctx, people)];
        let created = between(&mut rng, now - 23 * HOUR, now - MINUTE);
        let (purpose, ttl) = match rng.random_range(0..20) {
            0..=13 => ("verify", 24 * HOUR),
            14..=18 => ("reset", 30 * MINUTE),
            _ => ("change", 24 * HOUR),
        };
        let used = (rng.random_range(0..10) < 4)
            .then(|| between(&mut rng, created, (created + ttl).min(now - 1000)));
        let new_email = (purpose == "change").then(|| format!("moved{}@example.org", i + 1));
        let attempts: i32 = if rng.random_range(0..10) == 0 {
            rng.random_range(1..4)
        } else {
            0
        };
        let row: Vec<Cell> = vec![
            uuid7(&mut rng, created).into(),
            p.id.into(),
            purpose.into(),
            hex32(&mut rng).into(),
            hex32(&mut rng).into(),
            hex32(&mut rng).into(),
            new_email.into(),
            attempts.into(),
            ms_time(created).into(),
            ms_time(created + ttl).into(),
            used.map(ms_time).into(),
        ];
        table.push(row).await?;
    }
    timed("email_tokens", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(12);
    let mut table = Table::open(
        db,
        "mail_outbox",
        &[
            "id",
            "kind",
            "recipient",
            "message_id",
            "sealed",
            "created_at",
            "next_attempt_at",
            "attempts",
            "last_error",
            "sent_at",
            "failed_at",
            "claim_owner",
            "claim_until",
        ],
    )
    .await?;
    const MAIL: [&str; 8] = [
        "verify-email",
        "verify-email",
        "verify-email",
        "password-reset",
        "password-reset",
        "password-changed",
        "email-change",
        "mfa-enabled",
    ];
    for _ in 0..plan.mail_outbox {
        let p = &people[someone(&mut rng, ctx, people)];
        let created = between(&mut rng, now - 6 * DAY, now - HOUR);
        let id = uuid7(&mut rng, created);
        let failed = rng.random_range(0..50) == 0;
        let done = created
            + if failed {
                45 * MINUTE
            } else {
                rng.random_range(200..5_000)
            };
        let row: Vec<Cell> = vec![
            id.into(),
            MAIL[rng.random_range(0..MAIL.len())].into(),
            p.email.clone().into(),
            format!("{}@seed.example.com", id.simple()).into(),
            Cell::Null,
            ms_time(created).into(),
            ms_time(if failed { done } else { created }).into(),
            (if failed { 8 } else { 1 }).into(),
            Cell::from(failed.then_some("permanent")),
            (!failed).then(|| ms_time(done)).into(),
            failed.then(|| ms_time(done)).into(),
            Cell::Null,
            Cell::Null,
        ];
        table.push(row).await?;
    }
    timed("mail_outbox", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(13);
    let mut table = Table::open(
        db,
        "totp_factors",
        &[
            "user_id",
            "secret_sealed",
            "created_at",
            "confirmed_at",
            "last_step",
        ],
    )
    .await?;
    for p in people.iter().filter(|p| p.flags & MFA != 0) {
        // Nonce, sealed 20-byte secret, tag: the shape, under no real key.
        let mut sealed = vec![0u8; 12 + 20 + 16];
        rng.fill_bytes(&mut sealed);
        let step = between(&mut rng, p.mfa_ms, now - MINUTE) / 30_000;
        let row: Vec<Cell> = vec![
            p.id.into(),
            sealed.into(),
            ms_time(p.mfa_ms - 2 * MINUTE).into(),
            ms_time(p.mfa_ms).into(),
            step.into(),
        ];
        table.push(row).await?;
    }
    timed("totp_factors", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(14);
    let mut table = Table::open(
        db,
        "recovery_codes",
        &["id", "user_id", "code_hash", "created_at", "used_at"],
    )
    .await?;
    for p in people.iter().filter(|p| p.flags & MFA != 0) {
        for _ in 0..RECOVERY_CODES_EACH {
            let used =
                (rng.random_range(0..20) == 0).then(|| between(&mut rng, p.mfa_ms, now - MINUTE));
            let row: Vec<Cell> = vec![
                uuid7(&mut rng, p.mfa_ms).into(),
                p.id.into(),
                hex32(&mut rng).into(),
                ms_time(p.mfa_ms).into(),
                used.map(ms_time).into(),
            ];
            table.push(row).await?;
        }
    }
    timed("recovery_codes", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(15);
    let mut table = Table::open(
        db,
        "passkeys",
        &[
            "id",
            "user_id",
            "user_handle",
            "credential_id",
            "name",
            "credential",
            "sign_count",
            "backup_eligible",
            "backup_state",
            "created_at",
            "last_used_at",
        ],
    )
    .await?;
    const DEVICES: [&str; 5] = ["iPhone", "MacBook", "YubiKey 5", "Pixel", "Windows Hello"];
    for _ in 0..plan.passkeys {
        let who = someone(&mut rng, ctx, people);
        let p = &people[who];
        let created = between(&mut rng, p.created_ms, now - HOUR);
        let synced = rng.random_range(0..3) != 0;
        let cred_id = URL_SAFE_NO_PAD.encode(rng.random::<[u8; 16]>());
        let count = if synced { 0 } else { rng.random_range(1..500) };
        let credential = passkey_json(&mut rng, &cred_id, count, synced);
        let row: Vec<Cell> = vec![
            uuid7(&mut rng, created).into(),
            p.id.into(),
            user_handle(ctx.seed, who).into(),
            cred_id.into(),
            DEVICES[rng.random_range(0..DEVICES.len())].into(),
            credential.into(),
            i64::from(count).into(),
            synced.into(),
            synced.into(),
            ms_time(created).into(),
            (rng.random_range(0..2) == 0)
                .then(|| ms_time(between(&mut rng, created, now - MINUTE)))
                .into(),
        ];
        table.push(row).await?;
    }
    timed("passkeys", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(16);
    let mut heavy_keys = Vec::new();
    let mut table = Table::open(
        db,
        "api_keys",
        &[
            "id",
            "user_id",
            "name",
            "prefix",
            "secret_hash",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ],
    )
    .await?;
    for i in 0..plan.api_keys {
        let heavy = i < plan.heavy_users;
        let who = if heavy {
            usize::try_from(i).unwrap_or(0)
        } else {
            someone(&mut rng, ctx, people)
        };
        let p = &people[who];
        let created = between(&mut rng, p.created_ms, now - 2 * DAY);
        let key = api_key(&mut rng);
        let hash = hex(&Sha256::digest(key.as_bytes()));
        let scopes = if rng.random_range(0..10) == 0 {
            "USER INTROSPECT"
        } else {
            "USER"
        };
        let expires = (!heavy && rng.random_range(0..10) < 3)
            .then(|| between(&mut rng, now - 20 * DAY, now + 300 * DAY));
        let revoked = (!heavy && rng.random_range(0..20) == 0)
            .then(|| between(&mut rng, now - 29 * DAY, now - HOUR));
        let row: Vec<Cell> = vec![
            uuid7(&mut rng, created).into(),
            p.id.into(),
            (if heavy { "seed heavy key" } else { "ci" }).into(),
            key[..12].to_owned().into(),
            hash.into(),
            scopes.into(),
            ms_time(created).into(),
            (rng.random_range(0..10) < 6)
                .then(|| ms_time(between(&mut rng, now - 30 * DAY, now - HOUR).max(created)))
                .into(),
            expires.map(ms_time).into(),
            revoked.map(|at| ms_time(at.max(created))).into(),
        ];
        table.push(row).await?;
        if heavy {
            heavy_keys.push(key);
        }
    }
    timed("api_keys", table.finish().await?, t);

    let t = Instant::now();
    let mut rng = ctx.rng(17);
    let mut table = Table::open(
        db,
        "login_attempts",
        &[
            "email",
            "attempts",
            "window_started_at",
            "locked_until",
            "updated_at",
        ],
    )
    .await?;
    for i in 0..plan.login_attempts {
        let pseudonym = hex32(&mut rng);
        let key = match i % 3 {
            0 => pseudonym,
            1 => format!("{pseudonym}|ip:{}", ip(&mut rng)),
            _ => format!("{pseudonym}|device:{}", uuid7(&mut rng, now - DAY)),
        };
        let started = between(&mut rng, now - 14 * MINUTE, now - 1000);
        let attempts: i32 = rng.random_range(1..8);
        let locked = (attempts >= 5).then(|| ms_time(started + 15 * MINUTE));
        let row: Vec<Cell> = vec![
            key.into(),
            attempts.into(),
            ms_time(started).into(),
            locked.into(),
            ms_time(between(&mut rng, started, now)).into(),
        ];
        table.push(row).await?;
    }
    timed("login_attempts", table.finish().await?, t);

    let _ = DISABLED;
    Ok(Extras { heavy_keys })
}

/// The account's WebAuthn user handle: one per account, from the seed.
fn user_handle(seed: u64, who: usize) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(b"warden-seed user handle\0")
        .chain_update(seed.to_le_bytes())
        .chain_update(who.to_le_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key in Warden's format (`auth::api_key`): `wdn_`, 43 base62
/// characters, their CRC-32 in 6 base62 characters.
fn api_key(rng: &mut ChaCha8Rng) -> String {
    let random: String = (0..43)
        .map(|_| char::from(BASE62[rng.random_range(0..62)]))
        .collect();
    let mut crc = !0u32;
    for byte in random.bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    let mut n = !crc;
    let mut sum = [b'0'; 6];
    for slot in sum.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    format!("wdn_{random}{}", String::from_utf8_lossy(&sum))
}

/// A webauthn-rs `Passkey` as Warden stores it: an ES256 public key (seeded
/// coordinates: a shape, not a point anyone holds the key of).
fn passkey_json(rng: &mut ChaCha8Rng, cred_id: &str, counter: u32, synced: bool) -> String {
    let x = URL_SAFE_NO_PAD.encode(rng.random::<[u8; 32]>());
    let y = URL_SAFE_NO_PAD.encode(rng.random::<[u8; 32]>());
    serde_json::json!({
        "cred": {
            "cred_id": cred_id,
            "cred": { "type_": "ES256", "key": { "EC_EC2": { "curve": "SECP256R1", "x": x, "y": y } } },
            "counter": counter,
            "transports": null,
            "user_verified": true,
            "backup_eligible": synced,
            "backup_state": synced,
            "registration_policy": "required",
            "extensions": {
                "cred_protect": "NotRequested",
                "hmac_create_secret": "NotRequested",
                "appid": "NotRequested",
                "cred_props": "Ignored"
            },
            "attestation": { "data": "None", "metadata": "None" },
            "attestation_format": "none"
        }
    })
    .to_string()
}
