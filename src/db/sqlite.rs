//! Opening a SQLite store: the pool settings (WAL, `synchronous = FULL`,
//! `busy_timeout`), the retry while another instance holds the file busy,
//! and the file's permissions (created 0600, a warning when group or others
//! can read it).

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sea_orm::{
    sqlx::{
        self,
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
        ConnectOptions as _, Executor as _,
    },
    ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr, SqlxSqliteConnector,
};
use thread_priority::{set_current_thread_priority, ThreadPriority};

/// Opens a SQLite pool, trying again for up to `timeout` while the file is
/// busy. Two instances starting together on a new file both switch it to
/// WAL, and SQLite may answer that switch with SQLITE_BUSY at once rather
/// than wait on `busy_timeout`.
pub(super) async fn connect_sqlite(
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

/// The name of the SQLite worker thread of the background connection.
pub(super) const BACKGROUND_THREAD: &str = "warden-bg";

/// One connection for background work (the cleanup pass) whose SQLite
/// thread runs at the lowest CPU priority (nice 19).
///
/// sqlx runs each SQLite connection on a thread of its own, and a statement
/// spends its CPU there. A pass's deletes, at normal priority on the core
/// that serves requests, held `me`'s p99 over 10 ms however they were
/// paced; with that thread at nice 19 the executor preempts it. sqlx gives
/// no handle on the thread itself, so the connection lowers it from the
/// inside: a progress handler (called on that thread while a statement
/// runs) does it the first time it is called, and a first statement long
/// enough to call it runs before the connection is handed out.
///
/// The price is priority inversion: while this connection holds the write
/// lock on a saturated machine, a request's write waits longer for it. The
/// cleanup keeps its write transactions small for that reason.
pub(super) async fn connect_background(
    url: &str,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let conn_err = |err: sqlx::Error| DbErr::Conn(RuntimeErr::SqlxError(std::sync::Arc::new(err)));
    let options = SqliteConnectOptions::from_str(url)
        .map_err(conn_err)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(timeout)
        .foreign_keys(true)
        .thread_name(|n| format!("{BACKGROUND_THREAD}-{n}"))
        .disable_statement_logging();
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.lock_handle()
                    .await?
                    .set_progress_handler(100, lower_priority_once());
                // Some thousands of VM steps: the handler runs during it.
                conn.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
                     SELECT count(*) FROM n",
                )
                .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(conn_err)?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// A progress handler that sets its thread to the lowest priority the first
/// time it runs, and never interrupts a statement.
fn lower_priority_once() -> impl FnMut() -> bool + Send + 'static {
    let mut lowered = false;
    move || {
        if !lowered {
            lowered = true;
            if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
                tracing::warn!(error = %err, "could not lower the priority of the background SQLite thread");
            }
        }
        true
    }
}

/// The file a SQLite URL names, unless the database lives in memory.
pub(super) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    (!in_memory).then(|| options.get_filename().to_owned())
}

/// True when the URL lets SQLite create a missing file (`mode=rwc`).
pub(super) fn may_create(url: &str) -> bool {
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
pub(super) fn keep_private(path: &Path, create: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQLite Warden links (one `libsqlite3-sys` serves sqlx and the
    /// in-place session check) is built without STAT4, by
    /// `.cargo/config.toml`: with it, once a file is ANALYZEd, every
    /// statement is compiled again whenever a bound value changes (`me` at
    /// 0.6 of its speed on a seeded file; see that file).
    #[test]
    fn the_linked_sqlite_has_no_stat4_so_analyze_keeps_no_samples() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let stat4_built: i64 = conn
            .query_row(
                "SELECT sqlite_compileoption_used('ENABLE_STAT4')",
                [],
                |row| row.get(0),
            )
            .expect("compile option");
        assert_eq!(stat4_built, 0, "SQLITE_ENABLE_STAT4 is compiled in");
        conn.execute_batch(
            "CREATE TABLE t (k INTEGER); CREATE INDEX t_k ON t (k);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t SELECT i % 7 FROM n;
             ANALYZE;",
        )
        .expect("analyze");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%' ORDER BY name")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("stat tables");
        assert_eq!(tables, ["sqlite_stat1"]);
    }

    /// The background connection's SQLite thread (named, so it can be found
    /// among the process's threads) is at nice 19 by the time the connection
    /// is handed out, and it still reads and writes the file.
    #[tokio::test]
    async fn the_background_connection_runs_on_a_lowest_priority_thread() {
        use sea_orm::ConnectionTrait;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bg.db").display());
        let conn = connect_background(&url, Duration::from_secs(5))
            .await
            .expect("connects");
        conn.execute_unprepared("CREATE TABLE t (k INTEGER); INSERT INTO t VALUES (7)")
            .await
            .expect("writes");
        let mut niceness = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
            let path = task.expect("task").path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !comm.starts_with(BACKGROUND_THREAD) {
                continue;
            }
            // A thread of another test may have ended since it was listed.
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue;
            };
            // Field 19 of /proc/<tid>/stat is the niceness.
            let after_name = stat.rsplit(") ").next().expect("stat has a name");
            niceness.push(after_name.split(' ').nth(16).expect("nice").to_owned());
        }
        assert!(!niceness.is_empty(), "no {BACKGROUND_THREAD} thread found");
        assert!(niceness.iter().all(|n| n == "19"), "{niceness:?}");
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT k FROM t",
            ))
            .await
            .expect("reads")
            .expect("a row");
        assert_eq!(row.try_get::<i32>("", "k").expect("k"), 7);
    }

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
