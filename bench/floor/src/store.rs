//! The session and its user, read by primary key with Warden's liveness
//! conditions (`src/db/liveness.rs`, `src/db/liveness/inline.rs`): the
//! session exists, belongs to the token's `sub`, is not revoked
//! (`revoked_at IS NULL`), and its `expires_at` is after now. Nothing else:
//! a disabled account has its sessions revoked when it is disabled, and
//! Warden's check does not read `disabled_at` either.
//!
//! Only the columns `me { id email role }` needs are read (Warden reads and
//! decodes the whole user row).
//!
//! * SQLite: in place, on the executor thread, with rusqlite: one
//!   connection per thread (`thread_local`), opened as Warden opens its
//!   in-place connections (read-write file handle, `query_only`,
//!   `busy_timeout` 0, the file already in WAL mode, which Warden sets), and
//!   one cached prepared statement. `expires_at` is sqlx's RFC 3339 text and
//!   is compared parsed, as Warden compares it. A failed read is an error
//!   (Warden would ask its sqlx pool instead).
//! * Postgres: one round trip per request through an sqlx pool: one
//!   prepared statement (sqlx caches it per connection) joining session and
//!   user, expiry compared in SQL against the `now` sent with it. No ping
//!   before a query.

use std::{
    cell::RefCell,
    error::Error,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sqlx::{postgres::PgPoolOptions, PgPool};
use uuid::Uuid;

/// The session's owner, as `me { id email role }` shows it.
#[derive(Debug)]
pub struct Owner {
    pub id: Uuid,
    pub email: String,
    /// `ADMIN`, or `USER` for anything else (Warden's `Role::from_stored`).
    pub role: &'static str,
}

/// Why the store gave no answer.
#[derive(Debug)]
pub enum StoreError {
    Sqlite(rusqlite::Error),
    Postgres(sqlx::Error),
    /// A value that is not what Warden writes.
    Decode(&'static str),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(err) => write!(f, "sqlite: {err}"),
            Self::Postgres(err) => write!(f, "postgres: {err}"),
            Self::Decode(what) => write!(f, "undecodable {what}"),
        }
    }
}

impl Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err)
    }
}

const SQLITE_OWNER: &str = "SELECT u.id, u.email, u.role, s.expires_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL";

const POSTGRES_OWNER: &str = "SELECT u.id, u.email, u.role \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3";

thread_local! {
    /// This executor thread's connection to the SQLite file.
    static SQLITE: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Where sessions are read.
pub enum Store {
    Sqlite(PathBuf),
    Postgres(PgPool),
}

impl Store {
    /// Opens the store a Warden `WARDEN_DATABASE_URL` names, and checks now
    /// that the statement prepares (the file or database is Warden's).
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, Box<dyn Error>> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .min_connections(1)
                .test_before_acquire(false)
                .connect(url)
                .await?;
            sqlx::query(POSTGRES_OWNER)
                .bind(Uuid::nil())
                .bind(Uuid::nil())
                .bind(now())
                .fetch_optional(&pool)
                .await?;
            return Ok(Self::Postgres(pool));
        }
        let path = sqlite_path(url).ok_or("DATABASE_URL must be sqlite://FILE or postgres://…")?;
        connect(&path)?.prepare(SQLITE_OWNER)?;
        Ok(Self::Sqlite(path))
    }

    /// What kind of store, for the start-up line.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite, in place",
            Self::Postgres(_) => "Postgres, one round trip",
        }
    }

    /// The owner of `session` if it is alive at `now` and belongs to `user`.
    pub async fn owner(
        &self,
        session: Uuid,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Owner>, StoreError> {
        match self {
            Self::Sqlite(path) => sqlite_owner(path, session, user, now),
            Self::Postgres(pool) => {
                let row: Option<(Uuid, String, String)> = sqlx::query_as(POSTGRES_OWNER)
                    .bind(session)
                    .bind(user)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
                    .map_err(StoreError::Postgres)?;
                Ok(row.map(|(id, email, role)| Owner {
                    id,
                    email,
                    role: role_of(&role),
                }))
            }
        }
    }
}

/// The wall clock. Warden reads time through its injected `Clock` so tests
/// can move it; this harness has no tests that would, and no clock to inject.
#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

fn role_of(stored: &str) -> &'static str {
    if stored == "ADMIN" {
        "ADMIN"
    } else {
        "USER"
    }
}

/// The file of `sqlite://FILE?…` or `sqlite:FILE?…`; none in memory.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    let in_memory = file.is_empty() || file == ":memory:" || url.contains("mode=memory");
    (!in_memory).then(|| PathBuf::from(file))
}

/// As Warden's in-place checks open theirs (`inline.rs`).
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn sqlite_owner(
    path: &Path,
    session: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Owner>, StoreError> {
    SQLITE.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| StoreError::Decode("a re-entered connection"))?;
        let conn = match slot.take() {
            Some(conn) => conn,
            None => connect(path)?,
        };
        let answer = lookup(&conn, session, user, now);
        // A connection that failed is not kept: the next request opens anew.
        if answer.is_ok() {
            *slot = Some(conn);
        }
        answer
    })
}

fn lookup(
    conn: &Connection,
    session: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Owner>, StoreError> {
    let mut statement = conn.prepare_cached(SQLITE_OWNER)?;
    let row = statement
        .query_row(
            (session.as_bytes().as_slice(), user.as_bytes().as_slice()),
            |row| {
                let id: [u8; 16] = row.get(0)?;
                let email: String = row.get(1)?;
                let role = role_of(row.get_ref(2)?.as_str()?);
                let expires_at = DateTime::parse_from_rfc3339(row.get_ref(3)?.as_str()?)
                    .map(|t| t.with_timezone(&Utc))
                    .ok();
                Ok((id, email, role, expires_at))
            },
        )
        .optional()?;
    let Some((id, email, role, expires_at)) = row else {
        return Ok(None);
    };
    let expires_at = expires_at.ok_or(StoreError::Decode("expiry"))?;
    Ok((expires_at > now).then(|| Owner {
        id: Uuid::from_bytes(id),
        email,
        role,
    }))
}
