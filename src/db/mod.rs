//! Connecting to the store: SQLite (the embedded default) or Postgres.
//!
//! SQLite allows one writer at a time. Rather than let several pooled
//! connections race for the write lock (and surface "database is locked"),
//! Warden gives SQLite two pools: a single-connection *write* pool, so
//! writers queue in the application, and a *read* pool for concurrent
//! readers, which WAL mode lets run alongside the writer. Write transactions
//! also start with `BEGIN IMMEDIATE`, so another process (say `warden cleanup`
//! run by hand) is waited for through `busy_timeout` instead of failing a
//! transaction half-way. On Postgres both handles are the same pool.
//!
//! The SQLite file holds password hashes, session and token hashes and the
//! audit log, so it is private: Warden creates it 0600 before SQLite opens
//! it (SQLite gives the -wal and -shm files the main file's permissions),
//! and warns at start when an existing file is open to group or others.
//!
//! [`liveness`] answers the per-request "is this session alive?" read,
//! batched through the pool or, on a SQLite file, in place.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous},
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, RuntimeErr, Select, SelectThree, SelectTwo, SqliteTransactionMode, Topology,
    TransactionOptions, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::config::Config;

pub mod liveness;

/// Advisory lock key held while migrating ("warden" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7264_656e;

/// The store, with separate read and write handles (the same pool on Postgres).
#[derive(Clone, Debug)]
pub struct Db {
    read: DatabaseConnection,
    write: DatabaseConnection,
    sqlite: bool,
    /// The SQLite file, when the store is one (not in memory).
    sqlite_file: Option<PathBuf>,
}

impl Db {
    /// Connects to the configured database. Does not run migrations.
    pub async fn connect(config: &Config) -> Result<Self, DbErr> {
        let url = config.database_url.expose_secret().to_owned();
        let timeout = config.database_acquire_timeout;
        if config.is_sqlite() {
            if let Some(path) = sqlite_file(&url) {
                keep_private(&path, may_create(&url));
            }
            let write = connect_sqlite(&url, 1, timeout).await?;
            let read = connect_sqlite(&url, 4, timeout).await?;
            Ok(Self {
                read,
                write,
                sqlite: true,
                sqlite_file: sqlite_file(&url),
            })
        } else {
            let mut options = ConnectOptions::new(url);
            // A statement stuck behind a lock fails after the same bound as a
            // pool wait, and becomes SERVICE_UNAVAILABLE instead of a hang.
            let millis = timeout.as_millis().to_string();
            options.map_sqlx_postgres_opts(move |opts| {
                opts.options([
                    ("statement_timeout", millis.as_str()),
                    ("lock_timeout", millis.as_str()),
                ])
                .application_name("warden")
            });
            options
                .max_connections(config.database_max_connections)
                .min_connections(1)
                .acquire_timeout(timeout)
                .connect_timeout(timeout)
                // A ping only for connections idle long enough to have been
                // cut; a busy connection is not pinged before every query.
                .test_before_acquire_if_idle_for(Duration::from_secs(10))
                .sqlx_logging(false);
            let pool = Database::connect(options).await?;
            Ok(Self {
                read: pool.clone(),
                write: pool,
                sqlite: false,
                sqlite_file: None,
            })
        }
    }

    /// For reads that need no transaction.
    pub fn read(&self) -> &DatabaseConnection {
        &self.read
    }

    /// For single-statement writes.
    pub fn write(&self) -> &DatabaseConnection {
        &self.write
    }

    /// True on SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// The database file on SQLite; `None` on Postgres or in memory.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.sqlite {
            self.write
                .begin_with_options(TransactionOptions {
                    isolation_level: None,
                    access_mode: None,
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                })
                .await
        } else {
            self.write.begin().await
        }
    }

    /// Applies every pending migration.
    ///
    /// Several instances may start at once: the migrations run in one write
    /// transaction (holding SQLite's write lock, or a Postgres advisory
    /// lock), so one instance migrates and the others wait, then find
    /// nothing left to do. DDL is transactional on both, so a failed
    /// migration leaves nothing half-applied.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        let txn = self.begin().await?;
        if !self.sqlite {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await?;
        }
        Migrator::up(&txn, None).await?;
        txn.commit().await
    }

    /// A cheap round trip on each pool, for readiness: a stuck writer makes
    /// the instance unready even while reads still work.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.read.execute_unprepared("SELECT 1").await?;
        if self.sqlite {
            self.write.execute_unprepared("SELECT 1").await?;
        }
        Ok(())
    }
}

/// Opens a SQLite pool, trying again for up to `timeout` while the file is
/// busy. Two instances starting together on a new file both switch it to
/// WAL, and SQLite may answer that switch with SQLITE_BUSY at once rather
/// than wait on `busy_timeout`.
async fn connect_sqlite(
    url: &str,
    connections: u32,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match Database::connect(sqlite_options(url, connections, timeout)).await {
            Err(err) if sqlite_busy(&err) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            result => return result,
        }
    }
}

/// The file a SQLite URL names, unless the database lives in memory.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    (!in_memory).then(|| options.get_filename().to_owned())
}

/// True when the URL lets SQLite create a missing file (`mode=rwc`).
fn may_create(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("mode=rwc"))
    })
}

/// Creates the database file 0600 when it is missing and may be created,
/// so SQLite (which would create it 0644 under the usual umask) finds it
/// private, and gives its -wal and -shm files the same mode. Warns, once
/// per file, when the file or its -wal or -shm can be read or written by
/// group or others. Does not chmod an existing file: its mode may be the
/// operator's choice (a backup group), and the warning tells them.
fn keep_private(path: &Path, create: bool) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if create {
        // `create_new`: two instances starting together cannot both create
        // it, and an existing file (or symlink) is left alone. Any other
        // failure (no such directory) is SQLite's to report when it opens.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %file.display(),
                mode = format!("{mode:o}"),
                "the SQLite database file can be read or written by other users; chmod 600 it"
            );
        }
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, extended codes included.
fn sqlite_busy(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(sqlx))
    | DbErr::Exec(RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx))) = err
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db) = sqlx.as_ref() else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// `timeout` bounds both the wait for a pooled connection and SQLite's
/// wait for its write lock (`busy_timeout`).
fn sqlite_options(url: &str, connections: u32, timeout: Duration) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(timeout)
        // A local file has no network to lose: no ping before each query.
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                // FULL: a revocation that was acknowledged survives a power cut.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(timeout)
                .foreign_keys(true)
        });
    options
}

/// `one()` for lookups by a unique key, without the `LIMIT ?` sea-orm adds.
///
/// sea-orm binds `one()`'s `LIMIT 1` as a parameter, and SQLite treats a
/// bound LIMIT as plan-relevant: every re-bind expires the cached statement,
/// so it is parsed and planned again on every execution. Profiling `me`
/// showed that re-parse on the per-request session check. A lookup by a
/// unique key (or a key the schema keeps unique) returns at most one row
/// without a LIMIT, and the cached statement is reused.
pub trait FetchUnique {
    /// The row (or rows, for a join) the query returns.
    type Row: Send;

    /// Runs the query and returns its only row, if any.
    fn unique<C: ConnectionTrait>(
        self,
        conn: &C,
    ) -> impl std::future::Future<Output = Result<Option<Self::Row>, DbErr>> + Send;
}

impl<E> FetchUnique for Select<E>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    type Row = E::Model;

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<E::Model>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

impl<E, F, G, T> FetchUnique for SelectThree<E, F, G, T>
where
    E: EntityTrait,
    F: EntityTrait,
    G: EntityTrait,
    T: Topology + Send,
    E::Model: Send + Sync,
    F::Model: Send + Sync,
    G::Model: Send + Sync,
{
    type Row = (E::Model, Option<F::Model>, Option<G::Model>);

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<Self::Row>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

impl<E, F> FetchUnique for SelectTwo<E, F>
where
    E: EntityTrait,
    F: EntityTrait,
    E::Model: Send + Sync,
    F::Model: Send + Sync,
{
    type Row = (E::Model, Option<F::Model>);

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<Self::Row>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mode_rwc_lets_warden_create_the_file() {
        assert!(may_create("sqlite:///var/lib/warden.db?mode=rwc"));
        assert!(may_create("sqlite://w.db?cache=shared&mode=rwc"));
        assert!(!may_create("sqlite://w.db?mode=rw"));
        assert!(!may_create("sqlite://w.db"));
    }

    #[test]
    fn a_new_file_is_created_private_and_an_existing_one_is_left_as_it_is() {
        use std::os::unix::fs::PermissionsExt;
        let Ok(dir) = tempfile::tempdir() else {
            panic!("temp dir")
        };
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        let fresh = dir.path().join("fresh.db");
        keep_private(&fresh, true);
        assert_eq!(mode(&fresh), Some(0o600));
        let missing = dir.path().join("missing.db");
        keep_private(&missing, false);
        assert_eq!(mode(&missing), None);
        let shared = dir.path().join("shared.db");
        let _ = std::fs::write(&shared, b"");
        let _ = std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640));
        keep_private(&shared, true);
        assert_eq!(mode(&shared), Some(0o640));
    }

    #[test]
    fn the_sqlite_file_is_the_path_the_url_names_and_none_in_memory() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/warden/warden.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/warden/warden.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://warden.db?mode=rwc"),
            Some(PathBuf::from("warden.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://shared?mode=memory"), None);
    }
}
