//! The `users` connection: stable paging and each filter.

use std::collections::HashSet;

use chrono::TimeDelta;
use entity::user;
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};
use uuid::Uuid;

use super::run;
use crate::helpers::{code, spawn_app, TestApp};

const PAGE: &str = "query($first: Int, $after: String, $f: UserFilter) { users(first: $first, after: $after, filter: $f) { edges { cursor node { id email username role disabled emailVerified mfaEnabled } } pageInfo { hasNextPage endCursor } } }";

/// Inserts `n` accounts straight into the database (no bcrypt): every
/// third verified, every fifth with a second factor, every seventh
/// disabled; usernames `Seed_<i>`, emails `seed-<i>@example.com`.
pub(super) async fn seed(app: &TestApp, n: usize) -> Vec<Uuid> {
    let now = app.clock.now();
    let rows: Vec<user::ActiveModel> = (0..n)
        .map(|i| user::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(format!("seed-{i:04}@example.com")),
            username: Set(Some(format!("Seed_{i:04}"))),
            password_hash: Set(
                "$2b$04$abcdefghijklmnopqrstuu5mPcDPQEFQn6bmoTn9CNJsVZ7lcbCGy".into(),
            ),
            role: Set("USER".into()),
            created_at: Set(now - TimeDelta::seconds(i as i64)),
            last_login_at: Set(None),
            email_verified_at: Set((i % 3 == 0).then_some(now)),
            mfa_enabled_at: Set((i % 5 == 0).then_some(now)),
            disabled_at: Set((i % 7 == 0).then_some(now)),
            disabled_reason: Set(None),
        })
        .collect();
    let ids = rows.iter().map(|r| *r.id.as_ref()).collect::<Vec<_>>();
    for chunk in rows.chunks(100) {
        user::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.state.db.write())
            .await
            .unwrap();
    }
    ids
}

/// Every page of `users` with `filter`, `first` at a time: the nodes.
async fn all_pages(app: &TestApp, token: &str, first: i32, filter: Value) -> Vec<Value> {
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = run(
            app,
            token,
            PAGE,
            json!({ "first": first, "after": after, "f": filter }),
        )
        .await;
        assert!(body["errors"].is_null(), "{body}");
        let conn = &body["data"]["users"];
        let edges = conn["edges"].as_array().unwrap();
        assert!(edges.len() <= first as usize);
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    nodes
}

fn ids(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn users_pages_through_ten_thousand_accounts_in_stable_order() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let seeded = seed(&app, 10_000).await;
    // Accounts registered halfway through the walk are listed once too,
    // after every older one (ids are UUIDv7), and nothing shifts.
    let mut nodes = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut late = Vec::new();
    loop {
        let body = run(
            &app,
            &admin,
            PAGE,
            json!({ "first": 200, "after": after, "f": {} }),
        )
        .await;
        assert!(body["errors"].is_null(), "{body}");
        let conn = &body["data"]["users"];
        let edges = conn["edges"].as_array().unwrap();
        nodes.extend(edges.iter().map(|e| e["node"].clone()));
        pages += 1;
        if pages == 25 {
            for _ in 0..3 {
                late.push(app.register(&crate::helpers::email()).await["user"]["id"].clone());
            }
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    let listed = ids(&nodes);
    assert_eq!(listed.len(), 10_004, "10,000 seeded, the admin, 3 late");
    assert_eq!(pages, 51, "200 a page");
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no duplicates");
    let mut sorted = listed.clone();
    sorted.sort_by_key(|id| Uuid::parse_str(id).unwrap());
    assert_eq!(listed, sorted, "ordered by id");
    for id in &seeded {
        assert!(unique.contains(&id.to_string()), "no gaps");
    }
    let tail: Vec<_> = listed[listed.len() - 3..].to_vec();
    assert_eq!(
        tail,
        late.iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn users_pages_through_hundreds_of_accounts_in_stable_order_and_filters() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let seeded = seed(&app, 300).await;

    let nodes = all_pages(&app, &admin, 37, json!({})).await;
    let listed = ids(&nodes);
    assert_eq!(listed.len(), 301, "300 seeded and the admin");
    let unique: HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no duplicates");
    let mut sorted = listed.clone();
    sorted.sort_by_key(|id| Uuid::parse_str(id).unwrap());
    assert_eq!(listed, sorted, "ordered by id");
    for id in &seeded {
        assert!(unique.contains(&id.to_string()), "no gaps");
    }
    // The same walk again gives the same order.
    assert_eq!(ids(&all_pages(&app, &admin, 200, json!({})).await), listed);

    let count = |filter: Value| {
        let (app, admin) = (&app, &admin);
        async move { all_pages(app, admin, 200, filter).await }
    };
    let by_email = count(json!({ "search": "SEED-001" })).await;
    assert_eq!(by_email.len(), 10, "seed-0010 … seed-0019");
    assert!(by_email
        .iter()
        .all(|n| n["email"].as_str().unwrap().starts_with("seed-001")));
    let by_username = count(json!({ "search": "seed_02" })).await;
    assert_eq!(by_username.len(), 100, "Seed_0200 … Seed_0299, any case");
    // LIKE's wildcards are plain characters in a search.
    assert!(count(json!({ "search": "seed%" })).await.is_empty());
    assert!(count(json!({ "search": "s_ed" })).await.is_empty());
    assert_eq!(count(json!({ "role": "ADMIN" })).await.len(), 1);
    let disabled = count(json!({ "disabled": true })).await;
    assert_eq!(disabled.len(), 43, "i % 7 == 0 for i < 300");
    assert!(disabled.iter().all(|n| n["disabled"] == true));
    assert_eq!(count(json!({ "disabled": false })).await.len(), 301 - 43);
    assert_eq!(count(json!({ "emailVerified": true })).await.len(), 100);
    let mfa = count(json!({ "mfaEnabled": true, "search": "seed" })).await;
    assert_eq!(mfa.len(), 60);
    let both = count(json!({ "mfaEnabled": true, "disabled": true })).await;
    assert_eq!(both.len(), 9, "i % 35 == 0");

    // Reading is audited, once a minute per session however many pages.
    let log = run(
        &app,
        &admin,
        "{ auditLog(filter: { kinds: [USERS_VIEWED] }) { edges { node { detail } } } }",
        json!({}),
    )
    .await;
    let rows = log["data"]["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0]["node"]["detail"]["operation"], "users");

    for bad in [json!({ "first": -1 }), json!({ "after": "nope" })] {
        let body = run(&app, &admin, PAGE, bad).await;
        assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
}

/// A search is answered three ways (`services::admin::users::probe`): a
/// prefix with more than 5,000 matches in either index walks the accounts
/// by id; a rarer one takes the page's ids from the two indexes; a rarer one
/// with other filters reads its matches. Each gives every match once, in id
/// order, page after page, including accounts that match by both their
/// email and their username.
#[tokio::test]
async fn search_pages_are_exact_whether_the_prefix_is_common_or_rare() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let seeded = seed(&app, 10_000).await;
    // Twins match one search by both their email and their username.
    let now = app.clock.now();
    let twins: Vec<user::ActiveModel> = (0..40)
        .map(|i| user::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(format!("twin-{i:02}@example.com")),
            username: Set(Some(format!("TWIN-{i:02}"))),
            password_hash: Set(
                "$2b$04$abcdefghijklmnopqrstuu5mPcDPQEFQn6bmoTn9CNJsVZ7lcbCGy".into(),
            ),
            role: Set("USER".into()),
            created_at: Set(now),
            last_login_at: Set(None),
            email_verified_at: Set(None),
            mfa_enabled_at: Set(None),
            disabled_at: Set((i % 4 == 0).then_some(now)),
            disabled_reason: Set(None),
        })
        .collect();
    let twin_ids: Vec<String> = twins.iter().map(|t| t.id.as_ref().to_string()).collect();
    user::Entity::insert_many(twins)
        .exec_without_returning(app.state.db.write())
        .await
        .unwrap();
    let in_order = |nodes: &[Value]| {
        let listed = ids(nodes);
        let mut sorted = listed.clone();
        sorted.sort_by_key(|id| Uuid::parse_str(id).unwrap());
        sorted.dedup();
        assert_eq!(listed, sorted, "once each, by id");
        listed
    };
    let seeded_where = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        let mut ids: Vec<Uuid> = (0..seeded.len())
            .filter(|i| keep(*i))
            .map(|i| seeded[i])
            .collect();
        ids.sort();
        ids.iter().map(Uuid::to_string).collect()
    };

    // Common: 10,000 emails and 10,000 usernames start with "seed".
    let common = all_pages(&app, &admin, 200, json!({ "search": "seed" })).await;
    assert_eq!(in_order(&common), seeded_where(&|_| true));
    // Rare, by email only (seed-0xx: 100) and by username only (Seed_01xx: 100),
    // 30 a page so that the cursor is used.
    let by_email = all_pages(&app, &admin, 30, json!({ "search": "seed-00" })).await;
    assert_eq!(in_order(&by_email), seeded_where(&|i| i < 100));
    let by_username = all_pages(&app, &admin, 30, json!({ "search": "SEED_01" })).await;
    assert_eq!(
        in_order(&by_username),
        seeded_where(&|i| (100..200).contains(&i))
    );
    // Rare, matching by both: each twin once.
    let both = all_pages(&app, &admin, 7, json!({ "search": "twin" })).await;
    let mut expected = twin_ids.clone();
    expected.sort_by_key(|id| Uuid::parse_str(id).unwrap());
    assert_eq!(in_order(&both), expected);
    // Rare with another filter: the rows are read and filtered.
    let disabled = all_pages(
        &app,
        &admin,
        3,
        json!({ "search": "twin", "disabled": true }),
    )
    .await;
    assert_eq!(in_order(&disabled).len(), 10, "i % 4 == 0 of 40");
    assert!(disabled.iter().all(|n| n["disabled"] == true));
    let rare_filtered = all_pages(
        &app,
        &admin,
        50,
        json!({ "search": "seed-00", "disabled": true }),
    )
    .await;
    assert_eq!(
        in_order(&rare_filtered),
        seeded_where(&|i| i < 100 && i % 7 == 0)
    );
    // Common with another filter: the walk filters as it goes.
    let common_filtered = all_pages(
        &app,
        &admin,
        200,
        json!({ "search": "seed", "mfaEnabled": true }),
    )
    .await;
    assert_eq!(in_order(&common_filtered), seeded_where(&|i| i % 5 == 0));
    // No match at all.
    assert!(all_pages(&app, &admin, 10, json!({ "search": "nobody" }))
        .await
        .is_empty());
}
