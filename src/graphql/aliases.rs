//! A limit on aliases per document.
//!
//! async-graphql bounds depth, complexity and directives but not aliases,
//! and aliases are how one document asks for the same expensive field many
//! times. Rate limits already count each aliased `login`; this cap keeps a
//! document from carrying thousands of them in the first place.

use std::sync::Arc;

use async_graphql::{
    async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
    ServerError, ServerResult, Variables,
};

/// Refuses documents with more than `max` aliased fields.
pub struct AliasLimit {
    /// Largest number of aliases accepted.
    pub max: usize,
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let count = count_aliases(&document);
        if count > self.max {
            return Err(ServerError::new(
                format!(
                    "the document has {count} aliases; at most {} are allowed",
                    self.max
                ),
                None,
            ));
        }
        Ok(document)
    }
}

/// Aliases written in the document: every operation and every fragment
/// definition, each counted once however often it is spread.
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| count_in(&op.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| count_in(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

fn count_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_in(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => count_in(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(query: &str) -> usize {
        async_graphql::parser::parse_query(query)
            .map(|doc| count_aliases(&doc))
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn aliases_are_counted_in_operations_fragments_and_inline_fragments() {
        assert_eq!(aliases("{ me { id } }"), 0);
        assert_eq!(aliases("{ a: me { i: id } b: me { id } }"), 3);
        assert_eq!(
            aliases("query { ...F } fragment F on Query { x: me { id } }"),
            1
        );
        assert_eq!(aliases("{ ... on Query { x: me { y: id } } }"), 2);
    }
}
