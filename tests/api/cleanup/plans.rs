//! The cleanup's query plans. A pass runs with a row due in every table it
//! cleans, every statement it sends is recorded, and each is explained on
//! the store it ran on: each must reach its rows through an index, so that a
//! pass over a year of data reads what it deletes and not the tables. (The
//! bench's scale rows measure the same plans at a million rows; this is
//! the check that fails in `cargo test` when an index goes missing.)

use std::{collections::BTreeMap, time::Duration};

use chrono::TimeDelta;
use entity::{
    api_key, email_token, mail_outbox, mfa_token, refresh_token, session, session_view,
    trusted_device, webauthn_challenge,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Statement, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;
use warden::cleanup::{run_paced, Pace};

use crate::helpers::{email, on_postgres, s, spawn_app_with, TestApp};
use crate::query_plans::{self, Plan};

/// One row due for cleanup in every table a pass cleans (and a live session,
/// so that the walk asks for usable tokens), as of `when`.
async fn seed_one_of_each(app: &TestApp, user_id: Uuid, when: chrono::DateTime<chrono::Utc>) {
    let db = app.state.db.write();
    // Sessions: live, spent (its one token used), past its end, revoked long ago.
    for (ends, revoked, used) in [
        (TimeDelta::days(20), None, false),
        (TimeDelta::days(20), None, true),
        (-TimeDelta::hours(1), None, false),
        (TimeDelta::days(20), Some(-TimeDelta::days(2)), false),
    ] {
        let id = Uuid::new_v4();
        session::ActiveModel {
            id: Set(id),
            user_id: Set(user_id),
            created_at: Set(when - TimeDelta::days(3)),
            last_used_at: Set(when - TimeDelta::days(2)),
            expires_at: Set(when + ends),
            revoked_at: Set(revoked.map(|r| when + r)),
            revoked_reason: Set(revoked.map(|_| "logout".to_owned())),
            ip: Set(None),
            user_agent: Set(None),
            method: Set("PASSWORD".to_owned()),
            amr: Set("pwd".to_owned()),
        }
        .insert(db)
        .await
        .unwrap();
        refresh_token::ActiveModel {
            id: Set(Uuid::new_v4()),
            session_id: Set(id),
            token_hash: Set(format!("{:064x}", id.as_u128())),
            parent_id: Set(None),
            issued_at: Set(when - TimeDelta::days(2)),
            expires_at: Set(when + TimeDelta::days(5)),
            used_at: Set(used.then(|| when - TimeDelta::days(1))),
        }
        .insert(db)
        .await
        .unwrap();
    }
    trusted_device::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        token_hash: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        created_at: Set(when - TimeDelta::days(40)),
        last_used_at: Set(when - TimeDelta::days(31)),
        expires_at: Set(when - TimeDelta::days(1)),
        revoked_at: Set(None),
        ip: Set(None),
        user_agent: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    mail_outbox::ActiveModel {
        id: Set(Uuid::new_v4()),
        kind: Set("verify-email".to_owned()),
        recipient: Set(email()),
        message_id: Set(format!("{}@warden.test", Uuid::new_v4())),
        sealed: Set(None),
        created_at: Set(when - TimeDelta::days(9)),
        next_attempt_at: Set(when - TimeDelta::days(9)),
        attempts: Set(1),
        last_error: Set(None),
        sent_at: Set(Some(when - TimeDelta::days(8))),
        failed_at: Set(None),
        claim_owner: Set(None),
        claim_until: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    email_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        purpose: Set("verify".to_owned()),
        token_hash: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        code_hash: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        email_key: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        new_email: Set(None),
        attempts: Set(0),
        created_at: Set(when - TimeDelta::days(3)),
        expires_at: Set(when - TimeDelta::days(2)),
        used_at: Set(Some(when - TimeDelta::days(2))),
    }
    .insert(db)
    .await
    .unwrap();
    mfa_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        token_hash: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        created_at: Set(when - TimeDelta::hours(3)),
        expires_at: Set(when - TimeDelta::hours(2)),
        used_at: Set(None),
        trusted_device_id: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    webauthn_challenge::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(None),
        purpose: Set("login".to_owned()),
        challenge: Set(Uuid::new_v4().to_string()),
        state: Set("{}".to_owned()),
        created_at: Set(when - TimeDelta::hours(3)),
        expires_at: Set(when - TimeDelta::hours(2)),
        used_at: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    session_view::ActiveModel {
        session_id: Set(Uuid::new_v4()),
        kind: Set("AUDIT_LOG_VIEWED".to_owned()),
        at: Set(when - TimeDelta::hours(1)),
    }
    .insert(db)
    .await
    .unwrap();
    api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        name: Set("old script".to_owned()),
        prefix: Set("wdn_old".to_owned()),
        secret_hash: Set(format!("{:064x}", Uuid::new_v4().as_u128())),
        scopes: Set("USER".to_owned()),
        created_at: Set(when - TimeDelta::days(90)),
        last_used_at: Set(None),
        expires_at: Set(None),
        revoked_at: Set(Some(when - TimeDelta::days(31))),
    }
    .insert(db)
    .await
    .unwrap();
}

/// The statements of one paced pass (as the server runs it, on the store's
/// background handle) as of `when`, each once, by SQL text.
async fn statements_of_a_pass(
    app: &TestApp,
    when: chrono::DateTime<chrono::Utc>,
) -> BTreeMap<String, Statement> {
    let mut db = app.state.db.background().await.unwrap();
    let seen = query_plans::record(&mut db);
    let removed = run_paced(&db, &app.config, when, Pace::Shared)
        .await
        .unwrap();
    // Every kind of row went, so every DELETE ran and was recorded.
    let went = [
        ("expired sessions", removed.expired_sessions),
        ("revoked sessions", removed.revoked_sessions),
        ("refresh tokens", removed.refresh_tokens),
        ("audit events", removed.audit_events),
        ("login attempts", removed.login_attempts),
        ("trusted devices", removed.trusted_devices),
        ("mail", removed.mail_outbox),
        ("email tokens", removed.email_tokens),
        ("ceremonies and views", u64::from(removed.ceremonies >= 3)),
        ("api keys", removed.api_keys),
    ];
    for (what, count) in went {
        assert!(count > 0, "no {what} went: {removed:?}");
    }
    let seen = seen.lock().unwrap().clone();
    seen
}

/// SQLite: `EXPLAIN QUERY PLAN`'s lines for `statement`, and what is wrong
/// with them: a table read whole (`SCAN t` without an index, or an index
/// walked in order other than to its `LIMIT` with nothing to filter out) or
/// a sort of what was read.
fn sqlite_faults(sql: &str, plan: &[String]) -> Vec<String> {
    let limited = sql.contains(" LIMIT ") && !sql.contains(" WHERE ");
    plan.iter()
        .filter(|line| {
            line.contains("TEMP B-TREE")
                || (line.starts_with("SCAN ")
                    && !(limited && line.contains(" USING ") && line.contains("INDEX")))
        })
        .cloned()
        .collect()
}

/// Postgres (sequential scans and sorts disabled, so that a usable index is
/// always chosen on the test's few rows): each table read through an index with a
/// condition, or an index walked in order under a `LIMIT`.
fn postgres_faults(node: &Value, under_limit: bool, faults: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let relation = node["Relation Name"].as_str();
    if let Some(table) = relation {
        // An index walked without a condition only in order to a `LIMIT`,
        // with nothing filtered out on the way.
        let indexed = matches!(kind, "Index Scan" | "Index Only Scan")
            && (node.get("Index Cond").is_some() || (under_limit && node.get("Filter").is_none()));
        let bitmap = kind == "Bitmap Heap Scan";
        if !indexed && !bitmap && !matches!(kind, "ModifyTable") {
            faults.push(format!("{kind} on {table}"));
        }
    }
    if kind == "Sort" {
        faults.push("Sort".to_owned());
    }
    let limit = kind == "Limit" || (under_limit && kind != "Sort");
    for child in node["Plans"].as_array().into_iter().flatten() {
        postgres_faults(child, limit, faults);
    }
}

#[tokio::test]
async fn every_statement_of_a_cleanup_pass_reaches_its_rows_through_an_index() {
    let app = spawn_app_with(|c| {
        c.revoked_retention = Duration::from_secs(3600);
        c.audit_retention = Duration::from_secs(24 * 3600);
    })
    .await;
    let owner = app.register(&email()).await;
    let user_id: Uuid = s(&owner["user"], "id").parse().unwrap();
    app.login(&email(), "no such account pw").await; // lockout counters
    let when = app.clock.now() + TimeDelta::days(2);
    seed_one_of_each(&app, user_id, when).await;
    let statements = statements_of_a_pass(&app, when).await;

    let txn = app.state.db.read().begin().await.unwrap();
    if on_postgres() {
        // A usable index is then always chosen, and an order always read
        // from one, however few rows the test has: what is left is a table
        // (or a sort) that no index can spare.
        for setting in ["enable_seqscan", "enable_sort"] {
            txn.execute_unprepared(&format!("SET LOCAL {setting} = off"))
                .await
                .unwrap();
        }
    }
    let (mut report, mut faulty) = (String::new(), 0);
    for (sql, statement) in &statements {
        let words = sql.trim_start().to_ascii_uppercase();
        if !(words.starts_with("SELECT") || words.starts_with("DELETE")) {
            continue;
        }
        let (plan, faults) = match query_plans::explain(&txn, statement).await {
            Plan::Postgres(plan) => {
                let mut faults = Vec::new();
                postgres_faults(&plan, false, &mut faults);
                (plan.to_string(), faults)
            }
            Plan::Sqlite(lines) => {
                let faults = sqlite_faults(sql, &lines);
                (lines.join(" | "), faults)
            }
        };
        faulty += usize::from(!faults.is_empty());
        report.push_str(&format!(
            "\n{sql}\n    plan: {plan}\n    faults: {faults:?}\n"
        ));
    }
    txn.rollback().await.unwrap();
    eprintln!("{} statements:{report}", statements.len());
    assert!(
        statements.len() >= 20,
        "the pass sent {} statements",
        statements.len()
    );
    assert_eq!(faulty, 0, "statements without an index:{report}");
}
