//! The plans of `users(search:)`: every statement a search sends is
//! recorded and explained on the store it ran on. Asking the indexes must
//! read the indexes alone (the covering indexes of `m20261204_000002`): a
//! count or an id list that reads the table costs a table fetch per entry,
//! 21 ms for 5,001 usernames over 1M accounts on Postgres.

use entity::user;
use sea_orm::{ConnectionTrait, EntityTrait, Statement, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;
use warden::{
    meta::RequestMeta,
    services::{
        admin::{list, require_admin, UserFilter},
        auth_user::{AuthUser, KeyGrant},
    },
};

use super::users::seed;
use crate::helpers::{on_postgres, spawn_app};
use crate::query_plans::{self, Plan};

/// The scans of a Postgres plan: (node type, index or table).
fn pg_scans(node: &Value, out: &mut Vec<(String, String)>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    if kind.contains("Scan") {
        let on = node["Index Name"]
            .as_str()
            .or(node["Relation Name"].as_str())
            .unwrap_or_default();
        out.push((kind.to_owned(), on.to_owned()));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        pg_scans(child, out);
    }
}

#[tokio::test]
async fn a_search_asks_the_indexes_without_reading_the_table() {
    let app = spawn_app().await;
    seed(&app, 300).await;
    // An administrator, acting with an ADMIN key (so no session is needed).
    let mut admin_user = user::Entity::find()
        .one(app.state.db.read())
        .await
        .unwrap()
        .unwrap();
    admin_user.role = "ADMIN".into();
    let caller = AuthUser::by_key(
        admin_user,
        KeyGrant {
            key_id: Uuid::now_v7(),
            scopes: vec![warden::domain::ApiKeyScope::Admin],
        },
    );
    let meta = RequestMeta::local("search-plans");
    let mut state = app.state.clone();
    let seen = query_plans::record(&mut state.db);
    let admin = require_admin(&state, &meta, &caller, "users")
        .await
        .unwrap();
    // A rare prefix by email, a rare one by username: each asks both
    // indexes for a count and for ids, then reads the page by id.
    for search in ["seed-00", "seed_01"] {
        let filter = UserFilter {
            search: Some(search.to_owned()),
            ..UserFilter::default()
        };
        let page = list(&state, &meta, &admin, Some(50), None, &filter)
            .await
            .unwrap();
        assert_eq!(page.users.len(), 50, "{search}");
        assert!(page.has_next_page, "{search}");
    }
    let statements = seen.lock().unwrap().clone();
    let asks: Vec<&Statement> = statements
        .iter()
        .filter(|(sql, _)| {
            sql.contains("COUNT(*)")
                || (sql.starts_with(r#"SELECT "users"."id" FROM "users" WHERE"#)
                    && !sql.contains(r#""users"."id" IN"#))
        })
        .map(|(_, statement)| statement)
        .collect();
    assert_eq!(
        asks.len(),
        4,
        "two counts and two id lists: {statements:#?}"
    );

    let txn = app.state.db.read().begin().await.unwrap();
    if on_postgres() {
        // As the search asks (see `services::admin::users::probe`), with the
        // table's visibility map up to date, as autovacuum keeps it.
        app.state
            .db
            .write()
            .execute_unprepared("VACUUM (ANALYZE) users")
            .await
            .unwrap();
        for setting in ["enable_seqscan", "enable_bitmapscan"] {
            txn.execute_unprepared(&format!("SET LOCAL {setting} = off"))
                .await
                .unwrap();
        }
    }
    let mut report = String::new();
    let mut faults = 0;
    for statement in asks {
        let (plan, index_only) = match query_plans::explain(&txn, statement).await {
            Plan::Postgres(plan) => {
                let mut scans = Vec::new();
                pg_scans(&plan, &mut scans);
                // Any index, read alone (a database with the C collation may
                // count emails on the unique index as well).
                let index_only =
                    !scans.is_empty() && scans.iter().all(|(kind, _)| kind == "Index Only Scan");
                (format!("{scans:?}"), index_only)
            }
            Plan::Sqlite(lines) => {
                let reads: Vec<&String> = lines
                    .iter()
                    .filter(|l| l.starts_with("SEARCH ") || l.starts_with("SCAN users"))
                    .collect();
                let index_only = !reads.is_empty()
                    && reads
                        .iter()
                        .all(|l| l.starts_with("SEARCH users USING COVERING INDEX"));
                (lines.join(" | "), index_only)
            }
        };
        faults += usize::from(!index_only);
        report.push_str(&format!("\n{}\n    {plan}\n", statement.sql));
    }
    txn.rollback().await.unwrap();
    eprintln!("the indexes asked:{report}");
    assert_eq!(faults, 0, "statements that read the table:{report}");
}
