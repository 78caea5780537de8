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

/// The plan Postgres uses for `statement` once it plans a prepared
/// statement generically (from its sixth run on, when the generic plan
/// looks no dearer): prepared under a name of its own and explained with
/// `plan_cache_mode = force_generic_plan`, so the values play no part.
/// `conn` should be a transaction (the setting is `SET LOCAL`, and put back
/// as it was). Every parameter must have a type Postgres can infer from
/// where it stands (not a bare `SELECT $1`).
pub async fn explain_generic(conn: &impl ConnectionTrait, statement: &Statement) -> Value {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    assert_eq!(conn.get_database_backend(), DatabaseBackend::Postgres);
    let name = format!("plan_test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let before: String = conn
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT current_setting('plan_cache_mode') AS mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "mode")
        .unwrap();
    conn.execute_unprepared(&format!("PREPARE {name} AS {}", statement.sql))
        .await
        .unwrap();
    conn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let values = statement.values.as_ref().map_or(0, |v| v.0.len());
    let args = if values == 0 {
        String::new()
    } else {
        format!("({})", vec!["NULL"; values].join(", "))
    };
    let row = conn
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!("EXPLAIN (FORMAT JSON) EXECUTE {name}{args}"),
        ))
        .await
        .unwrap()
        .unwrap();
    conn.execute_unprepared(&format!("DEALLOCATE {name}"))
        .await
        .unwrap();
    conn.execute_unprepared(&format!("SET LOCAL plan_cache_mode = {before}"))
        .await
        .unwrap();
    let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
    plan[0]["Plan"].clone()
}
