//! `users`: accounts created over the last year, oldest first (so the
//! UUIDv7 primary key follows creation order, as for accounts Warden
//! creates). Index 0.. are the heavy users, then the administrators, then
//! everyone else, named as `bench/seed_users.sql` names W14's accounts: a
//! skewed first and last name in one of five shapes, the row number, one of
//! ten example domains. 70% have a username; 75% logged in; 80% verified.

use rand::Rng;
use sea_orm::DatabaseConnection;

use crate::{
    between, ms_time, names,
    sink::{Cell, Table},
    uuid7, Ctx, SeedError, BCRYPT_COST, DAY, PASSWORD,
};

/// `Person::flags`: a confirmed TOTP factor.
pub const MFA: u8 = 1;
/// `Person::flags`: disabled by an administrator.
pub const DISABLED: u8 = 2;
/// `Person::flags`: the address is verified.
pub const VERIFIED: u8 = 4;

/// What later tables need of an account.
pub struct Person {
    pub id: uuid::Uuid,
    pub created_ms: i64,
    pub email: String,
    pub flags: u8,
    /// When its factor was confirmed (MFA users).
    pub mfa_ms: i64,
}

pub fn heavy_email(i: u64) -> String {
    format!("seed-heavy-{}@seed.example.com", i + 1)
}

pub fn admin_email(i: u64) -> String {
    format!("seed-admin-{}@seed.example.com", i + 1)
}

/// The first account created after `ms` is at this index or later; every
/// account below it was created before `ms`.
pub fn created_before(ctx: &Ctx<'_>, ms: i64) -> u64 {
    let (start, slot) = span(ctx);
    let k = (ms - start).max(0) / slot;
    u64::try_from(k).unwrap_or(0).min(ctx.plan.users)
}

/// Accounts are created over `[now - 365d, now - 1d)`, one slot each.
fn span(ctx: &Ctx<'_>) -> (i64, i64) {
    let start = ctx.now_ms - 365 * DAY;
    let users = i64::try_from(ctx.plan.users.max(1)).unwrap_or(i64::MAX);
    (start, (364 * DAY / users).max(1))
}

const COLUMNS: &[&str] = &[
    "id",
    "email",
    "username",
    "password_hash",
    "role",
    "created_at",
    "last_login_at",
    "email_verified_at",
    "mfa_enabled_at",
    "disabled_at",
    "disabled_reason",
];

fn initcap(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Writes the accounts; returns them in index order.
pub async fn write(db: &DatabaseConnection, ctx: &Ctx<'_>) -> Result<Vec<Person>, SeedError> {
    let plan = ctx.plan;
    let mut rng = ctx.rng(1);
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rng, &mut salt);
    let hash = bcrypt::hash_with_salt(PASSWORD, BCRYPT_COST, salt)?.to_string();
    let (start, slot) = span(ctx);
    let special = plan.heavy_users + plan.admins;
    let mut regular_left = plan.users - special;
    let (mut mfa_left, mut disabled_left) = (plan.mfa_users, plan.disabled_users);
    let mut table = Table::open(db, "users", COLUMNS).await?;
    let mut people = Vec::with_capacity(usize::try_from(plan.users).unwrap_or(0));
    for i in 0..plan.users {
        let row = i64::try_from(i).unwrap_or(0);
        let created = start + row * slot + rng.random_range(0..slot);
        let id = uuid7(&mut rng, created);
        let [u1, u2, u3, u4, u5]: [f64; 5] = std::array::from_fn(|_| rng.random());
        let first = names::FIRST[(names::FIRST.len() as f64 * u1 * u1) as usize];
        let last = names::LAST[(names::LAST.len() as f64 * u2 * u2) as usize];
        let domain = names::DOMAIN[(names::DOMAIN.len() as f64 * u3 * u3 * u3) as usize];
        let (email, role) = if i < plan.heavy_users {
            (heavy_email(i), "USER")
        } else if i < special {
            (admin_email(i - plan.heavy_users), "ADMIN")
        } else {
            let name = match rng.random_range(0..5) {
                0 => format!("{first}.{last}"),
                1 => first.to_owned(),
                2 => format!("{}{last}", &first[..1]),
                3 => format!("{last}.{first}"),
                _ => format!("{first}_{last}"),
            };
            (format!("{name}{}@{domain}", i + 1), "USER")
        };
        let username =
            (u4 < 0.7).then(|| format!("{}{}{}", initcap(first), initcap(last), i % 10_000));
        let mut flags = 0;
        if i < special || u5 < 0.8 {
            flags |= VERIFIED;
        }
        if i >= special {
            // Three-way draw: exact counts of factors and disabled accounts.
            let r = rng.random_range(0..regular_left);
            if r < mfa_left {
                flags |= MFA;
                mfa_left -= 1;
            } else if r < mfa_left + disabled_left {
                flags |= DISABLED;
                disabled_left -= 1;
            }
            regular_left -= 1;
        }
        let last_login =
            (i < special || u4 < 0.75).then(|| between(&mut rng, created, ctx.now_ms - 1000));
        let mfa_ms = between(&mut rng, created + DAY, ctx.now_ms - DAY);
        let disabled_ms = between(&mut rng, created + DAY, ctx.now_ms - DAY);
        table
            .push(vec![
                id.into(),
                email.clone().into(),
                username.into(),
                hash.clone().into(),
                role.into(),
                ms_time(created).into(),
                last_login.map(ms_time).into(),
                (flags & VERIFIED != 0)
                    .then(|| ms_time(created + 10 * 60_000))
                    .into(),
                (flags & MFA != 0).then(|| ms_time(mfa_ms)).into(),
                (flags & DISABLED != 0).then(|| ms_time(disabled_ms)).into(),
                Cell::from((flags & DISABLED != 0).then_some("bench seed")),
            ])
            .await?;
        people.push(Person {
            id,
            created_ms: created,
            email,
            flags,
            mfa_ms,
        });
    }
    table.finish().await?;
    Ok(people)
}
