#![warn(missing_docs)]

//! Warden: a small, fast authentication server that speaks GraphQL.
//!
//! # Layout
//! Floors, top to bottom. A file uses its own floor and the ones below,
//! never one above, and no files import each other in a circle;
//! `tests/api/architecture.rs` reads `src/` and fails the build otherwise.
//!
//! 1. [`startup`] (`App::build` connects, migrates, loads keys, binds;
//!    `run_until` serves) and [`commands`] (what each CLI subcommand does;
//!    `main.rs` only parses).
//! 2. [`http`]: the HTTP/1.1 connection loop on hyper (head cap, connection
//!    caps, the open-files limit), poem routes, the GraphQL transport (it
//!    turns the cookies a resolver asked for into `Set-Cookie`), client IP,
//!    CORS, health and JWKS. HTTP is served on hyper directly rather than
//!    through poem's `Server` because poem's HTTP/1-or-2 connection state
//!    measured about 5 KB more per open connection; poem still routes.
//! 3. [`graphql`]: schema, the document gate (expanded size, error cap),
//!    request context, thin resolvers that translate arguments and results,
//!    GraphQL types, and `AppError` → GraphQL error (`graphql::errors`).
//! 4. [`services`]: the use cases on sea-orm, one transaction per change with
//!    its audit row inside it: `login` (an outcome, not tokens), `accounts`
//!    (register, password, admin), `sessions` and `rotation`, `lockout`
//!    (a reserved attempt is a value that owns its check), trusted devices,
//!    `limits` (a rule's bucket key from its declaration), `audit`
//!    (recording) and `audit_log` (the `auditLog` read), and key storage
//!    (`signing_keys`, `server_keys`). [`cleanup`] sits beside them: the
//!    in-process task that deletes dead sessions and old rows.
//! 5. [`state`]: `AppState`, the shared handles every operation reads.
//! 6. [`auth`]: mechanism only, no SQL and no GraphQL: email, username and
//!    password rules (characters, IDNA, zxcvbn, Pwned Passwords), bcrypt on
//!    its own threads, JWTs and the signing-key ring, opaque tokens (random,
//!    hashed at rest, compared in constant time, keyed successors), email
//!    pseudonyms, rate-limit stores (memory, Redis, failover).
//! 7. The bottom floor, the shared vocabulary: [`config`] (one typed
//!    `Config` from `WARDEN_*` variables and flags; the rate rules are one
//!    table in `config::rates`), [`db`] (SQLite read/write pools in WAL or
//!    Postgres, migrations, and the session-liveness check, in place on a
//!    SQLite file), [`clock`] (the only place that reads the time),
//!    [`error`] (`AppError`, the one error type), [`domain`] (roles, audit
//!    kinds and severities), [`meta`] (`RequestMeta`, who is asking),
//!    [`metrics`] (Prometheus, one registry per server) and [`telemetry`].

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
