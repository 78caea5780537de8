//! Shared by the plan tests (`cleanup::plans`, `admin::search_plans`):
//! recording what a store handle sends, and explaining one statement on
//! the store it ran on.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::Value;
use warden::db::Db;

/// The statements a handle sent, each once, by SQL text.
pub type Recorded = Arc<Mutex<BTreeMap<String, Statement>>>;

/// Records every statement `db` sends from now on (see
/// `Db::observe_statements`).
pub fn record(db: &mut Db) -> Recorded {
    let seen = Recorded::default();
    db.observe_statements({
        let seen = seen.clone();
        move |statement: &Statement| {
            seen.lock()
                .unwrap()
                .entry(statement.sql.clone())
                .or_insert_with(|| statement.clone());
        }
    });
    seen
}

/// A statement's plan.
pub enum Plan {
    /// The top node of `EXPLAIN (FORMAT JSON)`.
    Postgres(Value),
    /// The `detail` lines of `EXPLAIN QUERY PLAN`.
    Sqlite(Vec<String>),
}

/// Explains `statement`, with its values, on `conn` (which may be a
/// transaction holding `SET LOCAL` planner settings).
pub async fn explain(conn: &impl ConnectionTrait, statement: &Statement) -> Plan {
    let backend = conn.get_database_backend();
    let values = statement.values.clone().map(|v| v.0).unwrap_or_default();
    if backend == DatabaseBackend::Postgres {
        let explain = Statement::from_sql_and_values(
            backend,
            format!("EXPLAIN (FORMAT JSON) {}", statement.sql),
            values,
        );
        let row = conn.query_one_raw(explain).await.unwrap().unwrap();
        let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
        Plan::Postgres(plan[0]["Plan"].clone())
    } else {
        let explain = Statement::from_sql_and_values(
            backend,
            format!("EXPLAIN QUERY PLAN {}", statement.sql),
            values,
        );
        Plan::Sqlite(
            conn.query_all_raw(explain)
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect(),
        )
    }
}
