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
        admin::{list, require_admin, Admin, UserFilter},
        auth_user::{AuthUser, KeyGrant},
    },
};

use super::users::seed;
use crate::helpers::{on_postgres, spawn_app, TestApp};
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

/// The account `id` as an administrator acting with an ADMIN key (so no
/// session is needed), as `list` takes one.
async fn key_admin(app: &TestApp, id: Uuid, meta: &RequestMeta) -> Admin {
    let mut admin_user = user::Entity::find_by_id(id)
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
    require_admin(&app.state, meta, &caller, "users")
        .await
        .unwrap()
}

/// Postgres's statistics and visibility map for `users`, as autovacuum
/// keeps them.
async fn vacuum_analyse_users(app: &TestApp) {
    app.state
        .db
        .write()
        .execute_unprepared("VACUUM (ANALYZE) users")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_search_asks_the_indexes_without_reading_the_table() {
    let app = spawn_app().await;
    let ids = seed(&app, 300).await;
    let meta = RequestMeta::local("search-plans");
    let admin = key_admin(&app, ids[0], &meta).await;
    let mut state = app.state.clone();
    let seen = query_plans::record(&mut state.db);
    // A rare prefix by email, a rare one by username: each counts both
    // indexes, then asks them for ids (Postgres: every match's; SQLite: the
    // page's, sorted by SQLite, the first page and the next by cursor),
    // then reads the page by id. With another filter (every seeded account
    // is a USER) the counts are followed by the filtered ids
    // (`narrow_search`, not an index-only read).
    for (search, role) in [
        ("seed-00", None),
        ("seed_01", None),
        ("seed-00", Some(warden::domain::Role::User)),
    ] {
        let filter = UserFilter {
            search: Some(search.to_owned()),
            role,
            ..UserFilter::default()
        };
        let page = list(&state, &meta, &admin, Some(50), None, &filter)
            .await
            .unwrap();
        assert_eq!(page.users.len(), 50, "{search}");
        assert!(page.has_next_page, "{search}");
        let after = page.users.last().map(|(cursor, _)| cursor.clone());
        let next = list(&state, &meta, &admin, Some(50), after.as_deref(), &filter)
            .await
            .unwrap();
        assert!(!next.users.is_empty(), "{search}");
    }
    let statements = seen.lock().unwrap().clone();
    let asks: Vec<&Statement> = statements
        .iter()
        .filter(|(sql, _)| {
            sql.contains("COUNT(*)")
                || sql.contains(" UNION ")
                || (sql.starts_with(r#"SELECT "users"."id" FROM "users" WHERE"#)
                    && !sql.contains(r#""users"."id" IN"#)
                    && !sql.contains(r#""role" ="#))
        })
        .map(|(_, statement)| statement)
        .collect();
    let expected = if on_postgres() {
        "two counts and two id lists"
    } else {
        "two counts, and the page's ids from both indexes without and with a cursor"
    };
    assert_eq!(asks.len(), 4, "{expected}: {statements:#?}");

    let txn = app.state.db.read().begin().await.unwrap();
    if on_postgres() {
        // As the search asks (see `services::admin::users::probe`), with the
        // table's visibility map up to date, as autovacuum keeps it.
        vacuum_analyse_users(&app).await;
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

/// A plan's reads, flat: SQLite's `detail` lines, or every scan node of a
/// Postgres plan as "node on index-or-table".
fn reads(plan: &Plan) -> Vec<String> {
    match plan {
        Plan::Postgres(plan) => {
            let mut scans = Vec::new();
            pg_scans(plan, &mut scans);
            scans
                .into_iter()
                .map(|(kind, on)| format!("{kind} on {on}"))
                .collect()
        }
        Plan::Sqlite(lines) => lines.clone(),
    }
}

/// Whether `reads` take the page through `index` alone: it is named, and
/// nothing reads the table, walks the primary key or sorts.
fn through(reads: &[String], index: &str) -> bool {
    reads.iter().any(|r| r.contains(index))
        && !reads.iter().any(|r| {
            r.starts_with("Seq Scan")
                || r.contains("users_pkey")
                || r.contains("sqlite_autoindex_users")
                || (r.starts_with("SCAN users") && !r.contains(index))
                || r.contains("TEMP B-TREE")
        })
}

/// A filter whose value few accounts have (an administrator, a disabled
/// account, a second factor, an unverified address) reads those accounts
/// through an index of their own, in id order, not the whole table in id
/// order until a page is found: among a million accounts with three
/// administrators, `users(filter: {role: ADMIN})` walked the primary key to
/// the end. So did a common search with such a filter. Every page's
/// statement is explained (the first, and the next by cursor); on Postgres
/// also as a generic plan, which a prepared statement gets from its sixth
/// run on; on SQLite also once the file has been analysed.
#[tokio::test]
async fn a_rare_filter_reads_its_accounts_through_an_index() {
    use sea_orm::{sea_query::Expr, ColumnTrait, QueryFilter};
    type Time = chrono::DateTime<chrono::Utc>;
    let app = spawn_app().await;
    let ids = seed(&app, 5_100).await;
    let now = app.clock.now();
    // Ordinary accounts: verified, no second factor, enabled, USER.
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(user::Column::MfaEnabledAt, Expr::value(None::<Time>))
        .col_expr(user::Column::DisabledAt, Expr::value(None::<Time>))
        .exec(app.state.db.write())
        .await
        .unwrap();
    // Eleven rare ones, spread over the id order.
    let rare: Vec<Uuid> = ids.iter().step_by(500).copied().collect();
    for (column, value) in [
        (user::Column::Role, Expr::value("ADMIN")),
        (user::Column::DisabledAt, Expr::value(now)),
        (user::Column::MfaEnabledAt, Expr::value(now)),
        (user::Column::EmailVerifiedAt, Expr::value(None::<Time>)),
    ] {
        user::Entity::update_many()
            .col_expr(column, value)
            .filter(user::Column::Id.is_in(rare.clone()))
            .exec(app.state.db.write())
            .await
            .unwrap();
    }
    let meta = RequestMeta::local("filter-plans");
    let admin = key_admin(&app, rare[0], &meta).await;
    let mut state = app.state.clone();
    let admins = || UserFilter {
        role: Some(warden::domain::Role::Admin),
        ..UserFilter::default()
    };
    let filters = [
        (admins(), "idx_users_role_id"),
        (
            UserFilter {
                disabled: Some(true),
                ..UserFilter::default()
            },
            "idx_users_rare_disabled",
        ),
        (
            UserFilter {
                mfa_enabled: Some(true),
                ..UserFilter::default()
            },
            "idx_users_rare_mfa",
        ),
        (
            UserFilter {
                email_verified: Some(false),
                ..UserFilter::default()
            },
            "idx_users_rare_unverified",
        ),
        // Every account matches the search (more than the search counts to
        // before it walks the primary key): the role is what is rare.
        (
            UserFilter {
                search: Some("seed".into()),
                ..admins()
            },
            "idx_users_role_id",
        ),
    ];
    // Postgres's statistics as autovacuum keeps them.
    if on_postgres() {
        vacuum_analyse_users(&app).await;
    }
    // Each filter's statements, paged five at a time to the end.
    let mut pages = Vec::new();
    for (filter, index) in filters {
        let seen = query_plans::record(&mut state.db);
        let (mut listed, mut after) = (0, None::<String>);
        loop {
            let page = list(&state, &meta, &admin, Some(5), after.as_deref(), &filter)
                .await
                .unwrap();
            listed += page.users.len();
            after = page.users.last().map(|(cursor, _)| cursor.clone());
            if !page.has_next_page {
                break;
            }
        }
        assert_eq!(listed, rare.len(), "{filter:?}");
        let statements: Vec<Statement> = seen
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.sql.starts_with("SELECT") && s.sql.contains(r#"FROM "users" WHERE"#))
            .filter(|s| !s.sql.contains(r#""users"."id" IN"#) && !s.sql.contains("COUNT(*)"))
            .cloned()
            .collect();
        // The first page's statement and the next pages' (with the cursor).
        assert_eq!(statements.len(), 2, "{filter:?}: {statements:#?}");
        pages.push((filter, index, statements));
    }
    let mut report = String::new();
    let mut faults = 0;
    let analysed = if on_postgres() { 1 } else { 2 };
    for round in 0..analysed {
        if round == 1 {
            // As an operator may leave it (Warden never analyses a file).
            app.state
                .db
                .write()
                .execute_unprepared("ANALYZE")
                .await
                .unwrap();
        }
        for (filter, index, statements) in &pages {
            let txn = app.state.db.read().begin().await.unwrap();
            for statement in statements {
                let mut plans = vec![("", reads(&query_plans::explain(&txn, statement).await))];
                if on_postgres() {
                    let generic = query_plans::explain_generic(&txn, statement).await;
                    plans.push((" (generic)", reads(&Plan::Postgres(generic))));
                }
                if round == 1 {
                    plans[0].0 = " (analysed)";
                }
                for (how, plan) in plans {
                    faults += usize::from(!through(&plan, index));
                    report.push_str(&format!(
                        "\n{filter:?}{how}, expected {index}\n  {}\n    {plan:?}\n",
                        statement.sql
                    ));
                }
            }
            txn.rollback().await.unwrap();
        }
    }
    eprintln!("the filtered pages read:{report}");
    assert_eq!(faults, 0, "pages not read through their index:{report}");
}
