//! Parsed documents, kept by their text.
//!
//! A frontend sends the same few documents over and over: its `me` query,
//! its `refresh` mutation, each spelled the same way on every call, with
//! only the variables changing. Parsing one (async-graphql's pest parser)
//! was the largest single cost of a `me`, larger than the session check.
//! This extension keeps documents by their exact text and hands out a copy
//! instead of parsing again.
//!
//! Only parsing is skipped. Validation, the depth and complexity limits and
//! everything after still run on every request: they depend on the
//! variables and the operation name, not only on the text.
//!
//! What is kept is bounded in three ways, so a hostile client can neither
//! grow memory nor push secrets into it:
//! - a document is kept only after it parsed, passed every limit and
//!   validated, and only the second time its text is seen: a one-off
//!   document (say, one that writes a password as a literal instead of a
//!   variable) is never kept;
//! - at most [`DocumentCache::new`]'s `capacity` documents of at most
//!   `max_len` bytes of text each; a full cache evicts a random entry;
//! - nothing else is remembered of a text but a 64-bit hash, in a set that
//!   is cleared when it fills.
//!
//! A client sending endless distinct documents therefore only costs itself
//! the parse it would have paid anyway.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard},
};

use async_graphql::{
    async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation},
    parser::types::ExecutableDocument,
    ServerError, ServerResult, ValidationResult, Variables,
};

/// Hashes of texts seen once, remembered until this many have piled up.
const SEEN_CAPACITY: usize = 4096;

/// Parsed documents shared by every request of one schema.
#[derive(Clone)]
pub struct DocumentCache {
    inner: Arc<Documents>,
}

struct Documents {
    parsed: RwLock<HashMap<Box<str>, ExecutableDocument>>,
    /// Hashes of texts that validated once and wait for a second sighting.
    seen: Mutex<HashSet<u64>>,
    hasher: RandomState,
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
                seen: Mutex::new(HashSet::new()),
                hasher: RandomState::new(),
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

    /// Runs `look` on the document kept for exactly this text, if any,
    /// without copying it.
    pub fn inspect<R>(&self, text: &str, look: impl FnOnce(&ExecutableDocument) -> R) -> Option<R> {
        self.inner.read().get(text).map(look)
    }

    fn get(&self, text: &str) -> Option<ExecutableDocument> {
        self.inner.read().get(text).cloned()
    }

    /// Called with a document that validated: keeps it if its text was
    /// seen (and validated) before, else remembers that it was seen.
    fn offer(&self, text: Box<str>, document: ExecutableDocument) {
        let documents = &self.inner;
        if text.len() > documents.max_len || documents.capacity == 0 {
            return;
        }
        let hash = documents.hasher.hash_one(&text);
        {
            let mut seen = documents
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !seen.remove(&hash) {
                if seen.len() >= SEEN_CAPACITY {
                    seen.clear();
                }
                seen.insert(hash);
                return;
            }
        }
        let mut parsed = documents
            .parsed
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if parsed.len() >= documents.capacity && !parsed.contains_key(&text) {
            let victim = rand::random_range(0..parsed.len());
            if let Some(old) = parsed.keys().nth(victim).cloned() {
                parsed.remove(&old);
            }
        }
        parsed.insert(text, document);
    }
}

impl Documents {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Box<str>, ExecutableDocument>> {
        self.parsed.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Lookup {
            cache: self.clone(),
            parsed: Mutex::new(None),
        })
    }
}

/// One request's view of the cache: a document it had to parse waits here
/// until validation says whether it may be kept.
struct Lookup {
    cache: DocumentCache,
    parsed: Mutex<Option<(Box<str>, ExecutableDocument)>>,
}

#[async_trait::async_trait]
impl Extension for Lookup {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.cache.get(query) {
            return Ok(document);
        }
        let document = next.run(ctx, query, variables).await?;
        if query.len() <= self.cache.inner.max_len {
            *self.parsed.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((query.into(), document.clone()));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        if result.is_ok() {
            let parsed = self
                .parsed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some((text, document)) = parsed {
                self.cache.offer(text, document);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;
    use crate::graphql::limits::DocumentLimits;

    struct Query;

    #[Object]
    impl Query {
        async fn value(&self, x: i32) -> i32 {
            x * 2
        }
    }

    type TestSchema = Schema<Query, EmptyMutation, EmptySubscription>;

    /// Counts the documents that reach async-graphql's parse step (inside the cache).
    struct CountParses(Arc<AtomicUsize>);

    impl ExtensionFactory for CountParses {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(CountParses(self.0.clone()))
        }
    }

    #[async_trait::async_trait]
    impl Extension for CountParses {
        async fn parse_query(
            &self,
            ctx: &ExtensionContext<'_>,
            query: &str,
            variables: &Variables,
            next: NextParseQuery<'_>,
        ) -> ServerResult<ExecutableDocument> {
            self.0.fetch_add(1, Ordering::SeqCst);
            next.run(ctx, query, variables).await
        }
    }

    fn schema(cache: &DocumentCache) -> (TestSchema, Arc<AtomicUsize>) {
        let parses = Arc::new(AtomicUsize::new(0));
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(cache.clone())
            .extension(DocumentLimits::new(
                crate::graphql::cost::Limits {
                    max_aliases: 1,
                    ..crate::graphql::LIMITS
                },
                20,
                cache.clone(),
            ))
            .extension(CountParses(parses.clone()))
            .finish();
        (schema, parses)
    }

    async fn run(schema: &TestSchema, query: &str, x: i32) -> serde_json::Value {
        let request = async_graphql::Request::new(query)
            .variables(Variables::from_json(serde_json::json!({ "x": x })));
        serde_json::to_value(schema.execute(request).await).unwrap_or_default()
    }

    fn first_error(answer: &serde_json::Value) -> &str {
        answer["errors"][0]["message"].as_str().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_document_seen_twice_is_kept_and_not_parsed_again() {
        let cache = DocumentCache::new(8, 1024);
        let (schema, parses) = schema(&cache);
        let query = "query Q($x: Int!) { value(x: $x) }";
        assert_eq!(run(&schema, query, 2).await["data"]["value"], 4);
        assert!(cache.is_empty(), "kept on its first sighting");
        assert_eq!(run(&schema, query, 3).await["data"]["value"], 6);
        assert_eq!(cache.len(), 1);
        for x in 4..8 {
            assert_eq!(run(&schema, query, x).await["data"]["value"], 2 * x);
        }
        assert_eq!(parses.load(Ordering::SeqCst), 2, "parsed after it was kept");
        // Validation still runs on a kept document: a missing variable is refused.
        let refused = serde_json::to_value(schema.execute(query).await).unwrap_or_default();
        assert!(first_error(&refused).contains("x"), "{refused}");
        assert_eq!(refused["data"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn documents_that_fail_to_parse_break_a_limit_or_do_not_validate_are_not_kept() {
        let cache = DocumentCache::new(8, 1024);
        let (schema, parses) = schema(&cache);
        for _ in 0..3 {
            let broken = run(&schema, "{ value(x: ", 1).await;
            assert!(!first_error(&broken).is_empty(), "{broken}");
            let aliased = run(&schema, "{ a: value(x: 1) b: value(x: 2) }", 1).await;
            assert!(first_error(&aliased).contains("aliases"), "{aliased}");
            let unknown = run(&schema, "{ nope }", 1).await;
            assert!(first_error(&unknown).contains("nope"), "{unknown}");
        }
        assert!(cache.is_empty());
        // The gate refuses the first two before async-graphql's parse step.
        assert_eq!(parses.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_bounds() {
        let cache = DocumentCache::new(4, 40);
        let (schema, _) = schema(&cache);
        for i in 0..20 {
            let query = format!("query Q{i}($x: Int!) {{ value(x: $x) }}");
            for _ in 0..2 {
                assert_eq!(run(&schema, &query, i).await["data"]["value"], 2 * i);
            }
            assert!(cache.len() <= 4, "{} kept", cache.len());
        }
        assert_eq!(cache.len(), 4);
        let cache = DocumentCache::new(4, 40);
        let (schema, parses) = self::schema(&cache);
        let long = format!("query Q($x: Int!) {{ value(x: $x) }}{}", " ".repeat(40));
        for _ in 0..3 {
            assert_eq!(run(&schema, &long, 3).await["data"]["value"], 6);
        }
        assert!(cache.is_empty(), "a document over max_len was kept");
        assert_eq!(parses.load(Ordering::SeqCst), 3);
    }
}
