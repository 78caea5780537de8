//! A database that goes away: every operation answers SERVICE_UNAVAILABLE
//! quickly, /readyz says so, and Warden recovers by itself. Postgres only
//! (SQLite has no network to lose); runs in the Postgres pass.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::{net::TcpListener, sync::watch};

use crate::helpers::{code, email, on_postgres, spawn_app_with, test_database, PASSWORD};

/// A TCP proxy in front of Postgres that the test can cut and restore.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (accept_up, accept_cut) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client); // refused while down
                    continue;
                }
                let target = target.clone();
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {} // dropping both ends kills the connection
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://u@host:port/db` → the same through `addr`.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, host) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, h)| (u, h));
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    (format!("{scheme}://{user}{addr}/{path}"), host.to_owned())
}

#[tokio::test]
async fn while_the_database_is_down_every_operation_is_unavailable_and_it_recovers() {
    if !on_postgres() {
        return; // nothing to cut on SQLite; this runs in the Postgres pass
    }
    let dir = tempfile::tempdir().unwrap();
    let direct = test_database(&dir).await;
    let (_, target) = through(&direct, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(target).await;
    let (proxied, _) = through(&direct, proxy.addr);
    let app = spawn_app_with(move |c| {
        c.database_url = proxied.into();
        c.database_acquire_timeout = Duration::from_secs(1);
    })
    .await;
    let who = email();
    let session = app.register(&who).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let refresh = session["refreshToken"].as_str().unwrap().to_owned();

    proxy.down();
    let started = Instant::now();
    let bodies = [
        app.login(&who, PASSWORD).await,
        app.me(Some(&access)).await,
        app.refresh(&refresh).await,
        app.gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            json!({ "i": { "email": email(), "password": PASSWORD } }),
        )
        .await,
    ];
    for body in &bodies {
        assert_eq!(code(body), Some("SERVICE_UNAVAILABLE"), "{body}");
        let text = body.to_string().to_lowercase();
        assert!(
            !text.contains("sql") && !text.contains("postgres") && !text.contains("connection"),
            "{text}"
        );
    }
    // A hang guard, not a speed target: four operations within a few timeouts.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap().contains("database"));
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("warden_dependency_up{dependency=\"database\"} 0"),
        "{metrics}"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let me = app.me(Some(&access)).await;
        if me["errors"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {me}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(app.refresh(&refresh).await["errors"].is_null());
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Two transactions that take the same rows in opposite orders: Postgres
/// rolls one back with deadlock_detected (40P01). Warden never does this to
/// itself, but another client of the same database can; the request that
/// loses is worth retrying, so it is SERVICE_UNAVAILABLE, not INTERNAL.
#[tokio::test]
async fn a_deadlock_on_postgres_is_unavailable_not_internal() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    if !on_postgres() {
        return; // SQLite has one writer: no deadlock to provoke
    }
    let dir = tempfile::tempdir().unwrap();
    let url = test_database(&dir).await;
    let (a, b) = (
        Database::connect(url.clone()).await.unwrap(),
        Database::connect(url).await.unwrap(),
    );
    a.execute_unprepared(
        "CREATE TABLE pair (id int PRIMARY KEY, n int); INSERT INTO pair VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    let (ta, tb) = (a.begin().await.unwrap(), b.begin().await.unwrap());
    ta.execute_unprepared("UPDATE pair SET n = 1 WHERE id = 1")
        .await
        .unwrap();
    tb.execute_unprepared("UPDATE pair SET n = 1 WHERE id = 2")
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        ta.execute_unprepared("UPDATE pair SET n = 2 WHERE id = 2"),
        tb.execute_unprepared("UPDATE pair SET n = 2 WHERE id = 1"),
    );
    let lost = match (first, second) {
        (Err(err), Ok(_)) | (Ok(_), Err(err)) => err,
        other => panic!("expected exactly one deadlock victim: {other:?}"),
    };
    assert!(lost.to_string().contains("deadlock"), "{lost}");
    assert_eq!(
        warden::error::AppError::from(lost).code(),
        "SERVICE_UNAVAILABLE"
    );
}
