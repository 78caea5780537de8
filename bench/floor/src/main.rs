//! The floor of the work of Warden's `me`: a server that does only what
//! `me` with an access token must do, and nothing else. Warden's `me` (W1)
//! is measured against it.
//!
//! What it does per request: HTTP/1.1 keep-alive on hyper directly (as
//! `src/http/serve.rs`), the body read (at most 64 KiB, its content
//! ignored), the bearer token verified as Warden verifies HS256 (pinned
//! algorithm, `iss`, `aud`, `exp`, `kid`, Warden's claims: see `token.rs`),
//! then the session and its user read by primary key with Warden's liveness
//! conditions, in place on SQLite or in one round trip on Postgres (see
//! `store.rs`), and `me` answered with the bytes Warden answers. No GraphQL
//! parsing, routing, rate limits, request ids, logging or metrics.
//! The answer carries Warden's `Content-Type`, `Cache-Control: no-store`
//! and `X-Content-Type-Options: nosniff`, not its `X-Request-Id`.
//!
//! # Interface
//!
//! ```sh
//! warden-floor [ADDR [SECRET [DATABASE_URL]]]
//! # or: FLOOR_LISTEN=127.0.0.1:18082 FLOOR_JWT_SECRET="$SECRET" \
//! #     FLOOR_DATABASE_URL="sqlite://$DB?mode=rwc" target/release/warden-floor
//! ```
//!
//! | argument / variable | default | what |
//! | --- | --- | --- |
//! | 1st / `FLOOR_LISTEN` | `127.0.0.1:18082` | address to serve on |
//! | 2nd / `FLOOR_JWT_SECRET` | required | Warden's `WARDEN_JWT_SECRET` (Warden with `WARDEN_JWT_ALGORITHM=HS256`) |
//! | 3rd / `FLOOR_DATABASE_URL` | required | Warden's `WARDEN_DATABASE_URL`: `sqlite://FILE[?…]` of a migrated file Warden has opened (WAL), or `postgres://…` |
//! | `FLOOR_ISSUER`, `FLOOR_AUDIENCE` | `warden` | as `WARDEN_ISSUER`, `WARDEN_AUDIENCE` |
//! | `FLOOR_DATABASE_MAX_CONNECTIONS` | `16` | Postgres pool size, as `WARDEN_DATABASE_MAX_CONNECTIONS` |
//!
//! An argument wins over its variable. Built with
//! `cargo build --release -p warden-floor` (binary `target/release/warden-floor`).
//! The tokio runtime has one worker per available core (`Runtime::new()`,
//! as Warden's), so `taskset -c 0` gives it one.
//!
//! * `POST /graphql` with `Authorization: Bearer TOKEN` and any non-empty
//!   body (bench/lua/me.lua's `{ me { id email role } }`): `200` and
//!   `{"data":{"me":{"id":…,"email":…,"role":…}}}` for a live session;
//!   `200` and Warden's `UNAUTHENTICATED` error (`reason` `MISSING`,
//!   `INVALID`, `EXPIRED` or `REVOKED`, with the location of `me` in that
//!   document) otherwise; `400` for an empty or unreadable body, `413` over
//!   64 KiB, `500` when the store fails. The answer does not depend on the
//!   document: it is always `me { id email role }`.
//! * `GET /healthz`: `ok`, so a harness can wait for it.
//!
//!
//! It prints one line (`warden-floor: serving on ADDR (SQLite, in place)`)
//! to stderr once it listens, and exits non-zero at once when the store
//! cannot be opened: start it after Warden has created and migrated the
//! database (on SQLite, after Warden has put the file in WAL mode). It
//! serves until it is killed (SIGTERM), without a graceful shutdown. A
//! harness starts it as `bench/run` starts the ceiling, with the same
//! secret and Warden's database URL, and waits for `/healthz`:
//!
//! ```sh
//! taskset -c 0 target/release/warden-floor "127.0.0.1:$PORT" "$SECRET" "$MAINDB" &
//! ```
//!
//! `bench/floor/compare.py` checks its answers byte for byte against a
//! running Warden on the same database.

mod store;
mod token;

use std::{convert::Infallible, error::Error, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response,
    StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use store::{Owner, Store};
use token::{Refused, Verifier};

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;
/// hyper's read buffer, as Warden caps it (`MAX_HEAD_BYTES`).
const MAX_BUF: usize = 32 * 1024;

struct Floor {
    tokens: Verifier,
    store: Store,
}

struct Settings {
    listen: String,
    secret: String,
    database_url: String,
    issuer: String,
    audience: String,
    max_connections: u32,
}

fn setting(args: &[String], index: usize, env: &str) -> Option<String> {
    args.get(index).cloned().or_else(|| std::env::var(env).ok())
}

fn settings() -> Result<Settings, Box<dyn Error>> {
    let usage = "usage: warden-floor [ADDR [SECRET [DATABASE_URL]]] \
                 (or FLOOR_LISTEN, FLOOR_JWT_SECRET, FLOOR_DATABASE_URL)";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    Ok(Settings {
        listen: setting(&args, 0, "FLOOR_LISTEN").unwrap_or_else(|| "127.0.0.1:18082".into()),
        secret: setting(&args, 1, "FLOOR_JWT_SECRET").ok_or(usage)?,
        database_url: setting(&args, 2, "FLOOR_DATABASE_URL").ok_or(usage)?,
        issuer: env_or("FLOOR_ISSUER", "warden"),
        audience: env_or("FLOOR_AUDIENCE", "warden"),
        max_connections: env_or("FLOOR_DATABASE_MAX_CONNECTIONS", "16").parse()?,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let settings = settings()?;
    tokio::runtime::Runtime::new()?.block_on(serve(settings))
}

async fn serve(settings: Settings) -> Result<(), Box<dyn Error>> {
    let store = Store::open(&settings.database_url, settings.max_connections).await?;
    let floor = Arc::new(Floor {
        tokens: Verifier::new(&settings.secret, &settings.issuer, &settings.audience),
        store,
    });
    let listener = TcpListener::bind(&settings.listen).await?;
    eprintln!(
        "warden-floor: serving on {} ({})",
        listener.local_addr()?,
        floor.store.kind()
    );
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(err) => {
                eprintln!("warden-floor: accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses go out in one write; there is nothing to coalesce.
        let _ = socket.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let floor = floor.clone();
                async move { Ok::<_, Infallible>(route(&floor, req).await) }
            });
            let _ = http1::Builder::new()
                .max_buf_size(MAX_BUF)
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

async fn route(floor: &Floor, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/graphql") => me(floor, req).await,
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", Bytes::from("ok")),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", Bytes::new()),
    }
}

async fn me(floor: &Floor, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (head, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "could not read the request body"),
    };
    if body.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "the request body is empty");
    }
    let now = store::now();
    let verified = match floor
        .tokens
        .verify(head.headers.get(header::AUTHORIZATION), now.timestamp())
    {
        Ok(verified) => verified,
        Err(refused) => return unauthenticated(refused),
    };
    match floor
        .store
        .owner(verified.session, verified.user, now)
        .await
    {
        Ok(Some(owner)) => json(StatusCode::OK, me_body(&owner)),
        Ok(None) => unauthenticated(Refused::Revoked),
        Err(err) => {
            eprintln!("warden-floor: {err}");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `{"data":{"me":{"id":…,"email":…,"role":…}}}`, as Warden writes it:
/// the id hyphenated lowercase, the email JSON-escaped as serde_json does.
fn me_body(owner: &Owner) -> Bytes {
    let mut out = Vec::with_capacity(96 + owner.email.len());
    out.extend_from_slice(br#"{"data":{"me":{"id":""#);
    let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(owner.id.hyphenated().encode_lower(&mut id).as_bytes());
    out.extend_from_slice(br#"","email":"#);
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &owner.email);
    out.extend_from_slice(br#","role":""#);
    out.extend_from_slice(owner.role.as_bytes());
    out.extend_from_slice(br#""}}}"#);
    Bytes::from(out)
}

/// Warden's answer to `{ me { id email role } }` without a live session:
/// the error at `me`'s location in that document (line 1, column 3).
fn unauthenticated(refused: Refused) -> Response<Full<Bytes>> {
    let (message, reason) = match refused {
        Refused::Missing => ("this operation requires an access token", "MISSING"),
        Refused::Invalid => ("the access token is invalid", "INVALID"),
        Refused::Expired => ("the access token has expired", "EXPIRED"),
        Refused::Revoked => ("the session of this access token has ended", "REVOKED"),
    };
    json(
        StatusCode::OK,
        Bytes::from(format!(
            r#"{{"data":null,"errors":[{{"message":"{message}","locations":[{{"line":1,"column":3}}],"path":["me"],"extensions":{{"code":"UNAUTHENTICATED","reason":"{reason}"}}}}]}}"#
        )),
    )
}

/// A refusal before anything ran, as Warden words its transport errors.
fn refuse(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        Bytes::from(format!(r#"{{"errors":[{{"message":"{message}"}}]}}"#)),
    )
}

/// A JSON answer with the headers every Warden answer carries (its
/// security headers; not its `X-Request-Id`, which is Warden's own feature).
fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = respond(status, "application/json; charset=utf-8", body);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
