//! `audit_events`: the last 90 days (`WARDEN_AUDIT_RETENTION`) of the log,
//! oldest first, so ids follow time as when Warden appends them. Kinds,
//! severities and details are those Warden writes (`domain::AuditEventKind`
//! and the services' `json!` details); the heavy users get exactly
//! [`Plan::heavy_audit_events`](crate::Plan::heavy_audit_events) each.
//! Sessions named by events are sessions of their day, long cleaned up;
//! failed logins for unknown addresses name no user, as Warden's do.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    agent, ip, ms_time,
    sink::{Cell, Table},
    users::{created_before, Person},
    uuid7, Ctx, SeedError, DAY, MINUTE,
};

const COLUMNS: &[&str] = &[
    "at",
    "kind",
    "severity",
    "user_id",
    "session_id",
    "ip",
    "user_agent",
    "detail",
];

/// (kind, severity, weight in ‰, carries a session).
const KINDS: [(&str, i16, u32, bool); 18] = [
    ("TOKEN_REFRESHED", 0, 540, true),
    ("LOGIN_SUCCEEDED", 0, 200, true),
    ("LOGIN_FAILED", 1, 60, false),
    ("SESSION_REVOKED", 0, 50, true),
    ("AUDIT_LOG_VIEWED", 0, 30, true),
    ("API_KEY_USED", 0, 20, false),
    ("REFRESH_FAILED", 1, 15, true),
    ("EMAIL_VERIFICATION_SENT", 0, 15, false),
    ("EMAIL_VERIFIED", 0, 15, false),
    ("RATE_LIMITED", 2, 10, false),
    ("PASSWORD_CHANGED", 1, 10, true),
    ("PASSWORD_RESET_REQUESTED", 1, 10, false),
    ("PASSWORD_RESET", 1, 5, false),
    ("MFA_FAILED", 2, 5, false),
    ("ALL_SESSIONS_REVOKED", 1, 5, true),
    ("MFA_ENABLED", 1, 4, true),
    ("API_KEY_CREATED", 1, 4, true),
    ("ACCOUNT_LOCKED", 2, 2, false),
];

fn detail(rng: &mut ChaCha8Rng, kind: &str, email: &str) -> Option<Value> {
    Some(match kind {
        "LOGIN_FAILED" => json!({ "reason": "wrong_password" }),
        "SESSION_REVOKED" => json!({ "reason": "logout" }),
        "AUDIT_LOG_VIEWED" => json!({ "returned": rng.random_range(1..=50), "scope": "own" }),
        "API_KEY_USED" => {
            json!({ "api_key_id": Uuid::from_bytes(rng.random()), "prefix": format!("wdn_{:08x}", rng.random::<u32>()) })
        }
        "REFRESH_FAILED" => json!({ "reason": "expired" }),
        "RATE_LIMITED" => json!({ "rule": "login_ip" }),
        "PASSWORD_CHANGED" => json!({ "other_sessions_ended": rng.random_range(0..4) }),
        "PASSWORD_RESET" => json!({ "sessions_ended": rng.random_range(0..4) }),
        "MFA_FAILED" => json!({ "operation": "completeLogin", "method": "TOTP" }),
        "ALL_SESSIONS_REVOKED" => json!({ "count": rng.random_range(1..6), "scope": "all" }),
        "MFA_ENABLED" => json!({ "method": "TOTP" }),
        "API_KEY_CREATED" => {
            json!({ "api_key_id": Uuid::from_bytes(rng.random()), "prefix": format!("wdn_{:08x}", rng.random::<u32>()), "name": "ci", "scopes": "USER" })
        }
        "ACCOUNT_LOCKED" => json!({ "email": email, "scope": "client" }),
        _ => return None,
    })
}

/// Writes the log.
pub async fn write(
    db: &DatabaseConnection,
    ctx: &Ctx<'_>,
    people: &[Person],
) -> Result<u64, SeedError> {
    let plan = ctx.plan;
    let mut rng = ctx.rng(5);
    let mut table = Table::open(db, "audit_events", COLUMNS).await?;
    let start = ctx.now_ms - 90 * DAY + MINUTE;
    let span = ctx.now_ms - MINUTE - start;
    let n = plan.audit_events;
    let (mut heavy_left, mut left) = (plan.heavy_users * plan.heavy_audit_events, n);
    let mut heavy_given = 0;
    let total: u32 = KINDS.iter().map(|k| k.2).sum();
    for j in 0..n {
        let slot = |j: u64| {
            start + i64::try_from(u128::from(j) * span as u128 / u128::from(n.max(1))).unwrap_or(0)
        };
        let at = slot(j) + between_slot(&mut rng, slot(j + 1) - slot(j));
        let heavy = crate::pick(&mut rng, &mut heavy_left, &mut left);
        let mut roll = rng.random_range(0..total);
        let mut kind = KINDS[0];
        for k in KINDS {
            if roll < k.2 {
                kind = k;
                break;
            }
            roll -= k.2;
        }
        let user = if heavy {
            heavy_given += 1;
            people.get(usize::try_from((heavy_given - 1) % plan.heavy_users).unwrap_or(0))
        } else if kind.0 == "LOGIN_FAILED" && rng.random_range(0..3) == 0 {
            // An address with no account: no user, the address in the detail.
            None
        } else {
            let lo = plan.heavy_users;
            let hi = created_before(ctx, at).max(lo + 1);
            people.get(usize::try_from(rng.random_range(lo..hi)).unwrap_or(0))
        };
        let detail = match user {
            None => Some(
                json!({ "reason": "unknown_email", "email": format!("nobody{}@example.net", rng.random_range(0..100_000)) }),
            ),
            Some(person) => detail(&mut rng, kind.0, &person.email),
        };
        let session = if kind.3 && user.is_some() {
            let began = at - rng.random_range(0..DAY);
            Some(uuid7(&mut rng, began))
        } else {
            None
        };
        table
            .push(vec![
                ms_time(at).into(),
                kind.0.into(),
                kind.1.into(),
                user.map(|p| p.id).into(),
                session.into(),
                ip(&mut rng).into(),
                agent(&mut rng).into(),
                Cell::from(detail),
            ])
            .await?;
    }
    Ok(table.finish().await?)
}

fn between_slot(rng: &mut ChaCha8Rng, width: i64) -> i64 {
    if width > 0 {
        rng.random_range(0..width)
    } else {
        0
    }
}
