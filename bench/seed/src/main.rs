//! `warden-seed`: fills an empty Warden database with seeded-scale data and
//! prints a JSON summary on stdout (see the library docs).
//!
//! ```text
//! warden-seed --url sqlite:///tmp/w.db?mode=rwc --users 10000 --seed 1
//! warden-seed --url postgres://u@h/db --full --seed 1 --now 2026-12-01T00:00:00Z
//! ```

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Parser;
use sea_orm::{ConnectOptions, Database};
use warden_seed::{seed, Plan};

#[derive(Parser)]
#[command(about = "Fill an empty Warden database with seeded-scale data")]
struct Args {
    /// `sqlite://PATH?mode=rwc` or `postgres://…`.
    #[arg(long, env = "WARDEN_SEED_URL")]
    url: String,
    /// A plan scaled to this many users (same ratios as --full).
    #[arg(long, conflicts_with = "full")]
    users: Option<u64>,
    /// The issue's sizes: 1M users, 3M sessions, 10M refresh tokens, 10M audit events.
    #[arg(long)]
    full: bool,
    /// The seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The instant the data is "now" for (RFC 3339); default: the clock.
    /// Give it to get the same rows twice.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match (args.full, args.users) {
        (true, _) => Plan::full(),
        (false, Some(users)) => Plan::scaled(users),
        (false, None) => Plan::scaled(10_000),
    };
    let mut options = ConnectOptions::new(args.url.clone());
    options.sqlx_logging(false).max_connections(2);
    let db = match Database::connect(options).await {
        Ok(db) => db,
        Err(err) => {
            eprintln!("warden-seed: cannot connect: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The one read of the wall clock: a command-line tool has no clock to
    // inject, and `--now` pins it for a reproducible seed.
    #[allow(clippy::disallowed_methods)]
    let now = args.now.unwrap_or_else(Utc::now);
    let seeded = seed(&db, &plan, args.seed, now).await;
    // Closing the pool lets SQLite fold its WAL into the file.
    let _ = db.close().await;
    match seeded {
        Ok(summary) => match serde_json::to_string_pretty(&summary) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("warden-seed: summary: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("warden-seed: {err}");
            ExitCode::FAILURE
        }
    }
}
