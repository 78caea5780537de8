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
    serve_with(&[("WARDEN_LOG_FORMAT", "json")]).await
}

/// A `warden` command with no `WARDEN_*`, `RUST_LOG` or `NO_COLOR` from the
/// test's own environment.
fn bare_warden() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WARDEN_") || key == "RUST_LOG" || key == "NO_COLOR" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Starts `warden serve` on a fresh SQLite file with `extra` settings, its
/// stdout piped.
async fn serve_with(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = bare_warden()
        .arg("serve")
        .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display()),
        )
        .env("WARDEN_BCRYPT_COST", "4")
        .env("WARDEN_RATE_LIMITS", "off")
        .envs(extra.iter().copied())
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

/// The parsed `warden::access` lines of a JSON log.
fn access_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["target"] == "warden::access")
        .collect()
}

#[tokio::test]
async fn each_request_writes_one_access_line_with_no_secret_in_the_whole_log() {
    let server = serve().await;
    let client = reqwest::Client::new();
    let (who, password) = ("access-log-user@example.com", PASSWORD);
    let registered = server
        .gql(
            "mutation Register($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }",
            json!({ "i": { "email": who, "password": password } }),
        )
        .await;
    let access_token = registered["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = client
        .post(format!("{}/graphql", server.base))
        .header("x-request-id", "lb-7f3a:login.1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({
            "query": "mutation SignIn($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }",
            "operationName": "SignIn",
            "variables": { "i": { "email": who, "password": password } },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    assert_eq!(login.headers()["x-request-id"], "lb-7f3a:login.1");
    assert!(
        login.headers().get("traceparent").is_none(),
        "traceparent is not sent back to the caller"
    );
    let body: Value = login.json().await.unwrap();
    let refresh_token = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // A GET query: its variables (here a token) live in the query string.
    let get = client
        .get(format!("{}/graphql", server.base))
        .query(&[
            ("query", "query Me($t: String) { me { id } }"),
            ("variables", &json!({ "t": refresh_token }).to_string()),
        ])
        .bearer_auth(&access_token)
        .header("x-request-id", "bad id <script>")
        .header(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let replaced = get.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(replaced.len(), 36, "a fresh UUID instead: {replaced}");
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    let health_id = health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, lines, _dir) = server.terminate();

    let access = access_lines(&lines);
    let signin: Vec<&Value> = access
        .iter()
        .filter(|e| e["request_id"] == "lb-7f3a:login.1")
        .collect();
    assert_eq!(signin.len(), 1, "one line per request: {lines:#?}");
    let line = signin[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "request");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/graphql");
    assert_eq!(line["status"], 200);
    assert_eq!(line["operation"], "SignIn");
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["parent_id"], "00f067aa0ba902b7");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(
        access.iter().any(|e| e["operation"] == "Register"),
        "{lines:#?}"
    );
    // The GET: its path without the query string, its fresh id, the bad
    // one nowhere.
    let me = access
        .iter()
        .find(|e| e["request_id"] == replaced.as_str())
        .unwrap_or_else(|| panic!("no line for the GET: {lines:#?}"));
    assert_eq!(me["path"], "/graphql");
    assert_eq!(me["method"], "GET");
    assert_eq!(me["operation"], "Me");
    assert_eq!(me["request_id_replaced"], true);
    assert!(
        me["trace_id"].is_null(),
        "an all-zero trace id is refused: {me}"
    );
    // The internal lines of a request carry the same id as its access line.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("LOGIN_SUCCEEDED") && l.contains("lb-7f3a:login.1")),
        "{lines:#?}"
    );
    // Probes are logged at DEBUG: nothing at the default level.
    assert!(
        !access.iter().any(|e| e["request_id"] == health_id.as_str()),
        "{lines:#?}"
    );
    let all = lines.join("\n");
    for secret in [
        password,
        who,
        access_token.as_str(),
        refresh_token.as_str(),
        "<script>",
    ] {
        assert!(!all.contains(secret), "{secret} reached the log:\n{all}");
    }
}

#[tokio::test]
async fn pretty_logs_to_a_pipe_have_no_escape_codes() {
    let server = serve_with(&[]).await;
    server.register("pretty-pipe@example.com").await;
    let (ok, lines, _dir) = server.terminate();
    assert!(ok);
    let all = lines.join("\n");
    assert!(all.contains("warden::access"), "{all}");
    assert!(all.contains("warden is serving"), "{all}");
    assert!(!all.contains("\u{1b}["), "ANSI codes in a pipe:\n{all}");
}

/// Runs the binary to its end, or kills it after `limit` (and fails).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match waited.recv_timeout(limit) {
        Ok(output) => {
            let output = output.unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("warden still running after {limit:?}");
        }
    }
}

#[test]
fn an_unreachable_postgres_is_retried_then_start_up_fails_naming_the_host() {
    let port = free_port(); // bound and released: nothing listens there
    let secret = "Sup3rS3cretDbPassw0rd";
    let mut cmd = bare_warden();
    cmd.arg("serve")
        .env("WARDEN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "WARDEN_DATABASE_URL",
            format!("postgres://warden:{secret}@127.0.0.1:{port}/warden"),
        )
        .env("WARDEN_DATABASE_CONNECT_TIMEOUT", "2s")
        .env("WARDEN_LOG_FORMAT", "json");
    let (ok, stdout, stderr) = run_bounded(cmd, Duration::from_secs(30));
    assert!(!ok, "start-up must fail");
    let server = format!("127.0.0.1:{port}");
    assert!(stderr.contains(&server), "{stderr}");
    assert!(stderr.contains("within 2s"), "{stderr}");
    let retries: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["message"] == "database not reachable yet; retrying")
        .collect();
    assert!(retries.len() >= 2, "each attempt is logged: {stdout}");
    assert!(retries
        .iter()
        .all(|e| e["level"] == "WARN" && e["server"] == server.as_str()));
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the password leaked:\n{stdout}\n{stderr}"
    );
}

#[test]
fn a_sqlite_file_that_cannot_be_opened_fails_at_once_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("w.db");
    let mut cmd = bare_warden();
    cmd.arg("serve")
        .env("WARDEN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", path.display()),
        )
        .env("WARDEN_LOG_FORMAT", "json");
    let (ok, stdout, stderr) = run_bounded(cmd, Duration::from_secs(30));
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot open the SQLite database {}",
            path.display()
        )),
        "{stderr}"
    );
    assert!(!stdout.contains("retrying"), "no retry: {stdout}");
}

#[tokio::test]
async fn metrics_on_their_own_listener_are_gone_from_the_main_one() {
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let server = serve_with(&[
        ("WARDEN_LOG_FORMAT", "json"),
        ("WARDEN_METRICS_LISTEN", &metrics_addr),
    ])
    .await;
    let client = reqwest::Client::new();
    let main = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), reqwest::StatusCode::NOT_FOUND);
    let scraped = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), reqwest::StatusCode::OK);
    let text = scraped.text().await.unwrap();
    // The main listener's 404 was counted, and is visible on the other one.
    assert!(
        text.contains("warden_http_responses_total{status=\"404\"} 1"),
        "{text}"
    );
    let graphql = client
        .get(format!("http://{metrics_addr}/graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        graphql.status(),
        reqwest::StatusCode::NOT_FOUND,
        "only /metrics there"
    );
    let (ok, lines, _dir) = server.terminate();
    assert!(ok, "both listeners stop on SIGTERM");
    let start = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["message"] == "warden is serving")
        .expect("start-up line");
    assert_eq!(start["metrics"], format!("http://{metrics_addr}/metrics"));
}
