//! The GraphQL API: schema assembly, request context and resolvers.
//!
//! Resolvers are thin: they parse input at the edge, call a service, and turn
//! its [`AppError`](crate::error::AppError) into a client error with
//! [`context::Respond::respond`].

pub mod context;
pub mod mutation;
pub mod query;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

use crate::state::AppState;

pub use mutation::MutationRoot;
pub use query::QueryRoot;

/// The schema type Warden serves.
pub type WardenSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Limits every document must stay within. Generous for real clients,
/// small enough that a hostile document is refused before it costs anything.
const MAX_DEPTH: usize = 12;
const MAX_COMPLEXITY: usize = 500;
const MAX_RECURSIVE_DEPTH: usize = 32;
const MAX_DIRECTIVES: usize = 16;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES)
}

/// Builds the schema once, with the state every resolver reads.
pub fn build(state: AppState) -> WardenSchema {
    let introspection = state.config.introspection;
    let mut schema = builder().data(state);
    if !introspection {
        schema = schema.disable_introspection().disable_suggestions();
    }
    schema.finish()
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
