#![warn(missing_docs)]

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
//! - [`http`]: poem routes, the GraphQL transport, client IP, cookies, health,
//!   and the HTTP/1.1 connection loop on hyper (head cap, connection caps,
//!   the open-files limit).
//! - [`graphql`]: schema, the document gate (expanded size, error cap),
//!   request context, resolvers and types.
//! - [`auth`]: email, username and password rules (characters, IDNA,
//!   zxcvbn, Pwned Passwords), bcrypt pool, JWTs and signing-key ring,
//!   refresh tokens, email pseudonyms, rate-limit stores.
//! - [`services`]: accounts, sessions, lockout and trusted devices, limits,
//!   signing-key storage and the audit log on sea-orm.
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
