//! The real binary as an operator runs it: JSON logs, start-up line, SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use entity::refresh_token;
use sea_orm::{Database, EntityTrait};
use serde_json::{json, Value};

use crate::helpers::PASSWORD;

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    /// Reads the server's stdout as it comes: a pipe nobody reads fills up
    /// and blocks the server's next log line.
    stdout: std::thread::JoinHandle<Vec<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `warden serve` on a fresh SQLite file with JSON logs.
async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WARDEN_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .arg("serve")
        .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display()),
        )
        .env("WARDEN_BCRYPT_COST", "4")
        .env("WARDEN_RATE_LIMITS", "off")
        .env("WARDEN_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap());
    let stdout = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        base,
        dir,
        stdout,
    }
}

impl Server {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}/graphql", self.base))
            .header("user-agent", "ops-test")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn register(&self, email: &str) -> String {
        let body = self
            .gql(
                "mutation($i: RegisterInput!) { register(input: $i) { refreshToken } }",
                json!({ "i": { "email": email, "password": PASSWORD } }),
            )
            .await;
        body["data"]["register"]["refreshToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sends SIGTERM and returns (exit success, stdout lines).
    fn terminate(mut self) -> (bool, Vec<String>, tempfile::TempDir) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "warden did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines = self.stdout.join().unwrap();
        (exit.success(), lines, self.dir)
    }
}

#[tokio::test]
async fn json_logs_parse_line_by_line_and_the_start_up_line_says_where() {
    let server = serve().await;
    server.register("ops@example.com").await;
    server
        .gql(
            "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            json!({ "i": { "email": "ghost\u{1b}[31m@example.com", "password": "x\r\nINFO forged" } }),
        )
        .await;
    let (ok, lines, _dir) = server.terminate();
    assert!(ok, "exit code 0 after SIGTERM");
    assert!(lines.len() >= 3, "{lines:?}");
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = events
        .iter()
        .find(|e| e["message"] == "warden is serving")
        .expect("start-up line");
    assert!(start["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(start["store"].as_str().unwrap().starts_with("sqlite://"));
    assert_eq!(start["limiter"], "off");
    assert!(start["graphiql"].as_str().unwrap().ends_with("/graphql"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "USER_REGISTERED" && e["spans"][0]["request_id"].is_string()),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .all(|l| !l.contains('\u{1b}') && !l.contains(PASSWORD)));
    assert!(events.iter().any(|e| e["message"] == "warden stopped"));
}

#[tokio::test]
async fn sigterm_during_a_refresh_storm_leaves_no_half_rotated_session() {
    let server = serve().await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(server.register(&format!("storm{i}@example.com")).await);
    }
    let base = server.base.clone();
    let storm: Vec<_> = tokens
        .into_iter()
        .map(|mut token| {
            let base = base.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for _ in 0..200 {
                    let sent = client
                        .post(format!("{base}/graphql"))
                        .json(&json!({ "query": "mutation($t: String) { refresh(refreshToken: $t) { refreshToken } }", "variables": { "t": token } }))
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    let Ok(body) = response.json::<Value>().await else { break };
                    match body["data"]["refresh"]["refreshToken"].as_str() {
                        Some(next) => token = next.to_owned(),
                        None => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, _lines, dir) = server.terminate();
    for task in storm {
        let _ = task.await;
    }
    assert!(ok, "exit code 0 after SIGTERM");

    let db = Database::connect(format!(
        "sqlite://{}?mode=rw",
        dir.path().join("w.db").display()
    ))
    .await
    .unwrap();
    let tokens = refresh_token::Entity::find().all(&db).await.unwrap();
    assert!(
        tokens.len() > 6,
        "the storm rotated something before the signal"
    );
    let mut sessions: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
    for t in &tokens {
        sessions.entry(t.session_id).or_default().push(t);
    }
    assert_eq!(sessions.len(), 6);
    for chain in sessions.values() {
        let unused = chain.iter().filter(|t| t.used_at.is_none()).count();
        assert_eq!(unused, 1, "exactly one live token per session");
        for used in chain.iter().filter(|t| t.used_at.is_some()) {
            let children = chain
                .iter()
                .filter(|t| t.parent_id == Some(used.id))
                .count();
            assert_eq!(children, 1, "every spent token has exactly one successor");
        }
    }
}
