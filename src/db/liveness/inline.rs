//! The session check on a SQLite file, answered on the calling thread.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so a
//! query through it is a hand-off to that thread and back, and the request
//! that asked is polled a second time once the answer is in, behind every
//! other request the executor has in hand. Measured on `me` at 70 % of its
//! maximum rate, that second trip was most of the gap in median latency to
//! the GraphQL + JWT ceiling.
//!
//! The check is one lookup by primary key over pages that are almost always
//! in memory: a few microseconds, less than serialising the response. So on
//! a SQLite file it is answered in place, with rusqlite, on connections kept
//! for this alone. They are read-only (`query_only`) and never wait for a
//! lock (`busy_timeout` 0): in WAL mode a reader does not wait for the
//! writer, and each statement reads the latest commit, so a logout is seen
//! by the very next request as before. Anything unexpected (SQLITE_BUSY, a
//! value that does not decode) is returned as an error, and the caller falls
//! back to the batched query through sqlx, with the timeouts and error
//! mapping of every other query.
//!
//! A value that does not decode means this module's idea of how sqlx stores
//! a type is wrong (a schema change, a row written by another tool): that
//! will not get better on the next request. The first one switches the
//! in-place check off for good, with one warning, so that every later
//! request does not pay for a failed read before the batched one.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use chrono::{DateTime, Utc};
use entity::{api_key, user};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use uuid::Uuid;

/// The owner of a live session that belongs to the given user. Expiry is
/// compared in Rust, on the parsed time, not as text.
const OWNER_OF_SESSION: &str = concat!(
    "SELECT ",
    entity::user_columns!(),
    ", s.expires_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL"
);

/// An API key by the hash of its secret, with its owner (none if the owner
/// is gone). Whether the key is live is decided by the caller.
const KEY_AND_OWNER: &str = concat!(
    "SELECT k.id, k.user_id, k.name, k.prefix, k.secret_hash, k.scopes, k.created_at, \
     k.last_used_at, k.expires_at, k.revoked_at, ",
    entity::user_columns!(),
    " FROM api_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.secret_hash = ?1"
);

/// Connections kept between checks; more are opened when more threads check
/// at once, and dropped afterwards.
const KEPT_CONNECTIONS: usize = 8;

/// Why an inline check gave no answer; the caller asks sqlx instead.
#[derive(Debug, thiserror::Error)]
pub enum InlineError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("undecodable {0} in an in-place read")]
    Decode(&'static str),
    /// Switched off after a value did not decode.
    #[error("in-place reads of this kind are switched off")]
    Off,
}

/// Read-only connections to one SQLite file, for session checks.
pub struct InlineChecks {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set by the first value of a session check that does not decode.
    sessions_off: AtomicBool,
    /// The same for the API key reads.
    keys_off: AtomicBool,
}

impl std::fmt::Debug for InlineChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineChecks")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl InlineChecks {
    /// Opens one connection to `path` (which must exist and be migrated) to
    /// find out now, not on the first request, whether this works at all.
    pub fn open(path: &Path) -> Result<Self, InlineError> {
        let first = connect(path)?;
        first.prepare_cached(OWNER_OF_SESSION)?;
        first.prepare_cached(KEY_AND_OWNER)?;
        Ok(Self {
            path: path.to_owned(),
            idle: Mutex::new(vec![first]),
            sessions_off: AtomicBool::new(false),
            keys_off: AtomicBool::new(false),
        })
    }

    /// The owner of `session` if the session is alive at `now` and belongs
    /// to `user`; `None` otherwise.
    pub fn owner(
        &self,
        session: Uuid,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<user::Model>, InlineError> {
        self.read(&self.sessions_off, |conn| lookup(conn, session, user, now))
    }

    /// The API key whose secret hashes to `hash`, with its owner (`None`
    /// if the owner is gone); `None` if no key has that hash.
    pub fn key(
        &self,
        hash: &str,
    ) -> Result<Option<(api_key::Model, Option<user::Model>)>, InlineError> {
        self.read(&self.keys_off, |conn| {
            let mut statement = conn.prepare_cached(KEY_AND_OWNER)?;
            let row = statement
                .query_row([hash], |row| Ok(decode_key(row)))
                .optional()?;
            row.transpose()
        })
    }

    /// Runs `read` on a kept connection (or a new one), and switches its
    /// kind of in-place read off (`off`) at the first value that does not
    /// decode.
    fn read<T>(
        &self,
        off: &AtomicBool,
        read: impl FnOnce(&Connection) -> Result<T, InlineError>,
    ) -> Result<T, InlineError> {
        if off.load(Ordering::Relaxed) {
            return Err(InlineError::Off);
        }
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match kept {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let answer = read(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < KEPT_CONNECTIONS {
                idle.push(conn);
            }
        }
        if let Err(InlineError::Decode(what)) = &answer {
            if !off.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    value = what,
                    "an in-place read (a session check or an API key) read a value it cannot \
                     decode; reads of that kind go through the pool from now on"
                );
            }
        }
        answer
    }
}

fn connect(path: &Path) -> Result<Connection, InlineError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

fn lookup(
    conn: &Connection,
    session: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<user::Model>, InlineError> {
    let mut statement = conn.prepare_cached(OWNER_OF_SESSION)?;
    let row = statement
        .query_row(
            (session.as_bytes().as_slice(), user.as_bytes().as_slice()),
            |row| Ok(decode(row)),
        )
        .optional()?;
    match row {
        None => Ok(None),
        Some(decoded) => {
            let (owner, expires_at) = decoded?;
            Ok((expires_at > now).then_some(owner))
        }
    }
}

/// A row of [`OWNER_OF_SESSION`], decoded as sqlx stores these types:
/// UUIDs as 16-byte blobs, times as RFC 3339 text.
fn decode(row: &Row<'_>) -> Result<(user::Model, DateTime<Utc>), InlineError> {
    let owner = decode_user(row, 0)?;
    let expires_at = time(&text(row, 11, "expiry")?, "expiry")?;
    Ok((owner, expires_at))
}

/// A row of [`KEY_AND_OWNER`]: the key's ten columns, then its owner's (all
/// NULL when the owner is gone).
fn decode_key(row: &Row<'_>) -> Result<(api_key::Model, Option<user::Model>), InlineError> {
    let key = api_key::Model {
        id: uuid(row, 0, "key id")?,
        user_id: uuid(row, 1, "key owner")?,
        name: text(row, 2, "key name")?,
        prefix: text(row, 3, "key prefix")?,
        secret_hash: text(row, 4, "key hash")?,
        scopes: text(row, 5, "key scopes")?,
        created_at: time(&text(row, 6, "key created")?, "key created")?,
        last_used_at: optional_time(row, 7, "key last used")?,
        expires_at: optional_time(row, 8, "key expiry")?,
        revoked_at: optional_time(row, 9, "key revoked")?,
    };
    let owner = match row
        .get_ref(10)
        .map_err(|_| InlineError::Decode("user id"))?
    {
        rusqlite::types::ValueRef::Null => None,
        _ => Some(decode_user(row, 10)?),
    };
    Ok((key, owner))
}

/// The columns of `entity::user_columns!()`, from column `at` on.
fn decode_user(row: &Row<'_>, at: usize) -> Result<user::Model, InlineError> {
    Ok(user::Model {
        id: uuid(row, at, "user id")?,
        email: text(row, at + 1, "email")?,
        username: optional_text(row, at + 2, "username")?,
        password_hash: text(row, at + 3, "password hash")?,
        role: text(row, at + 4, "role")?,
        created_at: time(&text(row, at + 5, "created at")?, "created at")?,
        last_login_at: optional_time(row, at + 6, "last login")?,
        email_verified_at: optional_time(row, at + 7, "email verified")?,
        mfa_enabled_at: optional_time(row, at + 8, "mfa enabled")?,
        disabled_at: optional_time(row, at + 9, "disabled at")?,
        disabled_reason: optional_text(row, at + 10, "disabled reason")?,
    })
}

fn uuid(row: &Row<'_>, i: usize, what: &'static str) -> Result<Uuid, InlineError> {
    row.get_ref(i)
        .ok()
        .and_then(|v| v.as_blob().ok())
        .and_then(|b| Uuid::from_slice(b).ok())
        .ok_or(InlineError::Decode(what))
}

fn text(row: &Row<'_>, i: usize, what: &'static str) -> Result<String, InlineError> {
    row.get::<_, String>(i)
        .map_err(|_| InlineError::Decode(what))
}

fn optional_text(
    row: &Row<'_>,
    i: usize,
    what: &'static str,
) -> Result<Option<String>, InlineError> {
    row.get::<_, Option<String>>(i)
        .map_err(|_| InlineError::Decode(what))
}

fn time(value: &str, what: &'static str) -> Result<DateTime<Utc>, InlineError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| InlineError::Decode(what))
}

fn optional_time(
    row: &Row<'_>,
    i: usize,
    what: &'static str,
) -> Result<Option<DateTime<Utc>>, InlineError> {
    optional_text(row, i, what)?
        .map(|value| time(&value, what))
        .transpose()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use entity::session;
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, Database, EntityTrait, IntoActiveModel, QueryFilter,
    };

    use super::*;
    use crate::clock::Clock;

    /// A migrated SQLite file with one user, written through sea-orm as
    /// Warden writes it, and a way to add sessions.
    struct Store {
        _dir: tempfile::TempDir,
        path: PathBuf,
        db: sea_orm::DatabaseConnection,
        user: user::Model,
    }

    impl Store {
        async fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("warden.db");
            let url = format!("sqlite://{}?mode=rwc", path.display());
            let db = Database::connect(&url).await.expect("connect");
            Migrator::up(&db, None).await.expect("migrate");
            let now = Clock::system().now();
            let user = user::Model {
                id: Uuid::now_v7(),
                email: "ada@example.com".into(),
                username: Some("ada".into()),
                password_hash: "$2b$04$abcdefghijklmnopqrstuu5mPcDPQEFQn6bmoTn9CNJsVZ7lcbCGy"
                    .into(),
                role: "USER".into(),
                created_at: now - TimeDelta::days(3),
                last_login_at: Some(now - TimeDelta::microseconds(1_234_567)),
                email_verified_at: Some(now - TimeDelta::microseconds(7_654_321)),
                mfa_enabled_at: Some(now - TimeDelta::microseconds(2_345_678)),
                disabled_at: None,
                disabled_reason: None,
            };
            user.clone()
                .into_active_model()
                .insert(&db)
                .await
                .expect("user");
            Self {
                _dir: dir,
                path,
                db,
                user,
            }
        }

        async fn session(&self, expires_in: TimeDelta, revoked: bool) -> Uuid {
            let now = Clock::system().now();
            let id = Uuid::now_v7();
            session::Model {
                id,
                user_id: self.user.id,
                created_at: now,
                last_used_at: now,
                expires_at: now + expires_in,
                revoked_at: revoked.then_some(now),
                revoked_reason: revoked.then(|| "LOGOUT".into()),
                ip: Some("127.0.0.1".into()),
                user_agent: Some("test".into()),
                method: "PASSWORD".into(),
                amr: "pwd".into(),
            }
            .into_active_model()
            .insert(&self.db)
            .await
            .expect("session");
            id
        }
    }

    #[tokio::test]
    async fn a_live_session_yields_its_owner_exactly_as_sea_orm_reads_it() {
        let store = Store::new().await;
        let live = store.session(TimeDelta::hours(1), false).await;
        let checks = InlineChecks::open(&store.path).expect("open");
        let owner = checks
            .owner(live, store.user.id, Clock::system().now())
            .expect("inline check");
        let stored = user::Entity::find_by_id(store.user.id)
            .one(&store.db)
            .await
            .expect("read back");
        assert_eq!(owner, stored);
        assert_eq!(owner, Some(store.user.clone()));
    }

    /// An API key with every optional time set, and one with none, read in
    /// place exactly as sea-orm reads it with its owner; an unknown hash
    /// finds nothing.
    #[tokio::test]
    async fn an_api_key_and_its_owner_read_in_place_exactly_as_sea_orm_reads_them() {
        let store = Store::new().await;
        let now = Clock::system().now();
        let keys = [
            (
                "a".repeat(64),
                Some(now - TimeDelta::microseconds(3_141_592)),
                Some(now + TimeDelta::days(30)),
                Some(now - TimeDelta::seconds(5)),
            ),
            ("b".repeat(64), None, None, None),
        ];
        for (i, (hash, last_used_at, expires_at, revoked_at)) in keys.iter().enumerate() {
            api_key::Model {
                id: Uuid::now_v7(),
                user_id: store.user.id,
                name: format!("script {i}"),
                prefix: format!("wdn_{i}"),
                secret_hash: hash.clone(),
                scopes: "USER ADMIN".into(),
                created_at: now - TimeDelta::days(1),
                last_used_at: *last_used_at,
                expires_at: *expires_at,
                revoked_at: *revoked_at,
            }
            .into_active_model()
            .insert(&store.db)
            .await
            .expect("key");
        }
        let checks = InlineChecks::open(&store.path).expect("open");
        for (hash, ..) in &keys {
            let in_place = checks.key(hash).expect("in place");
            let stored = api_key::Entity::find()
                .filter(api_key::Column::SecretHash.eq(hash.as_str()))
                .find_also_related(user::Entity)
                .one(&store.db)
                .await
                .expect("read back");
            assert!(in_place.is_some());
            assert_eq!(in_place, stored);
        }
        assert_eq!(checks.key(&"c".repeat(64)).expect("in place"), None);
    }

    #[tokio::test]
    async fn revoked_expired_unknown_or_someone_elses_sessions_yield_nobody() {
        let store = Store::new().await;
        let checks = InlineChecks::open(&store.path).expect("open");
        let now = Clock::system().now();
        let revoked = store.session(TimeDelta::hours(1), true).await;
        let expired = store.session(TimeDelta::seconds(-1), false).await;
        let live = store.session(TimeDelta::hours(1), false).await;
        for (session, user) in [
            (revoked, store.user.id),
            (expired, store.user.id),
            (Uuid::now_v7(), store.user.id),
            (live, Uuid::now_v7()),
        ] {
            assert_eq!(checks.owner(session, user, now).expect("check"), None);
        }
        // The same live session a moment after it expires.
        let later = now + TimeDelta::hours(2);
        assert_eq!(
            checks.owner(live, store.user.id, later).expect("check"),
            None
        );
        assert!(checks
            .owner(live, store.user.id, now)
            .expect("check")
            .is_some());
    }

    #[tokio::test]
    async fn a_revocation_committed_elsewhere_is_seen_by_the_next_check() {
        let store = Store::new().await;
        let checks = InlineChecks::open(&store.path).expect("open");
        let live = store.session(TimeDelta::hours(1), false).await;
        assert!(checks
            .owner(live, store.user.id, Clock::system().now())
            .expect("check")
            .is_some());
        let mut revoke = session::Entity::find_by_id(live)
            .one(&store.db)
            .await
            .expect("read")
            .expect("row")
            .into_active_model();
        revoke.revoked_at = sea_orm::Set(Some(Clock::system().now()));
        revoke.update(&store.db).await.expect("revoke");
        assert_eq!(
            checks
                .owner(live, store.user.id, Clock::system().now())
                .expect("check"),
            None
        );
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_switches_the_in_place_check_off() {
        let store = Store::new().await;
        let checks = InlineChecks::open(&store.path).expect("open");
        let now = Clock::system().now();
        let good = store.session(TimeDelta::hours(1), false).await;
        let odd = store.session(TimeDelta::hours(1), false).await;
        assert!(checks
            .owner(good, store.user.id, now)
            .expect("check")
            .is_some());
        // An expiry another tool wrote in a format sqlx does not write.
        let writer = Connection::open(&store.path).expect("writer");
        writer
            .execute(
                "UPDATE sessions SET expires_at = 'next tuesday' WHERE id = ?1",
                [odd.as_bytes().as_slice()],
            )
            .expect("odd expiry");
        assert!(matches!(
            checks.owner(odd, store.user.id, now),
            Err(InlineError::Decode("expiry"))
        ));
        // The good session is not read in place any more either.
        assert!(matches!(
            checks.owner(good, store.user.id, now),
            Err(InlineError::Off)
        ));
    }

    #[test]
    fn a_file_that_is_not_a_warden_database_is_refused_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.db");
        Connection::open(&path).expect("create");
        assert!(InlineChecks::open(&path).is_err());
    }
}
