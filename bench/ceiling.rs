//! The GraphQL + JWT ceiling: the least a server built from Warden's parts
//! (poem, async-graphql, jsonwebtoken HS256) must do to answer `me`.
//!
//! `POST /graphql` takes a JSON GraphQL request, verifies the bearer token
//! (HS256, `iss`, `aud`, `exp`, `sub` required) and resolves `me` from the
//! claims alone: no database, no session check, no rate limit, no audit.
//! Keys, validation and schema are built once at start-up. `GET /healthz`
//! answers `ok`, so the harness can wait for it.
//!
//! Run with the same secret as Warden (`WARDEN_JWT_SECRET`) and the very same
//! request bytes go to both:
//!
//! ```sh
//! cargo run --release --example ceiling -- 127.0.0.1:18081 "$SECRET"
//! # or: CEILING_LISTEN=127.0.0.1:18081 CEILING_JWT_SECRET="$SECRET" target/release/examples/ceiling
//! ```
//! `CEILING_ISSUER` and `CEILING_AUDIENCE` default to `warden`, like Warden's.

use std::{error::Error, sync::Arc};

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema, SimpleObject, ID,
};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use poem::{
    get, handler,
    http::{header, StatusCode},
    listener::TcpListener,
    post,
    web::Data,
    Body, EndpointExt, Request, Response, Route, Server,
};
use serde::Deserialize;

/// The claims `me` needs from a Warden access token.
#[derive(Clone, Debug, Deserialize)]
struct Claims {
    sub: String,
    #[allow(dead_code)] // required in Warden's tokens; parsed to cost the same
    sid: String,
    role: String,
}

/// What `me` returns: the same field names as Warden's `User`.
#[derive(SimpleObject)]
struct User {
    id: ID,
    email: String,
    role: String,
}

struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The caller, straight from the verified claims.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        match ctx.data_opt::<Claims>() {
            Some(claims) => Ok(User {
                id: ID(claims.sub.clone()),
                email: format!("{}@ceiling.invalid", claims.sub),
                role: claims.role.clone(),
            }),
            None => Err(async_graphql::Error::new("missing or invalid access token")
                .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))),
        }
    }
}

type CeilingSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

struct Keys {
    decoding: DecodingKey,
    validation: Validation,
}

struct AppState {
    schema: CeilingSchema,
    keys: Keys,
}

fn bad_request(message: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(format!(r#"{{"errors":[{{"message":"{message}"}}]}}"#))
}

#[handler]
async fn graphql(req: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let Ok(bytes) = body.into_bytes_limit(64 * 1024).await else {
        return bad_request("could not read the body");
    };
    let Ok(request) = serde_json::from_slice::<async_graphql::Request>(&bytes) else {
        return bad_request("the body is not a GraphQL request in JSON");
    };
    let claims = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| {
            decode::<Claims>(token, &state.keys.decoding, &state.keys.validation).ok()
        })
        .map(|data| data.claims);
    let request = match claims {
        Some(claims) => request.data(claims),
        None => request,
    };
    let response = state.schema.execute(request).await;
    match serde_json::to_vec(&response) {
        Ok(body) => Response::builder()
            .content_type("application/json")
            .body(body),
        Err(_) => bad_request("could not encode the response"),
    }
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

fn setting(args: &[String], index: usize, env: &str, default: Option<&str>) -> Option<String> {
    args.get(index)
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .or_else(|| default.map(str::to_owned))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen =
        setting(&args, 0, "CEILING_LISTEN", Some("127.0.0.1:18081")).ok_or("no listen address")?;
    let secret = setting(&args, 1, "CEILING_JWT_SECRET", None)
        .ok_or("usage: ceiling [LISTEN] [SECRET] (or CEILING_LISTEN, CEILING_JWT_SECRET)")?;
    let issuer = setting(&args, 2, "CEILING_ISSUER", Some("warden")).unwrap_or_default();
    let audience = setting(&args, 3, "CEILING_AUDIENCE", Some("warden")).unwrap_or_default();

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let state = Arc::new(AppState {
        schema: Schema::build(QueryRoot, EmptyMutation, EmptySubscription).finish(),
        keys: Keys {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        },
    });
    let app = Route::new()
        .at("/graphql", post(graphql))
        .at("/healthz", get(healthz))
        .data(state);
    eprintln!("ceiling: serving on {listen}");
    Server::new(TcpListener::bind(listen)).run(app).await?;
    Ok(())
}
