//! Warden's integration tests: one binary, a real server per test on
//! `127.0.0.1:0` with its own database, spoken to over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_tokens;
mod admin;
mod api_keys;
mod architecture;
mod audit_log;
mod bad_input;
mod browser;
mod cleanup;
mod cli;
mod connections;
mod cookie_headers;
mod cross_site;
mod deploy;
mod devices;
mod email_flows;
mod gateway;
mod graphiql;
mod graphql_cost;
mod helpers;
mod identities;
mod instances;
mod ipv6;
mod keys;
mod landing;
mod lockout;
mod logout;
mod mail;
mod mail_delivery;
mod mail_templates;
mod metrics;
mod mfa;
mod node;
mod ops;
mod outage;
mod over_http;
mod passkeys;
mod persisted;
mod personal_data;
mod query_plans;
mod rate_limits;
mod redis_limiter;
mod refresh;
mod register_login;
mod restart;
mod scale_seed;
mod schema;
mod secrets;
mod sessions;
mod smtp;
mod transport;
