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
//!   `max_len` bytes of text each; a full cache evicts the least used of a
//!   few entries drawn at random;
//! - nothing else is remembered of a text but a 64-bit hash, in a set that
//!   is cleared when it fills.
//!
//! A client sending endless distinct documents therefore only costs itself
//! the parse it would have paid anyway.
//!
//! The same cache holds automatic persisted queries ([`super::persisted`]):
//! a document registered with its SHA-256 is kept at once (the client's
//! next request names it by hash alone), under the same bound, and only
//! after it passed the gate and validated, so a refused document is never
//! kept. A kept document may carry its hash, a 32-byte key beside it; a
//! hash is never kept without its document.
//!
//! When the cache is full, a newcomer evicts the least used of a few
//! entries drawn at random. A flood of distinct registrations (each one a
//! full parse and validation the attacker pays for) then mostly evicts its
//! own earlier, never-used entries, while a frontend's documents, used on
//! every page, stay: and a document that is evicted anyway only costs its
//! client one round trip and the parse it would have paid without a cache.
//!
//! Its tests run it behind the gate, as the schema does, so they live with
//! the gate (`limits/tests.rs`): the gate knows the cache, not the reverse.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, PoisonError, RwLock, RwLockReadGuard,
    },
};

use async_graphql::{
    async_trait,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
        NextValidation,
    },
    parser::types::ExecutableDocument,
    Request, ServerError, ServerResult, ValidationResult, Variables,
};

use super::persisted::{self, Hash, Persisted};

/// Hashes of texts seen once, remembered until this many have piled up.
const SEEN_CAPACITY: usize = 4096;
/// Entries drawn when a full cache must evict one: the least used goes.
const EVICTION_SAMPLE: usize = 4;

/// The kept documents and the persisted-query hashes that name them. Every
/// hash in `by_hash` names a text in `parsed` whose entry carries it.
#[derive(Default)]
struct Kept {
    parsed: HashMap<Box<str>, Entry>,
    by_hash: HashMap<Hash, Box<str>>,
}

struct Entry {
    document: ExecutableDocument,
    /// The persisted-query hash registered for this text, if any.
    hash: Option<Hash>,
    /// Times it was served from here (saturating): eviction spares the used.
    hits: AtomicU32,
}

/// Parsed documents shared by every request of one schema.
#[derive(Clone)]
pub struct DocumentCache {
    inner: Arc<Documents>,
}

struct Documents {
    kept: RwLock<Kept>,
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
                kept: RwLock::new(Kept {
                    parsed: HashMap::with_capacity(capacity),
                    by_hash: HashMap::new(),
                }),
                seen: Mutex::new(HashSet::new()),
                hasher: RandomState::new(),
                capacity,
                max_len,
            }),
        }
    }

    /// How many documents are kept now.
    pub fn len(&self) -> usize {
        self.inner.read().parsed.len()
    }

    /// True when no document is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `look` on the document kept for exactly this text, if any,
    /// without copying it.
    pub fn inspect<R>(&self, text: &str, look: impl FnOnce(&ExecutableDocument) -> R) -> Option<R> {
        self.inner
            .read()
            .parsed
            .get(text)
            .map(|e| look(&e.document))
    }

    /// The text of the persisted query `extensions.persistedQuery` names,
    /// if it is kept. A malformed `persistedQuery` names nothing.
    pub fn persisted_text(
        &self,
        extensions: &HashMap<String, async_graphql::Value>,
    ) -> Option<String> {
        let hash = persisted::hash_of(extensions.get("persistedQuery")?)?;
        self.text_of(&hash)
    }

    fn text_of(&self, hash: &Hash) -> Option<String> {
        self.inner.read().by_hash.get(hash).map(|t| t.to_string())
    }

    fn get(&self, text: &str) -> Option<ExecutableDocument> {
        let kept = self.inner.read();
        let entry = kept.parsed.get(text)?;
        // Saturating: a used entry's count only ever grows.
        let _ = entry
            .hits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        Some(entry.document.clone())
    }

    /// Names an already kept text by `hash`; false when the text is not kept.
    fn name(&self, text: &str, hash: Hash) -> bool {
        // Named already (every GET by hash comes back here): no write lock.
        match self.inner.read().parsed.get(text) {
            None => return false,
            Some(entry) if entry.hash == Some(hash) => return true,
            Some(_) => {}
        }
        let mut kept = self.inner.write();
        let Some(entry) = kept.parsed.get_mut(text) else {
            return false;
        };
        let old = entry.hash.replace(hash);
        if let Some(old) = old {
            kept.by_hash.remove(&old);
        }
        kept.by_hash.insert(hash, text.into());
        true
    }

    /// Called with a document that validated: keeps it if its text was
    /// seen (and validated) before, else remembers that it was seen. A
    /// persisted query (`hash` given) is kept at once: the client's next
    /// request names it by hash alone.
    fn offer(&self, text: Box<str>, document: ExecutableDocument, hash: Option<Hash>) {
        let documents = &self.inner;
        if text.len() > documents.max_len || documents.capacity == 0 {
            return;
        }
        // A text with a string literal is never kept: a literal may be a
        // secret (a password written into a `login` instead of a variable),
        // which must not outlive its request in memory, and a cache hit
        // would answer a guess of the whole text faster than a miss.
        if text.contains('"') {
            return;
        }
        let seen_hash = documents.hasher.hash_one(&text);
        if hash.is_none() {
            let mut seen = documents
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !seen.remove(&seen_hash) {
                if seen.len() >= SEEN_CAPACITY {
                    seen.clear();
                }
                seen.insert(seen_hash);
                return;
            }
        }
        let mut kept = documents.write();
        let Kept { parsed, by_hash } = &mut *kept;
        if parsed.len() >= documents.capacity && !parsed.contains_key(&text) {
            if let Some(victim) = least_used_of_a_sample(parsed) {
                if let Some(old) = parsed.remove(&victim) {
                    if let Some(old_hash) = old.hash {
                        by_hash.remove(&old_hash);
                    }
                }
            }
        }
        let previous = parsed.get(&text).and_then(|e| e.hash);
        let hash = hash.or(previous);
        if let Some(hash) = hash {
            by_hash.insert(hash, text.clone());
        }
        if let Some(previous) = previous.filter(|p| Some(*p) != hash) {
            by_hash.remove(&previous);
        }
        parsed.insert(
            text,
            Entry {
                document,
                hash,
                hits: AtomicU32::new(0),
            },
        );
    }
}

/// The least used of [`EVICTION_SAMPLE`] entries drawn at random.
fn least_used_of_a_sample(parsed: &HashMap<Box<str>, Entry>) -> Option<Box<str>> {
    let len = parsed.len();
    if len == 0 {
        return None;
    }
    let mut picks: Vec<usize> = (0..EVICTION_SAMPLE.min(len))
        .map(|_| rand::random_range(0..len))
        .collect();
    picks.sort_unstable();
    picks.dedup();
    let mut picks = picks.into_iter().peekable();
    let mut best: Option<(&Box<str>, u32)> = None;
    for (i, (text, entry)) in parsed.iter().enumerate() {
        if picks.peek() != Some(&i) {
            continue;
        }
        picks.next();
        let hits = entry.hits.load(Ordering::Relaxed);
        if best.is_none_or(|(_, least)| hits < least) {
            best = Some((text, hits));
        }
        if picks.peek().is_none() {
            break;
        }
    }
    best.map(|(text, _)| text.clone())
}

impl Documents {
    fn read(&self) -> RwLockReadGuard<'_, Kept> {
        self.kept.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Kept> {
        self.kept.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Lookup {
            cache: self.clone(),
            parsed: Mutex::new(None),
            register: Mutex::new(None),
        })
    }
}

/// One request's view of the cache: a document it had to parse waits here
/// until validation says whether it may be kept.
struct Lookup {
    cache: DocumentCache,
    parsed: Mutex<Option<(Box<str>, ExecutableDocument)>>,
    /// The hash this request registers its document under, once it validated.
    register: Mutex<Option<Hash>>,
}

#[async_trait::async_trait]
impl Extension for Lookup {
    /// A persisted query: a hash alone becomes its kept text (or the
    /// request ends with `PERSISTED_QUERY_NOT_FOUND`); a hash with its text
    /// is checked and waits for validation to be registered. The gate runs
    /// after this, on the text either way.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        match persisted::read(&request.extensions, &request.query)? {
            Persisted::None => {}
            Persisted::Lookup(hash) => {
                request.query = self.cache.text_of(&hash).ok_or_else(persisted::not_found)?;
            }
            // A text with a string literal runs but is never named by its
            // hash: a literal may be a secret (a password written into a
            // `login`), and a kept hash of it would answer "found" to
            // anyone guessing texts offline, without a login attempt.
            Persisted::Register(_) if request.query.contains('"') => {}
            Persisted::Register(hash) => {
                if !self.cache.name(&request.query, hash) {
                    *self.register.lock().unwrap_or_else(PoisonError::into_inner) = Some(hash);
                }
            }
        }
        next.run(ctx, request).await
    }

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
                let hash = self
                    .register
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                self.cache.offer(text, document, hash);
            }
        }
        result
    }
}
