//! `spawn_app()` and `TestApp`: a real Warden on `127.0.0.1:0` with its own
//! SQLite file, driven over HTTP with reqwest.

use std::{
    io::Write,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};
use warden::{clock::Clock, config::Config, startup::App, state::AppState};

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// Everything every test's server logged, at DEBUG, for the secrets check.
static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(logs) = LOGS.get() {
            if let Ok(mut logs) = logs.lock() {
                logs.extend_from_slice(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                "debug,hyper=info,h2=info,reqwest=info,rustls=info,tokio_postgres=info",
            )
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init();
        Mutex::new(Vec::new())
    });
}

/// All log output captured so far, from every test in this binary.
pub fn captured_logs() -> String {
    LOGS.get()
        .and_then(|l| {
            l.lock()
                .ok()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
        })
        .unwrap_or_default()
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The server's state (database handle, config, keys).
    pub state: AppState,
    /// The server's clock: `clock.advance(..)` moves its time.
    pub clock: Clock,
    /// The config the server runs with, for restarts.
    pub config: Config,
    pub client: reqwest::Client,
    dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// A server with the test defaults: its own SQLite file, bcrypt cost 4.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test defaults changed by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults().expect("default config");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.database_url = test_database(&dir).await.into();
    if let Ok(redis) = std::env::var("WARDEN_TEST_REDIS_URL") {
        config.redis_url = Some(redis.into());
        config.redis_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    }
    config.bcrypt_cost = 4;
    // Tests raise the limits; the abuse tests set their own.
    let generous: warden::config::RateQuota = "100000/s".parse().expect("quota");
    config.rates.rate_login_ip = generous;
    config.rates.rate_login_email = generous;
    config.rates.rate_register_ip = generous;
    config.rates.rate_refresh_ip = generous;
    config.rates.rate_mail_ip = generous;
    config.rates.rate_mail_email = generous;
    config.rates.rate_email_token_ip = generous;
    config.rates.rate_email_code = generous;
    config.rates.rate_passkey_ip = generous;
    config.rates.rate_mfa_user = generous;
    config.rates.rate_anonymous = generous;
    config.rates.rate_user = generous;
    config.rates.rate_admin = generous;
    config.lockout_threshold = 1000;
    // Mail without SMTP goes to files: the test's own directory, not the repository's.
    config.mail_dir = dir.path().join("mail");
    tweak(&mut config);
    start(config, Clock::system(), Some(dir)).await
}

/// A fresh, empty database for one test: a new Postgres database when
/// `WARDEN_TEST_DATABASE_URL` names a server, else a SQLite file in `dir`.
pub async fn test_database(dir: &TempDir) -> String {
    match std::env::var("WARDEN_TEST_DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            use sea_orm::{ConnectionTrait, Database};
            // The process id in the name lets a later run drop what an
            // earlier one left (a test binary never drops its own: a test's
            // server may still be closing when the test returns).
            let name = format!(
                "warden_test_{}_{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            let server = Database::connect(admin.clone())
                .await
                .expect("test Postgres reachable");
            drop_leftovers_once(&server).await;
            drop_finished(&server).await;
            server
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("test database created");
            FINISHED_WITH_DIR
                .lock()
                .expect("registry")
                .push((dir.path().to_owned(), name.clone()));
            server.close().await.ok();
            with_database_name(&admin, &name)
        }
        _ => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("warden.db").display()
        ),
    }
}

/// This process's test databases, each with the directory of the test
/// that made it: a test's `TempDir` is removed when the test ends, and
/// then its database is dropped by the next test that makes one.
static FINISHED_WITH_DIR: Mutex<Vec<(std::path::PathBuf, String)>> = Mutex::new(Vec::new());

/// Drops the databases of this process's finished tests. Without it a
/// run of the suite keeps some 430 databases (about 4 GB) to its end,
/// more than a CI machine's disk may hold. `FORCE` ends the connections
/// a stopped test's server may still have open.
async fn drop_finished(server: &sea_orm::DatabaseConnection) {
    use sea_orm::ConnectionTrait;
    let finished: Vec<String> = {
        let mut live = FINISHED_WITH_DIR.lock().expect("registry");
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *live)
            .into_iter()
            .partition(|(dir, _)| !dir.exists());
        *live = kept;
        gone.into_iter().map(|(_, name)| name).collect()
    };
    for name in finished {
        let _ = server
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
    }
}

/// Drops, once per test process, the databases of test processes that
/// are gone, so repeated local runs do not fill the disk (about 8 MB each).
async fn drop_leftovers_once(server: &sea_orm::DatabaseConnection) {
    use sea_orm::{ConnectionTrait, Statement};
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let rows = server
                .query_all_raw(Statement::from_string(
                    server.get_database_backend(),
                    "SELECT datname FROM pg_database WHERE datname LIKE 'warden\\_test\\_%'",
                ))
                .await
                .unwrap_or_default();
            for row in rows {
                let Ok(name) = row.try_get::<String>("", "datname") else {
                    continue;
                };
                let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
                // Older names carry no pid: those are leftovers too. Without
                // FORCE, a database still in use (a run elsewhere) stays.
                let gone = pid.is_none_or(|pid| {
                    pid != std::process::id()
                        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                });
                if gone {
                    let _ = server
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                        .await;
                }
            }
        })
        .await;
}

/// True when the suite runs on Postgres.
pub fn on_postgres() -> bool {
    std::env::var("WARDEN_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/name?x`.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("URL with a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

async fn start(config: Config, clock: Clock, dir: Option<TempDir>) -> TestApp {
    let app = App::build(config.clone(), clock.clone())
        .await
        .expect("app builds");
    let address = format!("http://{}", app.addr());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        state,
        clock,
        config,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database, config and clock.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        start(config, self.clock.clone(), self.dir.take()).await
    }

    /// A second server on the same database (and Redis), with its own port
    /// and the same clock: another instance behind the load balancer.
    pub async fn sibling(&self) -> TestApp {
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().expect("addr");
        start(config, self.clock.clone(), None).await
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// The SQLite file, for running the CLI against the same database.
    pub fn database_url(&self) -> String {
        use secrecy::ExposeSecret;
        self.config.database_url.expose_secret().to_owned()
    }

    /// POSTs a GraphQL document and returns the HTTP response.
    pub async fn post(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> reqwest::Response {
        self.post_with_headers(token, query, variables, &[]).await
    }

    /// [`post`](Self::post) with extra request headers (a proxy's
    /// `X-Forwarded-For`, say).
    pub async fn post_with_headers(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        req.send().await.expect("request sent")
    }

    /// POSTs a GraphQL document, expects 200, returns the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_with_headers(token, query, variables, &[]).await
    }

    /// [`gql`](Self::gql) with extra request headers.
    pub async fn gql_with_headers(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        headers: &[(&str, String)],
    ) -> Value {
        let response = self
            .post_with_headers(token, query, variables, headers)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "GraphQL over HTTP should answer 200"
        );
        response.json().await.expect("JSON body")
    }

    /// `register` with `email` and [`PASSWORD`]; returns the payload.
    pub async fn register(&self, email: &str) -> Value {
        let body = self
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken sessionId user { id email role } } }",
                json!({ "i": { "email": email, "password": PASSWORD } }),
            )
            .await;
        assert!(body["errors"].is_null(), "register failed: {body}");
        body["data"]["register"].clone()
    }

    /// `login` and return the whole body.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.login_with_headers(email, password, &[]).await
    }

    /// [`login`](Self::login) with extra request headers.
    pub async fn login_with_headers(
        &self,
        email: &str,
        password: &str,
        headers: &[(&str, String)],
    ) -> Value {
        self.gql_with_headers(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken sessionId user { id email } } }",
            json!({ "i": { "email": email, "password": password } }),
            headers,
        )
        .await
    }

    /// `refresh` and return the whole body.
    pub async fn refresh(&self, refresh_token: &str) -> Value {
        self.gql(
            None,
            "mutation($t: String) { refresh(refreshToken: $t) { accessToken refreshToken refreshTokenExpiresAt sessionId } }",
            json!({ "t": refresh_token }),
        )
        .await
    }

    /// Creates an administrator with the real `warden admin create` and
    /// returns an access token of theirs.
    pub async fn admin_token(&self) -> String {
        let who = email();
        let out = crate::cli::warden(
            &self.database_url(),
            &["admin", "create", &who],
            &format!("{PASSWORD}\n"),
            &[],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s(
            &self.login(&who, PASSWORD).await["data"]["login"],
            "accessToken",
        )
        .to_owned()
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text")
    }

    /// `me` with `token`, whole body.
    pub async fn me(&self, token: Option<&str>) -> Value {
        self.gql(token, "{ me { id email role } }", json!({})).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh, unique email.
pub fn email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The `extensions.code` of the first error, if any.
pub fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The `extensions.reason` of the first error, if any.
pub fn reason(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["reason"].as_str()
}

/// A string field of a payload.
pub fn s<'a>(payload: &'a Value, field: &str) -> &'a str {
    payload[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {payload}"))
}
