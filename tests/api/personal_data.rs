//! Email-keyed counters hold no personal data: after logins with the right
//! and the wrong password, neither the Redis keys and values under the
//! server's prefix nor the database's lockout rows contain the address,
//! its local part or its domain (only the keyed hash of the address).

use sea_orm::EntityTrait;

use crate::helpers::{code, spawn_app, spawn_app_with, TestApp, PASSWORD};

/// An address whose local part and domain are each unique to this test, so
/// finding either one anywhere is a leak, not a coincidence.
fn distinctive_email() -> (String, String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let local = format!("Private.Person{}", &id[..12]);
    let domain = format!("home{}.example.org", &id[12..24]);
    (format!("{local}@{domain}"), local, domain)
}

/// Registers the address (mixed case, as a user may type it) and logs in
/// with the right password, the wrong one, and for an address with no
/// account; returns every string that must not be found.
async fn log_in_and_out(app: &TestApp) -> Vec<String> {
    let (email, local, domain) = distinctive_email();
    app.register(&email).await;
    let ok = app.login(&email, PASSWORD).await;
    assert!(ok["errors"].is_null(), "{ok}");
    for _ in 0..3 {
        let wrong = app.login(&email, "not the right password").await;
        assert_eq!(code(&wrong), Some("INVALID_CREDENTIALS"), "{wrong}");
    }
    let (stranger, stranger_local, stranger_domain) = distinctive_email();
    let unknown = app.login(&stranger, "not the right password").await;
    assert_eq!(code(&unknown), Some("INVALID_CREDENTIALS"), "{unknown}");
    let mut secrets = Vec::new();
    for part in [
        email,
        local,
        domain,
        stranger,
        stranger_local,
        stranger_domain,
    ] {
        secrets.push(part.to_lowercase());
        secrets.push(part);
    }
    secrets
}

/// The first of `secrets` that `text` contains.
fn leak<'a>(text: &str, secrets: &'a [String]) -> Option<&'a String> {
    secrets.iter().find(|secret| text.contains(secret.as_str()))
}

#[tokio::test]
async fn redis_keys_and_values_hold_no_email_after_logins() {
    let Ok(url) = std::env::var("WARDEN_TEST_REDIS_URL") else {
        eprintln!("skipped: WARDEN_TEST_REDIS_URL is not set");
        return;
    };
    // Quotas slow enough that the buckets outlive the test in Redis (the
    // test default, 100000/s, empties a bucket within microseconds).
    let app = spawn_app_with(|c| {
        c.rates.rate_login_ip = "1000/h".parse().unwrap();
        c.rates.rate_login_email = "1000/h".parse().unwrap();
        c.rates.rate_register_ip = "1000/h".parse().unwrap();
    })
    .await;
    let prefix = app.config.redis_prefix.clone();
    assert!(prefix.starts_with("test-"), "{prefix}");
    let secrets = log_in_and_out(&app).await;

    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    // The login buckets (per IP, per IP and email) were written.
    assert!(keys.len() >= 2, "{} keys under {prefix}", keys.len());
    for key in &keys {
        let name = String::from_utf8_lossy(key).into_owned();
        assert_eq!(leak(&name, &secrets), None, "in the key {name}");
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            // Gone between SCAN and TYPE: its bucket expired.
            "none" => continue,
            "string" => vec![redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .unwrap()
                .unwrap_or_default()],
            "hash" => redis::cmd("HGETALL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("{name}: a {other} this test cannot read; teach it"),
        };
        for value in values {
            let value = String::from_utf8_lossy(&value);
            assert_eq!(leak(&value, &secrets), None, "in the value of {name}");
        }
    }
}

#[tokio::test]
async fn lockout_rows_hold_no_email_after_logins() {
    let app = spawn_app().await;
    let secrets = log_in_and_out(&app).await;
    let rows = entity::login_attempt::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    // Failed logins were counted for both addresses, per email and per client.
    assert!(rows.len() >= 2, "{rows:?}");
    for row in &rows {
        assert_eq!(leak(&row.email, &secrets), None, "in the row {row:?}");
    }
}
