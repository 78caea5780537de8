//! Warden: a small, fast authentication server that speaks GraphQL.
//!
//! # Layout
//! - [`config`]: one typed `Config` from `WARDEN_*` variables and flags.
//! - [`startup`]: `App::build` connects, migrates, binds; `run_until` serves.
//! - [`commands`]: what each CLI subcommand does (`main.rs` only parses).
//! - [`state`]: `AppState`, the shared handles every operation reads.
//! - [`db`]: SQLite (read/write pools, WAL) or Postgres, and migrations.
//! - [`clock`]: the only place that reads the time.
//! - [`error`]: `AppError`, the one error type at the GraphQL boundary.
//! - [`domain`]: roles, audit kinds and severities.
//! - [`meta`]: `RequestMeta`, who is asking.
//! - [`metrics`]: Prometheus counters and histograms, one registry per server.
//! - [`http`]: poem routes, the GraphQL transport, client IP, health, and
//!   the HTTP/1.1 connection loop on hyper.
//! - [`graphql`]: schema, request context, resolvers and types.
//! - [`auth`]: email and password rules, bcrypt pool, JWTs, refresh tokens, keys.
//! - [`services`]: accounts, sessions, lockout, limits and the audit log on sea-orm.
//! - [`cleanup`]: the in-process task that deletes dead sessions and old rows.
//! - [`telemetry`]: tracing subscriber set-up.

pub mod auth;
pub mod cleanup;
pub mod clock;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod services;
pub mod startup;
pub mod state;
pub mod telemetry;
