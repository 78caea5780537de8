//! Parsed documents, kept by their text.
//!
//! A frontend sends the same few documents over and over: its `me` query,
//! its `refresh` mutation, each spelled the same way on every call, with
//! only the variables changing. Parsing one (async-graphql's pest parser)
//! was the largest single cost of a `me`, larger than the session check.
//! This extension keeps documents that parsed and passed the alias limit,
//! keyed by their exact text, and hands out a copy instead of parsing again.
//!
//! Only parsing is skipped. Validation, limits on depth and complexity and
//! everything after still run on every request: they depend on the
//! variables and the schema, not only on the text. A document that failed
//! to parse is never kept, so its error is reported afresh each time.
//!
//! The cache is bounded twice: in entries and in the length of a document
//! it keeps. A client that sends endless distinct documents only evicts
//! entries; every request is still answered as if nothing were cached.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
};

use async_graphql::{
    async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
    ServerResult, Variables,
};

/// Parsed documents shared by every request of one schema.
#[derive(Clone)]
pub struct DocumentCache {
    inner: Arc<Documents>,
}

struct Documents {
    parsed: RwLock<HashMap<Box<str>, ExecutableDocument>>,
    /// Most documents kept at once.
    capacity: usize,
    /// Longest document text (bytes) worth keeping.
    max_len: usize,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents of at most `max_len` bytes.
    pub fn new(capacity: usize, max_len: usize) -> Self {
        Self {
            inner: Arc::new(Documents {
                parsed: RwLock::new(HashMap::with_capacity(capacity)),
                capacity,
                max_len,
            }),
        }
    }

    /// How many documents are kept now.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// True when no document is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, text: &str) -> Option<ExecutableDocument> {
        self.inner.read().get(text).cloned()
    }

    fn keep(&self, text: &str, document: &ExecutableDocument) {
        let documents = &self.inner;
        if text.len() > documents.max_len || documents.capacity == 0 {
            return;
        }
        let mut parsed = documents
            .parsed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if parsed.len() >= documents.capacity && !parsed.contains_key(text) {
            // Any entry will do: the map's iteration order is unrelated to
            // insertion order, so this is close to random eviction.
            if let Some(old) = parsed.keys().next().cloned() {
                parsed.remove(&old);
            }
        }
        parsed.insert(text.into(), document.clone());
    }
}

impl Documents {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, ExecutableDocument>> {
        self.parsed.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for DocumentCache {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        self.keep(query, &document);
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;
    use crate::graphql::aliases::AliasLimit;

    struct Query;

    #[Object]
    impl Query {
        async fn value(&self, x: i32) -> i32 {
            x * 2
        }
    }

    fn schema(cache: &DocumentCache) -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(cache.clone())
            .extension(AliasLimit { max: 1 })
            .finish()
    }

    async fn run(
        schema: &Schema<Query, EmptyMutation, EmptySubscription>,
        query: &str,
        x: i32,
    ) -> serde_json::Value {
        let request = async_graphql::Request::new(query)
            .variables(Variables::from_json(serde_json::json!({ "x": x })));
        serde_json::to_value(schema.execute(request).await).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_kept_document_answers_with_each_requests_own_variables() {
        let cache = DocumentCache::new(8, 1024);
        let schema = schema(&cache);
        let query = "query Q($x: Int!) { value(x: $x) }";
        assert_eq!(run(&schema, query, 2).await["data"]["value"], 4);
        assert_eq!(cache.len(), 1);
        assert_eq!(run(&schema, query, 5).await["data"]["value"], 10);
        assert_eq!(cache.len(), 1);
        // Validation still runs on a kept document: a missing variable is refused.
        let refused = serde_json::to_value(schema.execute(query).await).unwrap_or_default();
        assert!(refused["errors"][0]["message"].is_string(), "{refused}");
    }

    #[tokio::test]
    async fn documents_that_fail_to_parse_or_break_a_limit_are_not_kept() {
        let cache = DocumentCache::new(8, 1024);
        let schema = schema(&cache);
        for _ in 0..2 {
            let broken = run(&schema, "{ value(x: ", 1).await;
            assert!(broken["errors"][0]["message"].is_string(), "{broken}");
            let aliased = run(&schema, "{ a: value(x: 1) b: value(x: 2) }", 1).await;
            assert!(
                aliased["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("aliases")),
                "{aliased}"
            );
        }
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_bounds() {
        let cache = DocumentCache::new(4, 40);
        let schema = schema(&cache);
        for i in 0..20 {
            let query = format!("query Q{i}($x: Int!) {{ value(x: $x) }}");
            assert_eq!(run(&schema, &query, i).await["data"]["value"], 2 * i);
            assert!(cache.len() <= 4, "{} kept", cache.len());
        }
        assert_eq!(cache.len(), 4);
        let long = format!("query Q($x: Int!) {{ value(x: $x) }}{}", " ".repeat(40));
        let cache = DocumentCache::new(4, 40);
        let schema = self::schema(&cache);
        assert_eq!(run(&schema, &long, 3).await["data"]["value"], 6);
        assert!(cache.is_empty(), "a document over max_len was kept");
    }
}
