//! What each subcommand of the `warden` binary does. `main.rs` parses the
//! command line and calls one of these.

use std::{io::BufRead, path::Path, process::ExitCode};

use crate::{
    auth::{email::Email, password::Password},
    clock::Clock,
    config::Config,
    db::Db,
    domain::Role,
    error::AppError,
    graphql,
    meta::RequestMeta,
    services::{
        accounts::{self, NewAccount},
        signing_keys,
    },
    startup::{build_state, App},
    telemetry,
};

/// `warden serve`: runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> ExitCode {
    telemetry::init(config.log_format);
    let store = config.database_display();
    let app = match App::build(config, Clock::system()).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("warden: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = app.addr();
    let graphiql = if app.state().config.introspection {
        format!("http://{addr}/graphql")
    } else {
        "disabled (WARDEN_INTROSPECTION=false)".to_owned()
    };
    let metrics = match app.metrics_addr() {
        Some(metrics) => format!("http://{metrics}/metrics"),
        None => format!("http://{addr}/metrics"),
    };
    tracing::info!(
        address = %addr,
        store = %store,
        limiter = app.state().limits.backend(),
        graphiql = %graphiql,
        metrics = %metrics,
        "warden is serving"
    );
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("warden stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `warden healthcheck`: asks the server on `WARDEN_LISTEN` for `/readyz`
/// and exits 0 when it answers 200. For container healthchecks, where no
/// HTTP client is installed.
pub async fn healthcheck(config: Config) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok(answer))
            if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") =>
        {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(Ok(answer)) => {
            let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
            eprintln!("warden: not ready: {}", body.trim());
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("warden: cannot reach {addr}: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("warden: {addr} did not answer within 3 s");
            ExitCode::FAILURE
        }
    }
}

/// `warden cleanup`: one pass, counts printed, exit.
pub async fn cleanup(config: Config) -> ExitCode {
    let result = async {
        let db = Db::connect(&config).await?;
        db.migrate().await?;
        crate::cleanup::run_once(&db, &config, Clock::system().now()).await
    }
    .await;
    match result {
        Ok(removed) => {
            println!("cleanup: {removed}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warden: cleanup failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What a failed command prints: the cause chain of an internal error
/// (the operator's own terminal), the message of any other.
fn failure(err: &AppError) -> String {
    match err {
        AppError::Internal(source) | AppError::ServiceUnavailable(source) => {
            crate::error::Chain(source.as_ref()).to_string()
        }
        other => other.to_string(),
    }
}

/// Connects and migrates, for the `keys` commands.
async fn keys_db(config: &Config) -> Result<Db, AppError> {
    let db = Db::connect(config).await?;
    db.migrate().await?;
    Ok(db)
}

/// `warden keys rotate [--now]`: a new signing key of
/// `WARDEN_JWT_ALGORITHM`, published in JWKS at once (every server within a
/// second) and signing one JWKS cache age later, or at once with `--now`;
/// the old one keeps verifying until its tokens have expired.
pub async fn rotate_keys(config: Config, at_once: bool) -> ExitCode {
    let now = Clock::system().now();
    let result = async {
        let db = keys_db(&config).await?;
        signing_keys::rotate(&db, &config, now, at_once, &RequestMeta::local("cli")).await
    }
    .await;
    match result {
        Ok(rotated) => {
            let when = if rotated.signs_from <= now {
                "signs from now on".to_owned()
            } else {
                format!(
                    "published now, signs from {} (after every cached JWKS has expired)",
                    rotated.signs_from.format("%Y-%m-%d %H:%M:%S UTC")
                )
            };
            println!(
                "new {} signing key {}: {when}",
                config.jwt_algorithm.name(),
                rotated.kid
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warden: key rotation failed: {}", failure(&err));
            ExitCode::FAILURE
        }
    }
}

/// `warden keys revoke <kid>`: the key stops verifying on every server
/// within a second; if it was signing, a new key signs in its place.
pub async fn revoke_key(config: Config, kid: &str) -> ExitCode {
    let result = async {
        let db = keys_db(&config).await?;
        let now = Clock::system().now();
        signing_keys::revoke(&db, &config, kid, now, &RequestMeta::local("cli")).await
    }
    .await;
    match result {
        Ok(revoked) if revoked.already => {
            println!("{kid} was already revoked");
            ExitCode::SUCCESS
        }
        Ok(revoked) => {
            match revoked.replaced_by {
                Some(fresh) => println!(
                    "revoked {kid}; it was signing, so {fresh} signs from now on. \
                     Every server refuses {kid} within a second; verifiers that cached JWKS \
                     drop it when their copy expires"
                ),
                None => println!(
                    "revoked {kid}; every server refuses it within a second; verifiers that \
                     cached JWKS drop it when their copy expires"
                ),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warden: cannot revoke {kid}: {}", failure(&err));
            ExitCode::FAILURE
        }
    }
}

/// `warden keys list`: every stored key and where it is in its life. No
/// key material is printed.
pub async fn list_keys(config: Config) -> ExitCode {
    let result = async {
        let db = keys_db(&config).await?;
        signing_keys::list(&db, &config, Clock::system().now()).await
    }
    .await;
    match result {
        Ok(keys) => {
            println!(
                "{:<20} {:<6} {:<9} {:<23} STATE",
                "KID", "ALG", "SOURCE", "CREATED"
            );
            for key in keys {
                println!(
                    "{:<20} {:<6} {:<9} {:<23} {}",
                    key.kid,
                    key.algorithm,
                    key.source,
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    key.state
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warden: cannot list keys: {}", failure(&err));
            ExitCode::FAILURE
        }
    }
}

/// `warden migrate`.
pub async fn migrate(config: Config) -> ExitCode {
    let result = async {
        let db = Db::connect(&config).await?;
        db.migrate().await
    }
    .await;
    match result {
        Ok(()) => {
            println!("migrations applied to {}", config.database_display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warden: migration failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `warden export-schema [--check]`.
pub fn export_schema(check: bool, path: &Path) -> ExitCode {
    let sdl = graphql::sdl();
    if !check {
        print!("{sdl}");
        return ExitCode::SUCCESS;
    }
    match std::fs::read_to_string(path) {
        Ok(committed) if committed == sdl => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!(
                "warden: {} is stale: regenerate it with `cargo run -- export-schema > {}`",
                path.display(),
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("warden: cannot read {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// What `warden admin` does.
#[derive(Debug, Clone, Copy)]
pub enum AdminAction {
    /// Create an administrator, password on standard input.
    Create,
    /// Make an existing account an administrator.
    Promote,
    /// Make an administrator a normal account.
    Demote,
}

/// `warden admin create|promote|demote <email>`.
pub async fn admin(config: Config, action: AdminAction, email: &str) -> ExitCode {
    match run_admin(config, action, email).await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            let message = match &err {
                AppError::Internal(source) | AppError::ServiceUnavailable(source) => {
                    format!("{err}: {}", crate::error::Chain(source.as_ref()))
                }
                _ => err.to_string(),
            };
            eprintln!("warden: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_admin(
    config: Config,
    action: AdminAction,
    raw_email: &str,
) -> Result<String, AppError> {
    // A new admin's address passes today's rules; promoting or demoting
    // finds an account that may predate them.
    let email = match action {
        AdminAction::Create => Email::parse(raw_email)?,
        _ => Email::parse_existing(raw_email)?,
    };
    let password = match action {
        AdminAction::Create => Some(read_password(&email)?),
        _ => None,
    };
    let state = build_state(config, Clock::system())
        .await
        .map_err(|e| AppError::internal(e.to_string()))?;
    let meta = RequestMeta::local("cli");
    match (action, password) {
        (AdminAction::Create, Some(password)) => {
            let account = NewAccount {
                email: email.clone(),
                password,
                username: None,
            };
            let user = accounts::create_admin(&state, &meta, account).await?;
            Ok(format!(
                "created administrator {} ({})",
                email.as_str(),
                user.id
            ))
        }
        (AdminAction::Promote, _) => {
            let changed = accounts::set_role(&state, &meta, &email, Role::Admin).await?;
            Ok(role_message(&email, "an administrator", changed))
        }
        (AdminAction::Demote, _) => {
            let changed = accounts::set_role(&state, &meta, &email, Role::User).await?;
            Ok(role_message(&email, "a normal user", changed))
        }
        (AdminAction::Create, None) => Err(AppError::bad_input("password", "no password given")),
    }
}

fn role_message(email: &Email, what: &str, changed: bool) -> String {
    if changed {
        format!("{} is now {what}", email.as_str())
    } else {
        format!("{} was already {what}", email.as_str())
    }
}

/// Reads one line from standard input: the password, without its line
/// ending, checked by the policy with `email` as context.
fn read_password(email: &Email) -> Result<Password, AppError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(AppError::internal)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let context = crate::auth::password::context_words(email.as_str(), None);
    Password::parse_for(password, "password", &context)
}
