//! The GraphQL API: schema assembly, request context and resolvers.
//!
//! Resolvers are thin: they parse input at the edge, call a service, and turn
//! its [`AppError`](crate::error::AppError) into a client error with
//! [`context::Respond::respond`] (the conversion itself is [`errors`]).

pub mod admin;
pub mod api_keys;
pub mod context;
pub mod cookies;
pub mod cost;
pub mod device;
pub mod documents;
pub mod errors;
pub mod input_errors;
pub mod limits;
pub mod mfa;
pub mod mutation;
pub mod observe;
pub mod own_data;
pub mod parse_errors;
pub mod passkeys;
pub mod persisted;
pub mod query;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

use crate::state::AppState;

/// Writes: accounts, logins and sessions, second factors and passkeys,
/// administration.
#[derive(async_graphql::MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    mutation::AccountMutations,
    mfa::MfaMutations,
    passkeys::PasskeyMutations,
    api_keys::ApiKeyMutations,
    admin::AdminMutations,
    own_data::OwnDataMutations,
);
pub use query::QueryRoot;

/// The schema type Warden serves.
pub type WardenSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// async-graphql's own bounds: 32 levels of selections (fields, spreads
/// and inline fragments; the standard introspection query has 18) and
/// directives on one field, checked once the gate has passed a document. Its depth and complexity limits are not used: they count
/// introspection like any other field and refused the standard
/// introspection query every tool sends; [`LIMITS`] bounds both instead.
const MAX_RECURSIVE_DEPTH: usize = 32;
const MAX_DIRECTIVES: usize = 16;
/// Limits every document must stay within. Generous for real clients,
/// small enough that a hostile document is refused before it costs
/// anything: checked by the gate ([`cost::measure`]) before anything else
/// looks at the document, except complexity, which needs the schema and is
/// checked right after validation (see [`limits`]).
///
/// graphql-js's full introspection query (every option on) measures 550
/// nodes, all definitions together, 18 levels deep; a real operation of
/// Warden's is a few dozen. Validation and execution cost a few
/// microseconds per node, so the largest admitted document costs
/// milliseconds. Aliases, `auditLog` fields and introspection roots
/// (`__schema`, `__type`: one walk of the schema each, some 2 ms) are
/// counted in the expanded operation: `{ ...A ...A }` counts what `A` holds
/// twice.
///
/// Depth and complexity: 12 levels of fields and a complexity of 500
/// outside introspection (`register`, `login`, `refresh` and
/// `changePassword` weigh 40 each, so at most 12 fit in one document), as
/// async-graphql counted them before. Fields under `__schema`/`__type` are
/// bounded on their own instead: the introspection query's shape is fixed
/// (its deepest path is the `ofType` chain of `TypeRef`), so their depth is
/// capped at what graphql-js 16's standard query needs (15 levels: nine
/// `ofType`s under `__schema types fields args type`) and their number a
/// little over what it holds (230 fields); more `ofType` levels, a second
/// copy of it or fragment fan-out are refused.
pub const LIMITS: cost::Limits = cost::Limits {
    max_size: 3_000,
    max_aliases: 32,
    max_audit_logs: 1,
    max_introspection: 2,
    max_depth: 64,
    max_field_depth: 12,
    max_introspection_depth: 15,
    max_introspection_size: 300,
    max_complexity: 500,
    max_definitions: 64,
    max_variables: 64,
    max_arguments: 128,
    max_directives: 64,
};
/// Errors in one response; past it, one more says how many were left out.
pub const MAX_ERRORS: usize = 20;
/// The longest document text kept for reuse. The number kept is
/// `WARDEN_DOCUMENT_CACHE_SIZE` (default 128): a frontend sends a few dozen
/// distinct documents, each well under the length bound. 4 KB of text hold
/// at most about 1,400 fields (some 270 KB parsed), so a full cache of 128
/// stays under about 35 MB even if every entry were hostile; a real
/// frontend's documents take well under 1 MB.
const MAX_KEPT_DOCUMENT_BYTES: usize = 4 * 1024;
/// The default of `WARDEN_DOCUMENT_CACHE_SIZE`, for the SDL export.
const KEPT_DOCUMENTS: usize = 128;

fn builder(
    limits: cost::Limits,
    kept_documents: usize,
) -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    let cache = documents::DocumentCache::new(kept_documents, MAX_KEPT_DOCUMENT_BYTES);
    Schema::build(QueryRoot, MutationRoot::default(), EmptySubscription)
        // The HTTP layer reads it: a GET that names a persisted mutation by
        // its hash is refused before anything runs.
        .data(cache.clone())
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES)
        // The cache first: a text it holds passed the gate when first seen.
        .extension(cache.clone())
        .extension(limits::DocumentLimits::new(limits, MAX_ERRORS, cache))
        .extension(input_errors::InputErrors)
}

/// Builds the schema once, with the state every resolver reads.
pub fn build(state: AppState) -> WardenSchema {
    let introspection = state.config.introspection;
    let observe = observe::Observe(state.metrics.clone());
    // Introspection off: the gate refuses `__schema` and `__type` with an
    // error that says so (async-graphql alone would answer a silent
    // `null`, which reads like a broken server to a client).
    let limits = if introspection {
        LIMITS
    } else {
        cost::Limits {
            max_introspection: 0,
            ..LIMITS
        }
    };
    let kept = state.config.document_cache_size;
    let mut schema = builder(limits, kept).extension(observe).data(state);
    if !introspection {
        schema = schema.disable_introspection().disable_suggestions();
    }
    schema.finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder(LIMITS, KEPT_DOCUMENTS).finish().sdl()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    const INTROSPECT: &str = "{ __schema { types { name description
        fields { name description args { name description } }
        inputFields { name description } enumValues { name description } } } }";

    #[tokio::test]
    async fn every_type_field_argument_and_value_is_documented() {
        let response = super::builder(super::LIMITS, super::KEPT_DOCUMENTS)
            .finish()
            .execute(INTROSPECT)
            .await;
        let data = serde_json::to_value(&response.data).unwrap_or_default();
        let mut missing = Vec::new();
        let documented = |v: &Value| {
            v["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty())
        };
        let types = data["__schema"]["types"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for ty in types
            .iter()
            .filter(|t| !t["name"].as_str().unwrap_or("__").starts_with("__"))
        {
            let name = ty["name"].as_str().unwrap_or_default();
            if ["Boolean", "String", "Int", "Float", "ID"].contains(&name) {
                continue;
            }
            if !documented(ty) {
                missing.push(name.to_owned());
            }
            for field in ty["fields"].as_array().into_iter().flatten() {
                if !documented(field) {
                    missing.push(format!("{name}.{}", field["name"]));
                }
                for arg in field["args"].as_array().into_iter().flatten() {
                    if !documented(arg) {
                        missing.push(format!("{name}.{}({})", field["name"], arg["name"]));
                    }
                }
            }
            for list in ["inputFields", "enumValues"] {
                for item in ty[list].as_array().into_iter().flatten() {
                    if !documented(item) {
                        missing.push(format!("{name}.{}", item["name"]));
                    }
                }
            }
        }
        assert!(types.len() > 10, "introspection ran: {data}");
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}
