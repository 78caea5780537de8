//! The SQLite refresh ceiling: the transaction shape of one refresh rotation
//! (`src/services/rotation/sqlite.rs`), in a tight loop on one connection, on a WAL
//! file with `synchronous=FULL`, on Warden's own schema (its migrations run
//! first). Nothing else: no HTTP, no GraphQL, no ORM, no pool.
//!
//! One transaction, as Warden does it for a winning `refresh`:
//! `BEGIN IMMEDIATE`; select the presented token (by its SHA-256) with its
//! session; claim it (`UPDATE … SET used_at WHERE id AND used_at IS NULL`);
//! touch the session (`UPDATE … WHERE revoked_at IS NULL`); insert the
//! successor (its hash, from the HMAC successor); insert the audit row;
//! `COMMIT`. SQLite has one writer, so one loop is the ceiling.
//!
//! ```sh
//! target/release/examples/sqlite_ceiling [--seconds 20] [--warmup 5] [--sessions 64] [--db PATH]
//! ```
//! Prints one JSON line: `{"tx_per_s":…, "transactions":…, "seconds":…, "p50_us":…, "p99_us":…}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    error::Error,
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

use chrono::TimeDelta;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sqlx::{
        self,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
        ConnectOptions as _, Row, SqliteConnection,
    },
    Database,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use warden::{
    auth::opaque_token::{self, SuccessorKey},
    clock::Clock,
};

struct Args {
    seconds: f64,
    warmup: f64,
    sessions: usize,
    db: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        seconds: 20.0,
        warmup: 5.0,
        sessions: 64,
        db: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse()?,
            "--warmup" => args.warmup = value.parse()?,
            "--sessions" => args.sessions = value.parse::<usize>()?.max(1),
            "--db" => args.db = Some(PathBuf::from(value)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// One session's chain: the token a client would present next.
struct Chain {
    session_id: Uuid,
    user_id: Uuid,
    token: SecretString,
}

async fn seed(
    conn: &mut SqliteConnection,
    clock: &Clock,
    n: usize,
) -> Result<Vec<Chain>, Box<dyn Error>> {
    let now = clock.now();
    let mut chains = Vec::with_capacity(n);
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    for i in 0..n {
        let (user_id, session_id) = (Uuid::now_v7(), Uuid::now_v7());
        let token = opaque_token::generate();
        sqlx::query(
            "INSERT INTO users (id, email, username, password_hash, role, created_at, last_login_at) \
             VALUES (?1, ?2, NULL, ?3, 'USER', ?4, NULL)",
        )
        .bind(user_id)
        .bind(format!("ceiling{i}@example.com"))
        .bind("$2b$04$".to_owned() + &"x".repeat(53))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, revoked_reason, ip, user_agent) \
             VALUES (?1, ?2, ?3, ?3, ?4, NULL, NULL, '127.0.0.1', 'sqlite_ceiling')",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .bind(now + TimeDelta::days(30))
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, expires_at, used_at) \
             VALUES (?1, ?2, ?3, NULL, ?4, ?5, NULL)",
        )
        .bind(Uuid::now_v7())
        .bind(session_id)
        .bind(opaque_token::hash(token.expose_secret()))
        .bind(now)
        .bind(now + TimeDelta::days(7))
        .execute(&mut *conn)
        .await?;
        chains.push(Chain {
            session_id,
            user_id,
            token,
        });
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(chains)
}

/// One rotation of `chain`, in one transaction. Returns the successor.
async fn rotate(
    conn: &mut SqliteConnection,
    clock: &Clock,
    key: &SuccessorKey,
    chain: &Chain,
) -> Result<SecretString, Box<dyn Error>> {
    let presented = chain.token.expose_secret();
    let now = clock.now();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let row = sqlx::query(
        "SELECT t.id, t.used_at, s.expires_at FROM refresh_tokens t \
         JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?1",
    )
    .bind(opaque_token::hash(presented))
    .fetch_one(&mut *conn)
    .await?;
    let token_id: Uuid = row.try_get(0)?;
    let claimed =
        sqlx::query("UPDATE refresh_tokens SET used_at = ?1 WHERE id = ?2 AND used_at IS NULL")
            .bind(now)
            .bind(token_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if claimed != 1 {
        return Err("token already used: the chain forked".into());
    }
    let successor = key.successor(presented);
    sqlx::query("UPDATE sessions SET last_used_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
        .bind(now)
        .bind(chain.session_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, expires_at, used_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
    )
    .bind(Uuid::now_v7())
    .bind(chain.session_id)
    .bind(opaque_token::hash(successor.expose_secret()))
    .bind(token_id)
    .bind(now)
    .bind(now + TimeDelta::days(7))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO audit_events (at, kind, severity, user_id, session_id, ip, user_agent, detail) \
         VALUES (?1, 'TOKEN_REFRESHED', 0, ?2, ?3, '127.0.0.1', 'sqlite_ceiling', NULL)",
    )
    .bind(now)
    .bind(chain.user_id)
    .bind(chain.session_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(successor)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let path = args
        .db
        .clone()
        .unwrap_or_else(|| tmp.path().join("ceiling.db"));
    let url = format!("sqlite://{}?mode=rwc", path.display());

    // Warden's schema, from Warden's migrations.
    let orm = Database::connect(&url).await?;
    Migrator::up(&orm, None).await?;
    orm.close().await?;

    // The connection options Warden's writer uses (src/db.rs).
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .connect()
        .await?;

    let clock = Clock::system();
    let key = SuccessorKey::new(opaque_token::random_bytes(32));
    let mut chains = seed(&mut conn, &clock, args.sessions).await?;

    let warmup_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let mut i = 0usize;
    while Instant::now() < warmup_until {
        let idx = i % chains.len();
        chains[idx].token = rotate(&mut conn, &clock, &key, &chains[idx]).await?;
        i += 1;
    }

    let mut latencies: Vec<u32> = Vec::with_capacity(200_000);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.seconds);
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        let idx = i % chains.len();
        chains[idx].token = rotate(&mut conn, &clock, &key, &chains[idx]).await?;
        latencies.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
        i += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let n = latencies.len();
    println!(
        "{{\"tx_per_s\":{:.1},\"transactions\":{},\"seconds\":{:.3},\"p50_us\":{},\"p99_us\":{}}}",
        n as f64 / elapsed,
        n,
        elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    Ok(())
}
