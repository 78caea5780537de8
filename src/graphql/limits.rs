//! The gate every document passes before async-graphql walks it, and the
//! cap on errors in a response.
//!
//! async-graphql parses a request's text inside its parse step and, in the
//! same step, runs its recursion-depth and directive checks, which expand
//! every fragment spread without memo. An extension's `parse_query` hook
//! only sees the document after those ran, which is too late: ten nested
//! fragments cost seconds there. So the gate works one step earlier, in
//! `prepare_request`: it parses the text itself, measures the expanded
//! document with [`cost::measure`], refuses it or hands the parsed document
//! on (`Request::set_parsed_query`), so the text is still parsed only once.
//! A text the [`DocumentCache`] holds passed this gate before: it is not
//! parsed again, only measured again with this request's variables (a
//! variable counts as the value sent for it).
//!
//! Refusals are request errors: no `data`, no `path`, so the transport
//! answers 400 under `application/graphql-response+json`. Their
//! `extensions.code` is `GRAPHQL_VALIDATION_FAILED` (the code Apollo and
//! most GraphQL clients know for a document that does not validate; async-
//! graphql sends validation errors without a code, and this gate gives its
//! validation errors the same code) with `limit` naming the bound and `max`
//! its value. A document that does not parse gets `GRAPHQL_PARSE_FAILED`.
//!
//! A response carries at most `max_errors` errors; past that, one more says
//! how many were left out (`TOO_MANY_ERRORS`, `extensions.omitted`).
//!
//! Parsing and validating a new document is CPU work on an executor thread,
//! up to some 20 ms for the largest admitted one. A stream of them from a
//! few clients could keep every executor thread busy, and a kept document
//! (every `me` of a real frontend) would wait behind them. So at most half
//! the cores (at least one) parse and validate texts the cache does not
//! hold at once; the others wait their turn (first come, first served) on
//! a semaphore, without holding a thread. Execution is not under it: a
//! `login` waiting for a hashing thread must not hold up other documents.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{
    async_trait,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
        NextValidation,
    },
    Request, Response, ServerError, ServerResult, ValidationResult,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    cost::{self, Cost, Limits, Refusal},
    documents::DocumentCache,
};

/// `extensions.code` of a document refused by a limit or by validation.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// `extensions.code` of a document that does not parse.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// `extensions.code` of the error that stands for the errors left out.
pub const TOO_MANY_ERRORS: &str = "TOO_MANY_ERRORS";

/// The extension: document limits before anything else, codes on request
/// errors, and at most `max_errors` errors per response.
pub struct DocumentLimits {
    limits: Limits,
    max_errors: usize,
    cache: DocumentCache,
    parsing: Arc<Semaphore>,
}

impl DocumentLimits {
    /// Documents must stay within `limits`; a response keeps `max_errors`
    /// errors; texts `cache` holds passed the gate when first seen.
    pub fn new(limits: Limits, max_errors: usize, cache: DocumentCache) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            limits,
            max_errors,
            cache,
            parsing: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Gate {
            limits: self.limits,
            max_errors: self.max_errors,
            cache: self.cache.clone(),
            parsing: self.parsing.clone(),
            permit: Mutex::new(None),
            cost: Mutex::new(None),
        })
    }
}

/// One request's pass through the gate.
struct Gate {
    limits: Limits,
    max_errors: usize,
    cache: DocumentCache,
    parsing: Arc<Semaphore>,
    /// Held from parsing a new text to the end of its validation.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// What the gate measured, for the complexity check after validation.
    cost: Mutex<Option<Cost>>,
}

impl Gate {
    fn release(&self) {
        self.permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[async_trait::async_trait]
impl Extension for Gate {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        self.release();
        cap_errors(&mut response.errors, self.max_errors);
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // A kept text passed when first seen, but with other variables: its
        // document is measured again (a walk, no parse) with these ones.
        let kept = self.cache.inspect(&request.query, |document| {
            cost::measure(document, &request.variables, &self.limits)
        });
        let measured = match kept {
            Some(measured) => measured.map_err(refusal)?,
            None => {
                // The semaphore is never closed; without a permit the text
                // is still checked, only not queued.
                let permit = self.parsing.clone().acquire_owned().await.ok();
                let measured = check(&mut request, &self.limits)?;
                *self.permit.lock().unwrap_or_else(PoisonError::into_inner) = permit;
                measured
            }
        };
        *self.cost.lock().unwrap_or_else(PoisonError::into_inner) = Some(measured);
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        self.release();
        let validated = result.map_err(|errors| {
            errors
                .into_iter()
                .map(with_validation_code)
                .collect::<Vec<_>>()
        })?;
        // Complexity needs the schema (what each field declares), so it is
        // checked on validation's count, less the introspection fields the
        // gate bounded on their own. Without the gate's figures nothing is
        // subtracted: the stricter reading.
        let cost = self
            .cost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_default();
        cost::check_complexity(validated.complexity, &cost, &self.limits)
            .map_err(|refused| vec![refusal(refused)])?;
        Ok(validated)
    }
}

/// Parses `request`, measures the document, and leaves it in the request
/// so that async-graphql does not parse the text again.
fn check(request: &mut Request, limits: &Limits) -> ServerResult<Cost> {
    cost::check_text(&request.query, limits).map_err(refusal)?;
    let document = async_graphql::parser::parse_query(&request.query)
        .map_err(|err| with_code(super::parse_errors::server_error(err), PARSE_FAILED))?;
    let measured = cost::measure(&document, &request.variables, limits).map_err(refusal)?;
    request.set_parsed_query(document);
    Ok(measured)
}

fn refusal(refusal: Refusal) -> ServerError {
    let mut err = ServerError::new(refusal.to_string(), None);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", VALIDATION_FAILED);
    ext.set("limit", refusal.limit.as_str());
    if refusal.max > 0 {
        ext.set("max", refusal.max);
    }
    err
}

fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    err
}

fn with_validation_code(err: ServerError) -> ServerError {
    with_code(err, VALIDATION_FAILED)
}

/// Keeps the first `max` errors and replaces the rest with one that says
/// how many were left out.
pub fn cap_errors(errors: &mut Vec<ServerError>, max: usize) {
    if errors.len() <= max {
        return;
    }
    // The errors a client must see whatever else failed stay, first: they
    // carry the `Retry-After` the HTTP layer reads, or a request id.
    let (mut kept, rest): (Vec<_>, Vec<_>) = errors.drain(..).partition(always_kept);
    let room = max.saturating_sub(kept.len());
    let omitted = rest.len().saturating_sub(room);
    kept.extend(rest.into_iter().take(room));
    *errors = kept;
    if omitted == 0 {
        return;
    }
    let mut err = ServerError::new(
        format!("too many errors; {omitted} more were left out"),
        None,
    );
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", TOO_MANY_ERRORS);
    ext.set("omitted", omitted);
    errors.push(err);
}

/// Codes that [`cap_errors`] never drops: `RATE_LIMITED` and
/// `ACCOUNT_LOCKED` carry `retryAfter` (and make the `Retry-After`
/// header), `INTERNAL` the request id to quote. Aliases bound how many
/// there can be.
const ALWAYS_KEPT: [&str; 3] = ["RATE_LIMITED", "ACCOUNT_LOCKED", "INTERNAL"];

fn always_kept(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .and_then(|ext| ext.get("code"))
        .is_some_and(|code| {
            matches!(code, async_graphql::Value::String(code) if ALWAYS_KEPT.contains(&code.as_str()))
        })
}

#[cfg(test)]
mod tests;
