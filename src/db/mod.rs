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
//!
//! Postgres may not be up yet when Warden starts (a compose file, a
//! restarted node): [`Db::connect`] retries it with backoff for
//! `WARDEN_DATABASE_CONNECT_TIMEOUT`, logging each failed attempt at WARN
//! with the host and port (never the URL: it may hold the password), and
//! then gives up with an error that names the host, the port and the
//! timeout. Errors that waiting cannot fix (a refused password, a missing
//! database) fail at once, as does a SQLite file that cannot be opened.
//!
//! `sqlite` opens a SQLite store (its pools' settings, the retry while the
//! file is busy, the file's permissions); [`FetchUnique`] is the `one()`
//! for unique keys.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    RuntimeErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::config::Config;

pub mod liveness;
mod sqlite;
mod unique;

use sqlite::{connect_sqlite, keep_private, may_create, sqlite_file};
pub use unique::FetchUnique;

/// Advisory lock key held while migrating ("warden" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7264_656e;

/// The first wait between two connection attempts; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The store, with separate read and write handles (the same pool on Postgres).
#[derive(Clone, Debug)]
pub struct Db {
    read: DatabaseConnection,
    write: DatabaseConnection,
    sqlite: bool,
    /// The SQLite file, when the store is one (not in memory).
    sqlite_file: Option<PathBuf>,
    /// On SQLite, the URL and busy timeout, for [`Db::background`].
    sqlite_url: Option<(String, Duration)>,
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
            // A file that cannot be opened will not open later: no retry.
            let unopenable = |err: DbErr| {
                let path = sqlite_file(&url)
                    .map_or_else(|| "in memory".to_owned(), |p| p.display().to_string());
                DbErr::Conn(RuntimeErr::Internal(format!(
                    "cannot open the SQLite database {path}: {err}"
                )))
            };
            let write = connect_sqlite(&url, 1, timeout).await.map_err(unopenable)?;
            let read = connect_sqlite(&url, 4, timeout).await.map_err(unopenable)?;
            Ok(Self {
                read,
                write,
                sqlite: true,
                sqlite_file: sqlite_file(&url),
                sqlite_url: Some((url, timeout)),
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
            let pool =
                connect_with_retry(options, config.database_connect_timeout, timeout).await?;
            Ok(Self {
                read: pool.clone(),
                write: pool,
                sqlite: false,
                sqlite_file: None,
                sqlite_url: None,
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

    /// The store for background work (the cleanup pass). On SQLite, one
    /// connection of its own, reads and writes alike, whose thread runs at the
    /// lowest CPU priority so that requests preempt it (see
    /// `sqlite::connect_background`); on Postgres, where the work runs in
    /// the database's processes, the same pool.
    pub async fn background(&self) -> Result<Self, DbErr> {
        let Some((url, timeout)) = &self.sqlite_url else {
            return Ok(self.clone());
        };
        let conn = sqlite::connect_background(url, *timeout).await?;
        Ok(Self {
            read: conn.clone(),
            write: conn,
            sqlite: true,
            sqlite_file: self.sqlite_file.clone(),
            sqlite_url: self.sqlite_url.clone(),
        })
    }

    /// Calls `observe` with every statement this handle sends from now on,
    /// in transactions too, with its values; not those sent with
    /// `execute_unprepared` (sea-orm reports none of those). For checks of
    /// what Warden asks the database (the cleanup's query plans); the server
    /// sets none.
    pub fn observe_statements(
        &mut self,
        observe: impl Fn(&sea_orm::Statement) + Send + Sync + Clone + 'static,
    ) {
        for conn in [&mut self.read, &mut self.write] {
            let observe = observe.clone();
            conn.set_metric_callback(move |info| observe(info.statement));
        }
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

/// Connects to Postgres, retrying with backoff until `within` has passed.
///
/// Each attempt is one plain connection, bounded by the smaller of
/// `attempt` and the time left (the pool's own connect would retry
/// silently for its whole acquire timeout); once one succeeds, the pool is
/// opened as usual.
async fn connect_with_retry(
    options: ConnectOptions,
    within: Duration,
    attempt_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    use std::str::FromStr;

    use sea_orm::sqlx::{postgres::PgConnectOptions, Connection, PgConnection};
    let server = postgres_server(options.get_url());
    let probe = PgConnectOptions::from_str(options.get_url())
        .map_err(|err| DbErr::Conn(RuntimeErr::Internal(format!("bad database URL: {err}"))))?;
    let deadline = tokio::time::Instant::now() + within;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1u32;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bound = left.min(attempt_timeout);
        let err = match tokio::time::timeout(bound, PgConnection::connect_with(&probe)).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                break;
            }
            Ok(Err(err)) if !worth_retrying(&err) => {
                return Err(DbErr::Conn(RuntimeErr::Internal(format!(
                    "cannot connect to the database at {server}: {err}"
                ))))
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {}", humantime::format_duration(bound)),
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(DbErr::Conn(RuntimeErr::Internal(format!(
                "cannot reach the database at {server} within {} ({attempt} attempts; last: {err})",
                humantime::format_duration(within)
            ))));
        }
        let wait = backoff.min(left);
        tracing::warn!(
            server = %server,
            attempt,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            error = %err,
            "database not reachable yet; retrying"
        );
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
    Database::connect(options).await
}

/// `host:port` of a Postgres URL, for messages: never the user or password.
fn postgres_server(url: &str) -> String {
    use std::str::FromStr;
    match sea_orm::sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(options) => format!("{}:{}", options.get_host(), options.get_port()),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// True for failures that may pass by waiting: the server is not listening
/// yet, is starting up or full. A refused password or a missing database
/// fails at once.
fn worth_retrying(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) | Error::PoolTimedOut | Error::Tls(_) | Error::Protocol(_) => true,
        // 57P03: the server is starting up or shutting down; 53300: too many connections.
        Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_named_in_messages_has_no_credentials() {
        assert_eq!(
            postgres_server("postgres://alice:s3cret@db.internal:6543/warden?sslmode=disable"),
            "db.internal:6543"
        );
        assert_eq!(
            postgres_server("postgres://alice:s3cret@db/warden"),
            "db:5432"
        );
    }
}
