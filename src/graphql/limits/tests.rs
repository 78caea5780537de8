//! The document cache ([`DocumentCache`]) behind the gate: what is kept,
//! what is parsed again, and that nothing the gate refuses is kept. They
//! run the two extensions together, as the schema does; they live here, by
//! the gate, because the gate is the one of the two that knows the other.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use async_graphql::{
    async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
    EmptyMutation, EmptySubscription, Object, Schema, ServerResult, Variables,
};

use crate::graphql::{documents::DocumentCache, limits::DocumentLimits};

struct Query;

#[Object]
impl Query {
    async fn value(&self, x: i32) -> i32 {
        x * 2
    }

    async fn echo(&self, s: String) -> String {
        s
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
async fn a_document_with_a_string_literal_is_never_kept() {
    // The literal may be a password typed into the document: it must not
    // stay in memory past its request.
    let cache = DocumentCache::new(8, 1024);
    let (schema, parses) = schema(&cache);
    let query = r#"query Q { echo(s: "hunter2") }"#;
    for _ in 0..3 {
        assert_eq!(run(&schema, query, 0).await["data"]["echo"], "hunter2");
    }
    assert!(cache.is_empty(), "a text with a literal was kept");
    assert_eq!(parses.load(Ordering::SeqCst), 3, "parsed every time");
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
