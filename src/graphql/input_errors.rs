//! Argument values the GraphQL layer itself refuses — an `Int` past 32
//! bits, a `DateTime` that does not parse, an unknown enum value — answer
//! `BAD_USER_INPUT` with `field` (the argument), like every other bad input.
//!
//! async-graphql reports them with a message and no `extensions.code`, so a
//! client could not tell them from a bug. This extension adds the code where
//! they arise: during validation (variables of the wrong type) and when a
//! resolver parses its arguments (values out of a scalar's range).

use std::sync::Arc;

use async_graphql::{
    async_trait,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextResolve, NextValidation, ResolveInfo,
    },
    ServerError, ServerResult, ValidationResult, Value,
};

/// Gives argument-value errors the `BAD_USER_INPUT` code and a `field`.
pub struct InputErrors;

impl ExtensionFactory for InputErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InputErrors)
    }
}

/// The prefix of async-graphql's message for a scalar that did not parse.
const PARSE_FAILED: &str = "Failed to parse \"";
/// The prefix of its validation message for a bad argument value.
const INVALID_ARGUMENT: &str = "Invalid value for argument \"";

#[async_trait::async_trait]
impl Extension for InputErrors {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for err in &mut errors {
                // `Invalid value for argument "filter.kinds.0", …`: the
                // argument is the name before the first dot.
                let field = err
                    .message
                    .strip_prefix(INVALID_ARGUMENT)
                    .and_then(|rest| rest.split(['"', '.']).next())
                    .map(str::to_owned);
                if let Some(field) = field {
                    tag(err, &field);
                }
            }
            errors
        })
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let arguments: Vec<_> = info
            .field
            .arguments
            .iter()
            .map(|(name, value)| (name.node.to_string(), value.pos))
            .collect();
        let field_name = info.name.to_owned();
        next.run(ctx, info).await.map_err(|mut err| {
            if err.message.starts_with(PARSE_FAILED) && code_of(&err).is_none() {
                // The error points at the argument's value.
                let field = arguments
                    .iter()
                    .find(|(_, pos)| err.locations.contains(pos))
                    .map_or(field_name, |(name, _)| name.clone());
                tag(&mut err, &field);
            }
            err
        })
    }
}

fn code_of(err: &ServerError) -> Option<&Value> {
    err.extensions.as_ref().and_then(|ext| ext.get("code"))
}

fn tag(err: &mut ServerError, field: &str) {
    if code_of(err).is_some() {
        return;
    }
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", "BAD_USER_INPUT");
    ext.set("field", field);
}
