//! The `warden` binary: parses the command line and hands over to
//! [`warden::commands`]. Everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{
    error::{ContextKind, ContextValue, ErrorKind},
    CommandFactory, Parser, Subcommand,
};
use warden::{
    commands::{self, AdminAction},
    config::{check_unknown_env, Config},
};

/// jemalloc instead of glibc's malloc: an idle keep-alive connection holds
/// two 8 KiB hyper buffers of which a request touches only the first page
/// or so, and jemalloc leaves the rest of each buffer untouched (not
/// resident) where glibc's chunk headers and neighbours dirty it. 10,000
/// idle connections after one `me` each (request future already boxed,
/// see `http::serve`): 220 MB -> 146 MB RSS on a debug build. Only the
/// server binary: tests and tools keep the system allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Warden: a small, fast authentication server that speaks GraphQL.
#[derive(Parser)]
#[command(name = "warden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the server on WARDEN_LISTEN is ready (for container healthchecks).
    Healthcheck,
    /// Run one cleanup pass, print what it removed, and exit.
    Cleanup,
    /// Manage access-token signing keys.
    Keys {
        #[command(subcommand)]
        action: Keys,
    },
    /// Print the GraphQL schema (SDL).
    ExportSchema {
        /// Exit non-zero when the committed file differs instead of printing.
        #[arg(long)]
        check: bool,
        /// The committed schema file, for --check.
        #[arg(long, default_value = "schema.graphql")]
        path: PathBuf,
    },
    /// Manage administrators (audited as ROLE_CHANGED).
    Admin {
        #[command(subcommand)]
        action: Admin,
    },
}

#[derive(Subcommand)]
enum Keys {
    /// Add a signing key: published in JWKS at once, signing after the JWKS
    /// cache age (5 min); the old one verifies until its tokens expire.
    Rotate {
        /// Sign with the new key at once (an emergency: verifiers holding a
        /// cached JWKS will not know it until their copy expires).
        #[arg(long)]
        now: bool,
    },
    /// Revoke a key: every server refuses its tokens within a second. If it
    /// is the key that signs, a new key takes over at once.
    Revoke {
        /// The key id (`kid`), as `warden keys list` shows it.
        kid: String,
    },
    /// List the signing keys and their state (no key material).
    List,
}

#[derive(Subcommand)]
enum Admin {
    /// Create an administrator; the password is read from standard input.
    Create { email: String },
    /// Make an existing account an administrator.
    Promote { email: String },
    /// Make an administrator a normal account.
    Demote { email: String },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            eprintln!("warden: {}", one_line(&err));
            return ExitCode::from(2);
        }
    };
    if let Err(message) = check_unknown_env(std::env::vars().map(|(k, _)| k)) {
        eprintln!("warden: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("warden: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let config = cli.config;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => commands::serve(config).await,
            Command::Migrate => commands::migrate(config).await,
            Command::Healthcheck => commands::healthcheck(config).await,
            Command::Cleanup => commands::cleanup(config).await,
            Command::Keys { action } => match action {
                Keys::Rotate { now } => commands::rotate_keys(config, now).await,
                Keys::Revoke { kid } => commands::revoke_key(config, &kid).await,
                Keys::List => commands::list_keys(config).await,
            },
            Command::ExportSchema { check, path } => commands::export_schema(check, &path),
            Command::Admin { action } => match action {
                Admin::Create { email } => {
                    commands::admin(config, AdminAction::Create, &email).await
                }
                Admin::Promote { email } => {
                    commands::admin(config, AdminAction::Promote, &email).await
                }
                Admin::Demote { email } => {
                    commands::admin(config, AdminAction::Demote, &email).await
                }
            },
        }
    })
}

/// One line naming the variable (and flag) at fault, never its value:
/// the value may be a secret.
fn one_line(err: &clap::Error) -> String {
    if let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) {
        let long = arg
            .split_whitespace()
            .next()
            .unwrap_or(arg)
            .trim_start_matches("--");
        let env = Cli::command()
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned());
        let reason = std::error::Error::source(err)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "invalid value".to_owned());
        return match env {
            Some(env) => format!("invalid {env} (--{long}): {reason}"),
            None => format!("invalid --{long}: {reason}"),
        };
    }
    err.to_string()
        .lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ")
        .to_owned()
}
