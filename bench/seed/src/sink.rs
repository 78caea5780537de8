//! Writing generated rows fast, the same rows on both backends.
//!
//! A [`Table`] takes rows of [`Cell`]s in the order they are generated and
//! writes them in big batches:
//! - SQLite: multi-row `INSERT`s with bound parameters (at most
//!   [`SQLITE_MAX_PARAMS`] per statement), [`SQLITE_ROWS_PER_TXN`] rows per
//!   transaction (so in WAL mode a commit's sync is rare whatever
//!   `synchronous` says, and the WAL file stays bounded), a 512 MB page
//!   cache on the loading connection. Values are bound through
//!   sea-orm's `Value`, the same encoding Warden's own writes use (a UUID
//!   is a 16-byte blob, a time is sqlx's text form), so Warden's queries
//!   compare seeded and live rows alike.
//! - Postgres: `COPY … FROM STDIN` in text format on one pooled connection
//!   per table, flushed every [`COPY_FLUSH_BYTES`].
//!
//! Times are generated at millisecond precision so the two backends store
//! exactly the same instants.

use chrono::{DateTime, Utc};
use sea_orm::{
    sqlx, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    Statement, TransactionTrait, Value,
};
use uuid::Uuid;

/// SQLite's bound-parameter limit (since 3.32).
pub const SQLITE_MAX_PARAMS: usize = 32_766;

/// Rows per SQLite transaction.
const SQLITE_ROWS_PER_TXN: u64 = 250_000;

/// Bytes of COPY text buffered before each send.
const COPY_FLUSH_BYTES: usize = 4 << 20;

/// One column value of a generated row.
#[derive(Clone, Debug)]
pub enum Cell {
    Uuid(Uuid),
    Text(String),
    Time(DateTime<Utc>),
    I16(i16),
    I32(i32),
    I64(i64),
    Bool(bool),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    Null,
}

impl From<Uuid> for Cell {
    fn from(v: Uuid) -> Self {
        Cell::Uuid(v)
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_owned())
    }
}
impl From<DateTime<Utc>> for Cell {
    fn from(v: DateTime<Utc>) -> Self {
        Cell::Time(v)
    }
}
impl From<i16> for Cell {
    fn from(v: i16) -> Self {
        Cell::I16(v)
    }
}
impl From<i32> for Cell {
    fn from(v: i32) -> Self {
        Cell::I32(v)
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::I64(v)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}
impl From<Vec<u8>> for Cell {
    fn from(v: Vec<u8>) -> Self {
        Cell::Bytes(v)
    }
}
impl From<serde_json::Value> for Cell {
    fn from(v: serde_json::Value) -> Self {
        Cell::Json(v)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

impl Cell {
    fn into_value(self) -> Value {
        match self {
            Cell::Uuid(v) => v.into(),
            Cell::Text(v) => v.into(),
            Cell::Time(v) => v.into(),
            Cell::I16(v) => v.into(),
            Cell::I32(v) => v.into(),
            Cell::I64(v) => v.into(),
            Cell::Bool(v) => v.into(),
            Cell::Bytes(v) => v.into(),
            Cell::Json(v) => v.into(),
            Cell::Null => Value::String(None),
        }
    }

    /// Appends the cell in COPY text format.
    fn write_copy(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Cell::Uuid(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Text(v) => escape_copy(v, out),
            Cell::Time(v) => {
                let _ = write!(out, "{}", v.format("%Y-%m-%d %H:%M:%S%.6f+00"));
            }
            Cell::I16(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::I32(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Bool(v) => out.push(if *v { 't' } else { 'f' }),
            Cell::Bytes(v) => {
                // bytea hex input; the backslash itself is escaped for COPY.
                out.push_str("\\\\x");
                for b in v {
                    let _ = write!(out, "{b:02x}");
                }
            }
            Cell::Json(v) => escape_copy(&v.to_string(), out),
            Cell::Null => out.push_str("\\N"),
        }
    }
}

fn escape_copy(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// A table being filled.
pub struct Table<'a> {
    db: &'a DatabaseConnection,
    name: &'static str,
    columns: &'static [&'static str],
    /// Rows written so far (including buffered ones).
    pub rows: u64,
    sqlite: Option<SqliteLoad>,
    copy: Option<String>,
    pg: Option<PgLoad>,
}

struct SqliteLoad {
    txn: Option<DatabaseTransaction>,
    buffered: Vec<Value>,
    in_txn: u64,
}

struct PgLoad {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    sent: u64,
}

impl<'a> Table<'a> {
    /// Starts loading `name` (`columns` in the order rows give them).
    pub async fn open(
        db: &'a DatabaseConnection,
        name: &'static str,
        columns: &'static [&'static str],
    ) -> Result<Table<'a>, DbErr> {
        let mut table = Table {
            db,
            name,
            columns,
            rows: 0,
            sqlite: None,
            copy: None,
            pg: None,
        };
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let conn = db
                    .get_postgres_connection_pool()
                    .acquire()
                    .await
                    .map_err(|e| DbErr::Custom(format!("acquire for COPY: {e}")))?;
                table.pg = Some(PgLoad { conn, sent: 0 });
                table.copy = Some(String::with_capacity(COPY_FLUSH_BYTES + 4096));
            }
            _ => {
                table.sqlite = Some(SqliteLoad {
                    txn: None,
                    buffered: Vec::with_capacity(SQLITE_MAX_PARAMS),
                    in_txn: 0,
                });
            }
        }
        Ok(table)
    }

    /// Adds one row; `cells` must match the columns.
    pub async fn push(&mut self, cells: Vec<Cell>) -> Result<(), DbErr> {
        if cells.len() != self.columns.len() {
            return Err(DbErr::Custom(format!(
                "{}: {} cells for {} columns",
                self.name,
                cells.len(),
                self.columns.len()
            )));
        }
        self.rows += 1;
        if let Some(out) = self.copy.as_mut() {
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push('\t');
                }
                cell.write_copy(out);
            }
            out.push('\n');
            if out.len() >= COPY_FLUSH_BYTES {
                self.flush_copy().await?;
            }
            return Ok(());
        }
        let per_stmt = (SQLITE_MAX_PARAMS / self.columns.len()) * self.columns.len();
        let full = match self.sqlite.as_mut() {
            Some(load) => {
                load.buffered
                    .extend(cells.into_iter().map(Cell::into_value));
                load.buffered.len() >= per_stmt
            }
            None => false,
        };
        if full {
            self.flush_sqlite().await?;
        }
        Ok(())
    }

    async fn flush_copy(&mut self) -> Result<(), DbErr> {
        let (Some(out), Some(pg)) = (self.copy.as_mut(), self.pg.as_mut()) else {
            return Ok(());
        };
        if out.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            self.name,
            self.columns.join(", ")
        );
        let pg_err = |e: sqlx::Error| DbErr::Custom(format!("COPY {}: {e}", sql));
        let mut copy = pg.conn.copy_in_raw(&sql).await.map_err(pg_err)?;
        copy.send(out.as_bytes()).await.map_err(pg_err)?;
        pg.sent += copy.finish().await.map_err(pg_err)?;
        out.clear();
        Ok(())
    }

    async fn flush_sqlite(&mut self) -> Result<(), DbErr> {
        let ncols = self.columns.len();
        let Some(load) = self.sqlite.as_mut() else {
            return Ok(());
        };
        if load.buffered.is_empty() {
            return Ok(());
        }
        if load.txn.is_none() {
            let txn = self.db.begin().await?;
            // Big random-order indexes (token hashes, UUIDs) want more than
            // the default 2 MB page cache of this connection.
            txn.execute_unprepared("PRAGMA cache_size = -524288")
                .await?;
            load.txn = Some(txn);
        }
        let values = std::mem::take(&mut load.buffered);
        let nrows = values.len() / ncols;
        let row = format!("({})", vec!["?"; ncols].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            self.name,
            self.columns.join(", ")
        );
        sql.push_str(&vec![row; nrows].join(", "));
        if let Some(txn) = load.txn.as_ref() {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                sql,
                values,
            ))
            .await?;
        }
        load.buffered = Vec::with_capacity(SQLITE_MAX_PARAMS);
        load.in_txn += nrows as u64;
        if load.in_txn >= SQLITE_ROWS_PER_TXN {
            if let Some(txn) = load.txn.take() {
                txn.commit().await?;
            }
            load.in_txn = 0;
        }
        Ok(())
    }

    /// Writes what is buffered and commits; returns the rows written.
    pub async fn finish(mut self) -> Result<u64, DbErr> {
        if self.copy.is_some() {
            self.flush_copy().await?;
        } else {
            self.flush_sqlite().await?;
            if let Some(txn) = self.sqlite.as_mut().and_then(|l| l.txn.take()) {
                txn.commit().await?;
            }
        }
        Ok(self.rows)
    }
}
