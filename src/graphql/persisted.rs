//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery = { version: 1, sha256Hash }`, first without
//! the text. A hash the server knows runs the document it stands for; an
//! unknown one answers `PERSISTED_QUERY_NOT_FOUND`, and the client sends the
//! hash again with the text, which registers it.
//!
//! What this file decides is only what a request's `persistedQuery` asks;
//! the documents themselves live in the [`DocumentCache`]
//! (super::documents::DocumentCache), under the same bound as every other
//! kept document, and are registered only once they passed the document
//! gate and validation.
//!
//! A text that holds a string literal runs but is never registered: a
//! literal may be a secret (a password written into a `login` instead of
//! a variable), and a hash kept for it would tell anyone who guesses texts
//! offline that a guess was right, without a login attempt. Its hash keeps
//! missing and the client keeps sending the text; Apollo's link copes.
//!
//! Errors (all request errors: nothing runs, no `data`):
//! - `PERSISTED_QUERY_NOT_FOUND` (message `PersistedQueryNotFound`, as
//!   Apollo's link and server spell it): a hash alone that is not kept;
//! - `PERSISTED_QUERY_HASH_MISMATCH`: the text's SHA-256 is not the hash
//!   sent with it, so registering it would let one hash stand for another
//!   document;
//! - `PERSISTED_QUERY_NOT_SUPPORTED` (message `PersistedQueryNotSupported`):
//!   a version other than 1, or a `persistedQuery` that is not
//!   `{ version, sha256Hash }` with 64 hex digits. Apollo's link then stops
//!   hashing and sends full texts, which is what a client speaking another
//!   version should do.

use async_graphql::{ServerError, Value};
use sha2::{Digest, Sha256};

/// `extensions.code` of a hash the server does not hold.
pub const NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// `extensions.code` of a text whose SHA-256 is not the hash sent with it.
pub const HASH_MISMATCH: &str = "PERSISTED_QUERY_HASH_MISMATCH";
/// `extensions.code` of a `persistedQuery` this server cannot read.
pub const NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";

/// A document's SHA-256.
pub type Hash = [u8; 32];

/// What a request's `extensions.persistedQuery` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    /// No `persistedQuery`: an ordinary request.
    None,
    /// A hash without text: run the kept document, if any.
    Lookup(Hash),
    /// A hash with the text it stands for (checked): run it and keep it.
    Register(Hash),
}

/// Reads `extensions.persistedQuery` of a request whose text is `query`.
pub fn read(
    extensions: &std::collections::HashMap<String, Value>,
    query: &str,
) -> Result<Persisted, ServerError> {
    let Some(persisted) = extensions.get("persistedQuery") else {
        return Ok(Persisted::None);
    };
    let hash = hash_of(persisted).ok_or_else(not_supported)?;
    if query.is_empty() {
        return Ok(Persisted::Lookup(hash));
    }
    if sha256(query) != hash {
        return Err(error(
            "The persisted query's sha256Hash is not the SHA-256 of its query.",
            HASH_MISMATCH,
        ));
    }
    Ok(Persisted::Register(hash))
}

/// The hash in `persistedQuery`, when it is `{ version: 1, sha256Hash }`
/// with a hash of 64 hex digits.
pub fn hash_of(persisted: &Value) -> Option<Hash> {
    let Value::Object(fields) = persisted else {
        return None;
    };
    let version_one =
        matches!(fields.get("version"), Some(Value::Number(n)) if n.as_u64() == Some(1));
    let Some(Value::String(hex)) = fields.get("sha256Hash") else {
        return None;
    };
    if !version_one || hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(hash)
}

/// SHA-256 of a document's text, as the client computes it.
pub fn sha256(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

/// The error for a hash the server does not hold.
pub fn not_found() -> ServerError {
    error("PersistedQueryNotFound", NOT_FOUND)
}

fn not_supported() -> ServerError {
    error("PersistedQueryNotSupported", NOT_SUPPORTED)
}

fn error(message: &str, code: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extensions(persisted: serde_json::Value) -> std::collections::HashMap<String, Value> {
        let mut map = std::collections::HashMap::new();
        if let Ok(value) = Value::from_json(persisted) {
            map.insert("persistedQuery".to_owned(), value);
        }
        map
    }

    fn hex(hash: Hash) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn code(err: &ServerError) -> Option<String> {
        err.extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string())
    }

    #[test]
    fn a_hash_is_looked_up_alone_and_checked_against_its_text() {
        let text = "{ __typename }";
        let hash = sha256(text);
        let ext = extensions(serde_json::json!({ "version": 1, "sha256Hash": hex(hash) }));
        assert_eq!(read(&ext, ""), Ok(Persisted::Lookup(hash)));
        assert_eq!(read(&ext, text), Ok(Persisted::Register(hash)));
        let wrong = read(&ext, "{ me { id } }").err();
        assert_eq!(
            wrong.as_ref().and_then(code).as_deref(),
            Some("\"PERSISTED_QUERY_HASH_MISMATCH\"")
        );
        assert_eq!(read(&Default::default(), text), Ok(Persisted::None));
    }

    #[test]
    fn other_versions_and_malformed_hashes_are_not_supported() {
        let hash = hex(sha256("{ a }"));
        for bad in [
            serde_json::json!({ "version": 2, "sha256Hash": hash }),
            serde_json::json!({ "sha256Hash": hash }),
            serde_json::json!({ "version": 1, "sha256Hash": "abc" }),
            serde_json::json!({ "version": 1, "sha256Hash": "zz".repeat(32) }),
            serde_json::json!("x"),
        ] {
            let err = read(&extensions(bad.clone()), "").err();
            assert_eq!(
                err.as_ref().and_then(code).as_deref(),
                Some("\"PERSISTED_QUERY_NOT_SUPPORTED\""),
                "{bad}"
            );
        }
    }
}
