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
//!
//! Its tests run it behind the gate, as the schema does, so they live with
//! the gate (`limits/tests.rs`): the gate knows the cache, not the reverse.

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
