//! The `warden` binary: admin commands, migrate, export-schema, bad config.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use sea_orm::EntityTrait;

use crate::helpers::{code, email, s, spawn_app, spawn_app_with};

/// Runs the real binary with `args`, `stdin` on standard input and the test
/// database; no other `WARDEN_*` settings leak in.
///
/// Awaited, never blocked on: a test's servers run as tasks on the test's
/// own single-threaded runtime. Had the test thread blocked on the child,
/// a server task caught between its `BEGIN IMMEDIATE` and its `COMMIT` (a
/// mail sender recording a delivery, say) would have kept SQLite's write
/// lock until the command gave up: seen as a command waiting out its whole
/// 30 s busy timeout and then failing with "database is locked".
pub async fn warden(
    database_url: &str,
    args: &[&str],
    stdin: &str,
    extra_env: &[(&str, &str)],
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::from(command(database_url, args, extra_env))
        .spawn()
        .expect("warden binary runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("stdin written");
    drop(input);
    child.wait_with_output().await.expect("warden exits")
}

/// [`warden`] for a test with no server of its own running (nothing on its
/// thread to starve).
pub fn warden_blocking(
    database_url: &str,
    args: &[&str],
    stdin: &str,
    extra_env: &[(&str, &str)],
) -> Output {
    let mut child = command(database_url, args, extra_env)
        .spawn()
        .expect("warden binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("warden exits")
}

fn command(database_url: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WARDEN_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("WARDEN_DATABASE_URL", database_url)
        .env("WARDEN_BCRYPT_COST", "4")
        // The test server may be writing hard (50 logins at once) on the
        // same SQLite file: the command waits for the write lock longer
        // than a request would, as an operator's would.
        .env("WARDEN_DATABASE_ACQUIRE_TIMEOUT", "30s")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A database URL in a fresh temporary directory, removed with the guard.
fn scratch() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("scratch.db").display()
    );
    (dir, url)
}

#[tokio::test]
async fn admin_create_makes_an_administrator_who_can_log_in() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let me = app
        .gql(Some(&token), "{ me { role } }", serde_json::json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN");
}

#[tokio::test]
async fn admin_create_applies_the_password_policy() {
    let app = spawn_app().await;
    let out = warden(
        &app.database_url(),
        &["admin", "create", &email()],
        "short\n",
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 bytes"));
}

#[tokio::test]
async fn promote_and_demote_change_the_role_and_are_audited() {
    let app = spawn_app().await;
    // Another admin, so that demoting this one leaves an admin.
    app.admin_token().await;
    let who = email();
    let registered = app.register(&who).await;
    let access = s(&registered, "accessToken").to_owned();
    let out = warden(&app.database_url(), &["admin", "promote", &who], "", &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The role is read from the database on every request, so it applies at once.
    let me = app
        .gql(Some(&access), "{ me { role } }", serde_json::json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "ADMIN");
    let out = warden(&app.database_url(), &["admin", "demote", &who], "", &[]).await;
    assert!(out.status.success());
    let me = app
        .gql(Some(&access), "{ me { role } }", serde_json::json!({}))
        .await;
    assert_eq!(me["data"]["me"]["role"], "USER");
    let log = app
        .gql(Some(&access), "{ auditLog(filter: { kinds: [ROLE_CHANGED] }) { edges { node { kind severity detail } } } }", serde_json::json!({}))
        .await;
    let edges = log["data"]["auditLog"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 2, "{log}");
    assert_eq!(edges[0]["node"]["detail"]["to"], "USER");
    assert_eq!(edges[1]["node"]["detail"]["to"], "ADMIN");
    let unknown = warden(
        &app.database_url(),
        &["admin", "promote", &email()],
        "",
        &[],
    )
    .await;
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn register_can_never_create_an_admin() {
    let app = spawn_app().await;
    let response = app
        .post_with_headers(
            None,
            "mutation { register(input: { email: \"x@example.com\", password: \"correct horse battery staple\", role: ADMIN }) { accessToken } }",
            serde_json::json!({}),
            // A request error is a 400 under graphql-response+json.
            &[("accept", "application/graphql-response+json".to_owned())],
        )
        .await;
    assert_eq!(
        response.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "RegisterInput has no role"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["data"].is_null() && code(&body) == Some("BAD_USER_INPUT"),
        "{body}"
    );
    let users = entity::user::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert!(users.is_empty());
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let (_dir, url) = scratch();
    let cases = [
        ("WARDEN_ACCESS_TOKEN_TTL", "fifteen"),
        ("WARDEN_JWT_SECRET", "too-short"),
        ("WARDEN_BCRYPT_COST", "99"),
        ("WARDEN_RATE_LOGIN_IP", "10/fortnight"),
        ("WARDEN_ACESS_TOKEN_TTL", "15m"),
        ("WARDEN_REDIS_URL", "http://user:hunter2@cache"),
        ("WARDEN_DATABASE_URL", "sqlite::memory:"),
    ];
    for (key, value) in cases {
        let out = warden_blocking(&url, &["migrate"], "", &[(key, value)]);
        assert!(!out.status.success(), "{key}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
        if key == "WARDEN_JWT_SECRET" || key == "WARDEN_REDIS_URL" {
            assert!(!stderr.contains(value), "never echoes a secret: {stderr}");
        }
    }
}

/// Runs `warden <args>` (`migrate` on a scratch database: it accepts the
/// whole configuration, then exits) and fails the test with its stderr if
/// the command line was refused.
fn accepted(url: &str, args: &[&str], env: &[(&str, &str)]) {
    let out = warden_blocking(url, args, "", env);
    assert!(
        out.status.success(),
        "`warden {}` with {env:?}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn boolean_settings_work_as_flags_in_every_form() {
    let (_dir, url) = scratch();
    let switches = [
        ("introspection", "true"),
        ("rate-limits", "on"),
        ("refresh-cookie", "on"),
        ("cookie-secure", "true"),
        ("pwned-passwords", "on"),
    ];
    for (flag, on) in switches {
        let long = format!("--{flag}");
        let mut forms: Vec<Vec<String>> = vec![vec![long.clone()]];
        for value in ["true", "false", on, "off", "on"] {
            forms.push(vec![format!("{long}={value}")]);
            forms.push(vec![long.clone(), value.to_owned()]);
        }
        for form in forms {
            let form: Vec<&str> = form.iter().map(String::as_str).collect();
            // After the subcommand, and before it with a value.
            let mut after = vec!["migrate"];
            after.extend(&form);
            accepted(&url, &after, &[]);
            if form.len() == 2 || form[0].contains('=') {
                let mut before = form.clone();
                before.push("migrate");
                accepted(&url, &before, &[]);
            }
        }
    }
    // The variables still work, in any case.
    for (key, value) in [
        ("WARDEN_INTROSPECTION", "False"),
        ("WARDEN_RATE_LIMITS", "OFF"),
        ("WARDEN_REFRESH_COOKIE", "ON"),
        ("WARDEN_COOKIE_SECURE", "true"),
        ("WARDEN_PWNED_PASSWORDS", "off"),
    ] {
        accepted(&url, &["migrate"], &[(key, value)]);
    }
}

#[test]
fn enum_values_ignore_case_and_a_bad_one_lists_the_valid_ones() {
    let (_dir, url) = scratch();
    accepted(&url, &["migrate"], &[("WARDEN_LOG_FORMAT", "JSON")]);
    accepted(&url, &["migrate", "--log-format", "Pretty"], &[]);
    accepted(&url, &["migrate", "--jwt-algorithm", "eddsa"], &[]);
    accepted(&url, &["migrate"], &[("WARDEN_REFRESH_COOKIE", "Only")]);
    let cases = [
        ("WARDEN_LOG_FORMAT", "yaml", "pretty, json"),
        ("WARDEN_JWT_ALGORITHM", "RS256", "HS256, EdDSA"),
        ("WARDEN_REFRESH_COOKIE", "sometimes", "off, on, only"),
        ("WARDEN_INTROSPECTION", "maybe", "true or false"),
    ];
    for (key, value, valid) in cases {
        let out = warden_blocking(&url, &["migrate"], "", &[(key, value)]);
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
        assert!(stderr.contains(valid), "lists {valid}: {stderr}");
    }
}

/// Settings that have no default on purpose (unset means "none").
const WITHOUT_DEFAULT: &[&str] = &[
    "WARDEN_REDIS_URL",
    "WARDEN_JWT_SECRET",
    "WARDEN_TRUSTED_PROXIES",
    "WARDEN_CORS_ORIGINS",
    "WARDEN_COOKIE_DOMAIN",
    "WARDEN_PUBLIC_URL",
    "WARDEN_METRICS_LISTEN",
    "WARDEN_SMTP_URL",
    "WARDEN_SMTP_PASSWORD",
    "WARDEN_SMTP_CA_FILE",
    "WARDEN_APP_URL",
    "WARDEN_MAIL_TEMPLATES",
    "WARDEN_WEBAUTHN_RP_ID",
    "WARDEN_WEBAUTHN_ORIGINS",
];

#[test]
fn help_shows_every_settings_variable_and_default() {
    let out = warden_blocking("sqlite://unused.db", &["--help"], "", &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // One block per option: from its `--flag` line to the next one.
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent <= 6 && trimmed.starts_with('-') {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    for name in warden::config::KNOWN_ENV {
        // The test database URL is passed in the environment; its value is hidden.
        let block = blocks
            .iter()
            .find(|b| {
                b.contains(&format!("[env: {name}=")) || b.contains(&format!("[env: {name}]"))
            })
            .unwrap_or_else(|| panic!("--help names {name}:\n{help}"));
        if !WITHOUT_DEFAULT.contains(name) {
            assert!(
                block.contains("[default: "),
                "--help shows the default of {name} (or list it in WITHOUT_DEFAULT):\n{block}"
            );
        }
    }
    assert!(help.contains("[default: 127.0.0.1:8080]"));
    assert!(help.contains("[default: 15m]"));
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = warden_blocking(&url, &["migrate"], "", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn export_schema_check_fails_on_a_stale_file() {
    let (_dir, url) = scratch();
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("schema.graphql");
    std::fs::write(&stale, "type Query { stale: Int }\n").unwrap();
    let path = stale.display().to_string();
    let out = warden_blocking(
        &url,
        &["export-schema", "--check", "--path", &path],
        "",
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("export-schema"));
    let printed = warden_blocking(&url, &["export-schema"], "", &[]);
    std::fs::write(&stale, &printed.stdout).unwrap();
    let out = warden_blocking(
        &url,
        &["export-schema", "--check", "--path", &path],
        "",
        &[],
    );
    assert!(out.status.success());
}

#[tokio::test]
async fn keys_list_shows_each_key_and_its_state_but_no_key_material() {
    let app = spawn_app().await;
    let out = warden(&app.database_url(), &["keys", "rotate"], "", &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("signs from"), "{said}");
    let out = warden(&app.database_url(), &["keys", "list"], "", &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = entity::signing_key::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(listed.contains(&row.kid), "{listed}");
    }
    assert!(
        listed.contains("signing") && listed.contains("published, signs from"),
        "{listed}"
    );
    let secret = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &rows[0].private_key,
    );
    assert!(!listed.contains(&secret[..16]));
}

#[tokio::test]
async fn keys_rotate_refuses_while_a_jwt_secret_signs() {
    const SECRET: &str = "k3P9sVx2qLm8TzR4wYb7NcJ1hFd6GeA5uQo0iXs";
    let app = spawn_app_with(|c| c.jwt_secret = Some(SECRET.to_owned().into())).await;
    let out = warden(
        &app.database_url(),
        &["keys", "rotate"],
        "",
        &[("WARDEN_JWT_SECRET", SECRET)],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARDEN_JWT_SECRET") && !stderr.contains(SECRET),
        "{stderr}"
    );
}

#[tokio::test]
async fn keys_rotate_refuses_without_the_servers_algorithm() {
    let app =
        spawn_app_with(|c| c.jwt_algorithm = warden::auth::signing::JwtAlgorithm::EdDsa).await;
    let out = warden(&app.database_url(), &["keys", "rotate"], "", &[]).await;
    assert!(!out.status.success(), "an HS256 key would never sign here");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARDEN_JWT_ALGORITHM"));
    let keys = entity::signing_key::Entity::find()
        .all(app.state.db.read())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
}
