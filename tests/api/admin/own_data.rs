//! The owner's rights: `deleteAccount` and `exportMyData`.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

use super::{my_id, run};
use crate::{
    helpers::{code, email, on_postgres, reason, s, spawn_app, spawn_app_with, TestApp, PASSWORD},
    mfa::{align_to_step, enrolled, unix},
};

const DELETE: &str =
    "mutation($p: String!, $c: String) { deleteAccount(currentPassword: $p, code: $c) }";
const EXPORT: &str = "{ exportMyData }";

/// Every row of every table, each as one lowercased line of text (all its
/// columns), read straight from the database on either backend.
pub async fn every_row(app: &TestApp) -> Vec<String> {
    let db = app.state.db.write();
    let backend = db.get_database_backend();
    let raw = |sql: String| Statement::from_string(backend, sql);
    let mut lines = Vec::new();
    let tables: Vec<String> = if on_postgres() {
        db.query_all_raw(raw(
            "SELECT table_name::text AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                .into(),
        ))
        .await
        .unwrap()
    } else {
        db.query_all_raw(raw(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                .into(),
        ))
        .await
        .unwrap()
    }
    .into_iter()
    .map(|r| r.try_get::<String>("", "name").unwrap())
    .collect();
    assert!(tables.len() >= 15, "{tables:?}");
    for table in tables {
        let sql = if on_postgres() {
            format!("SELECT row_to_json(t)::text AS line FROM \"{table}\" t")
        } else {
            let columns: Vec<String> = db
                .query_all_raw(raw(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    // Blobs (ids) as hex, like a uuid without its hyphens.
                    let c = r.try_get::<String>("", "name").unwrap();
                    format!(
                        "coalesce(CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") \
                         ELSE quote(\"{c}\") END, '')"
                    )
                })
                .collect();
            format!(
                "SELECT {} AS line FROM \"{table}\"",
                columns.join(" || '|' || ")
            )
        };
        for row in db.query_all_raw(raw(sql)).await.unwrap() {
            let line = row.try_get::<String>("", "line").unwrap();
            lines.push(format!("{table}: {}", line.to_lowercase()));
        }
    }
    lines
}

/// The rows of [`every_row`] that contain `needle` (any case; an id also
/// as hex without hyphens, as SQLite stores it).
pub async fn rows_naming(app: &TestApp, needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    let bare = needle.replace('-', "");
    every_row(app)
        .await
        .into_iter()
        .filter(|l| l.contains(&needle) || (bare.len() == 32 && l.contains(&bare)))
        .collect()
}

async fn create_key(app: &TestApp, token: &str) -> String {
    let body = run(
        app,
        token,
        "mutation { createApiKey(input: { name: \"script\", scopes: [USER] }) { secret } }",
        json!({}),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    s(&body["data"]["createApiKey"], "secret").to_owned()
}

#[tokio::test]
async fn delete_account_leaves_no_row_with_the_email_in_any_table() {
    let app = spawn_app().await;
    let who = email();
    let username = format!("Gone_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let moving_to = email();
    // A failed login before the account existed names the address.
    app.login(&who, "wrong password 123").await;
    let body = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": who, "password": PASSWORD, "username": username } }),
        )
        .await;
    let token = s(&body["data"]["register"], "accessToken").to_owned();
    app.login(&who, "wrong password 123").await;
    let second = s(
        &app.login(&who, PASSWORD).await["data"]["login"],
        "accessToken",
    )
    .to_owned();
    let key = create_key(&app, &token).await;
    // A pending change to another address: its mail names that one.
    let change = run(
        &app,
        &token,
        "mutation($e: String!, $p: String!) { requestEmailChange(newEmail: $e, currentPassword: $p) }",
        json!({ "e": moving_to, "p": PASSWORD }),
    )
    .await;
    assert_eq!(change["data"]["requestEmailChange"], true, "{change}");
    let id = my_id(&app, &token).await;
    assert!(!rows_naming(&app, &who).await.is_empty());
    assert!(!rows_naming(&app, &moving_to).await.is_empty());

    // A wrong password deletes nothing.
    let wrong = run(&app, &token, DELETE, json!({ "p": "not the password 1" })).await;
    assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"), "{wrong}");
    assert_eq!(app.me(Some(&token)).await["data"]["me"]["id"], id);

    let body = run(&app, &token, DELETE, json!({ "p": PASSWORD })).await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    // Every session ended: this one, the other, and the key.
    assert_eq!(reason(&app.me(Some(&token)).await), Some("REVOKED"));
    assert_eq!(reason(&app.me(Some(&second)).await), Some("REVOKED"));
    assert_eq!(code(&app.me(Some(&key)).await), Some("UNAUTHENTICATED"));

    for needle in [who.as_str(), moving_to.as_str(), username.as_str()] {
        let left = rows_naming(&app, needle).await;
        assert!(left.is_empty(), "rows still name {needle}: {left:#?}");
    }
    // The history stays under the id, the deletion recorded without the
    // deleted person's IP or user agent.
    let rows = rows_naming(&app, &id).await;
    assert!(
        rows.iter().all(|r| r.starts_with("audit_events")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|r| r.contains("user_registered")));
    let deleted: Vec<_> = rows
        .iter()
        .filter(|r| r.contains("account_deleted"))
        .collect();
    assert_eq!(deleted.len(), 1, "{rows:#?}");
    assert!(!deleted[0].contains("127.0.0.1"), "{}", deleted[0]);
    // The address is free again.
    let again = app.register(&who).await;
    assert_ne!(again["user"]["id"], id);
}

#[tokio::test]
async fn delete_account_needs_a_session_the_app_code_and_another_admin() {
    let app = spawn_app().await;
    let who = email();
    let (token, auth, _) = enrolled(&app, &who).await;
    let key = create_key(&app, &token).await;

    let by_key = run(&app, &key, DELETE, json!({ "p": PASSWORD })).await;
    assert_eq!(code(&by_key), Some("FORBIDDEN"), "{by_key}");
    let no_code = run(&app, &token, DELETE, json!({ "p": PASSWORD })).await;
    assert_eq!(code(&no_code), Some("BAD_USER_INPUT"), "{no_code}");
    let wrong_code = run(
        &app,
        &token,
        DELETE,
        json!({ "p": PASSWORD, "c": "000000" }),
    )
    .await;
    assert_eq!(
        code(&wrong_code),
        Some("INVALID_CREDENTIALS"),
        "{wrong_code}"
    );
    assert!(app.me(Some(&token)).await["errors"].is_null());

    // The code of the next step (the one that confirmed is spent).
    app.clock.advance(std::time::Duration::from_secs(30));
    align_to_step(&app);
    let totp = auth.code_at(unix(&app));
    let body = run(&app, &token, DELETE, json!({ "p": PASSWORD, "c": totp })).await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    assert_eq!(
        code(&app.login(&who, PASSWORD).await),
        Some("INVALID_CREDENTIALS")
    );

    // The last administrator cannot leave the server without one.
    let admin = app.admin_token().await;
    let refused = run(&app, &admin, DELETE, json!({ "p": PASSWORD })).await;
    assert_eq!(code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    assert_eq!(app.me(Some(&admin)).await["data"]["me"]["role"], "ADMIN");
}

/// Every string anywhere in `value`, lowercased, joined.
fn text(value: &Value) -> String {
    value.to_string().to_lowercase()
}

#[tokio::test]
async fn an_export_holds_the_callers_data_and_nobody_elses() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rates.rate_export = "2/h".parse().unwrap();
    })
    .await;
    let from = |ip: &str, agent: &str| {
        vec![
            ("X-Forwarded-For", ip.to_owned()),
            ("User-Agent", agent.to_owned()),
        ]
    };
    let register =
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }";
    let (alice, bob) = (email(), email());
    let a = app
        .gql_with_headers(
            None,
            register,
            json!({ "i": { "email": alice, "password": PASSWORD } }),
            &from("203.0.113.7", "AliceBrowser/1.0"),
        )
        .await;
    let b = app
        .gql_with_headers(
            None,
            register,
            json!({ "i": { "email": bob, "password": PASSWORD } }),
            &from("198.51.100.9", "BobBrowser/2.0"),
        )
        .await;
    let a_token = s(&a["data"]["register"], "accessToken").to_owned();
    let a_refresh = s(&a["data"]["register"], "refreshToken").to_owned();
    let b_token = s(&b["data"]["register"], "accessToken").to_owned();
    let (a_id, b_id) = (my_id(&app, &a_token).await, my_id(&app, &b_token).await);
    let a_key = create_key(&app, &a_token).await;
    let b_key = create_key(&app, &b_token).await;
    // An administrator acts on Alice from an address of their own.
    let admin = app.admin_token().await;
    let admin_id = my_id(&app, &admin).await;
    for op in [
        "mutation($id: ID!) { disableUser(id: $id, reason: \"check\") { id } }",
        "mutation($id: ID!) { enableUser(id: $id) { id } }",
    ] {
        let body = app
            .gql_with_headers(
                Some(&admin),
                op,
                json!({ "id": a_id }),
                &from("192.0.2.44", "AdminConsole/3.0"),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let a_token = s(
        &app.login_with_headers(&alice, PASSWORD, &from("203.0.113.8", "AliceBrowser/1.0"))
            .await["data"]["login"],
        "accessToken",
    )
    .to_owned();
    // Bob is active too.
    run(
        &app,
        &b_token,
        "{ auditLog { edges { cursor } } }",
        json!({}),
    )
    .await;

    // A key may not download the account.
    assert_eq!(
        code(&run(&app, &a_key, EXPORT, json!({})).await),
        Some("FORBIDDEN")
    );

    let body = run(&app, &a_token, EXPORT, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let export = &body["data"]["exportMyData"];
    assert_eq!(export["format"], "warden-export/1");
    assert_eq!(export["account"]["id"], a_id.as_str());
    assert_eq!(export["account"]["email"], alice.as_str());
    let sessions = export["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{export:#}");
    assert_eq!(export["sessionsTotal"], 2);
    assert!(sessions
        .iter()
        .any(|s| s["ip"] == "203.0.113.7" && s["userAgent"] == "AliceBrowser/1.0"));
    assert!(sessions.iter().any(|s| s["current"] == true));
    assert_eq!(export["apiKeys"].as_array().unwrap().len(), 1);
    let kinds: Vec<&str> = export["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "USER_REGISTERED",
        "API_KEY_CREATED",
        "USER_DISABLED",
        "USER_ENABLED",
        "DATA_EXPORTED",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        export["auditEventsTotal"].as_u64().unwrap() as usize,
        kinds.len()
    );
    let disabled = export["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "USER_DISABLED")
        .unwrap();
    assert_eq!(disabled["detail"]["byAdministrator"], true, "{disabled}");
    assert!(
        disabled["ip"].is_null() && disabled["sessionId"].is_null(),
        "{disabled}"
    );

    // Nobody else's data: not Bob's, not the administrator's.
    let all = text(export);
    for other in [
        bob.as_str(),
        b_id.as_str(),
        "198.51.100.9",
        "bobbrowser",
        admin_id.as_str(),
        "192.0.2.44",
        "adminconsole",
    ] {
        assert!(
            !all.contains(&other.to_lowercase()),
            "the export holds {other}"
        );
    }
    // And no secret of Alice's: tokens, keys, or any hash.
    let hashes = every_row(&app).await;
    let password_hash = hashes
        .iter()
        .find(|l| l.starts_with("users") && l.contains(&alice))
        .and_then(|l| l.split(['|', '"', '\'']).find(|p| p.starts_with("$2")))
        .expect("the stored bcrypt hash")
        .to_owned();
    for secret in [
        a_refresh.as_str(),
        a_key.as_str(),
        b_key.as_str(),
        password_hash.as_str(),
    ] {
        assert!(
            !all.contains(&secret.to_lowercase()),
            "the export holds a secret"
        );
    }

    // auditLog shows the owner the same; an administrator sees who it was.
    let query = "query($u: ID) { auditLog(filter: { kinds: [USER_DISABLED], userId: $u }) { edges { node { ip userAgent sessionId detail } } } }";
    let own = run(&app, &a_token, query, json!({ "u": a_id })).await;
    let node = &own["data"]["auditLog"]["edges"][0]["node"];
    assert_eq!(node["detail"]["byAdministrator"], true, "{own}");
    assert!(node["ip"].is_null() && node["userAgent"].is_null() && node["sessionId"].is_null());
    assert!(!text(&own).contains(&admin_id), "{own}");
    let admins = run(&app, &admin, query, json!({ "u": a_id })).await;
    let node = &admins["data"]["auditLog"]["edges"][0]["node"];
    assert_eq!(node["detail"]["by"], admin_id.as_str(), "{admins}");
    assert_eq!(node["ip"], "192.0.2.44");

    // Audited, and limited per account (2 an hour here).
    assert!(run(&app, &a_token, EXPORT, json!({})).await["errors"].is_null());
    let third = run(&app, &a_token, EXPORT, json!({})).await;
    assert_eq!(code(&third), Some("RATE_LIMITED"), "{third}");
    // Bob's budget is his own.
    assert!(run(&app, &b_token, EXPORT, json!({})).await["errors"].is_null());
}

#[tokio::test]
async fn delete_account_spends_logins_limit_per_ip() {
    // Each try is a password guess: limited like `login`.
    let app = spawn_app_with(|c| c.rates.rate_login_ip = "2/h".parse().unwrap()).await;
    let token = s(&app.register(&email()).await, "accessToken").to_owned();
    for _ in 0..2 {
        let wrong = run(&app, &token, DELETE, json!({ "p": "not the password 1" })).await;
        assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"), "{wrong}");
    }
    let limited = run(&app, &token, DELETE, json!({ "p": PASSWORD })).await;
    assert_eq!(code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(
        app.me(Some(&token)).await["errors"].is_null(),
        "not deleted"
    );
}
