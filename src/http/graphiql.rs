//! GraphiQL, served whole from the binary: the page (`GET /graphql` with
//! `Accept: text/html`) and its assets under `/graphiql/<hash>/<file>`.
//!
//! The assets are the production builds of GraphiQL, React and ReactDOM,
//! copied unmodified from the npm packages pinned in
//! `assets/graphiql/package-lock.json` by `assets/graphiql/build` (CI re-runs
//! it and fails when the committed `assets/graphiql/vendor/` differs), plus
//! Warden's own `init.js` and `page.css`. Nothing is fetched at build or run
//! time, so the page works offline, and no third-party origin can run script
//! beside a refresh cookie.
//!
//! The page carries a strict Content-Security-Policy (scripts and styles from
//! this origin only, no inline script, no framing) and is never cached; the
//! assets live under a path named by a hash of their bytes, so they are
//! cached for a year as immutable and a new build gets new URLs.
//! With `WARDEN_INTROSPECTION=false` neither the page nor the assets are
//! served.

use std::sync::{Arc, LazyLock};

use base64::Engine;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Path},
    Response,
};
use sha2::{Digest, Sha256, Sha384};

use super::HttpState;

/// The page's Content-Security-Policy. The one hash in `style-src` is the
/// scroll lock that GraphiQL's dialogs (settings, short keys) insert as a
/// `<style>` element (react-remove-scroll-bar, bundled in graphiql.min.js);
/// its text is fixed on this page, where nothing scrolls. Chromium checks
/// that no dialog meets a violation (tests/js/graphiql.mjs).
pub const CSP: &str = "default-src 'none'; script-src 'self'; \
style-src 'self' 'sha256-nzTgYzXYDNe6BAHiiI7NNlfK8n/auuOAhh2t92YvuXo='; \
connect-src 'self'; img-src 'self' data:; font-src 'self' data:; \
frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `Cache-Control` of the hashed assets.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file the page loads, in the order the page loads them.
const ASSETS: [Asset; 6] = [
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/graphiql/vendor/graphiql.min.css"),
    },
    Asset {
        name: "page.css",
        content_type: CSS,
        bytes: include_bytes!("../../assets/graphiql/page.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/vendor/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/vendor/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/vendor/graphiql.min.js"),
    },
    Asset {
        name: "init.js",
        content_type: JS,
        bytes: include_bytes!("../../assets/graphiql/init.js"),
    },
];

/// The first 16 hex digits of the SHA-256 over every asset: the path
/// segment that changes whenever any of them does.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for asset in &ASSETS {
        hash.update(asset.name.as_bytes());
        hash.update((asset.bytes.len() as u64).to_be_bytes());
        hash.update(asset.bytes);
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
});

/// The page, built once: it names the assets by their hashed path, with
/// Subresource Integrity.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let tags: String = ASSETS
        .iter()
        .map(|asset| {
            let url = format!("{}/{}", prefix(), asset.name);
            let sri = format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(Sha384::digest(asset.bytes))
            );
            if asset.content_type == CSS {
                format!("  <link rel=\"stylesheet\" href=\"{url}\" integrity=\"{sri}\">\n")
            } else {
                format!("  <script src=\"{url}\" integrity=\"{sri}\" defer></script>\n")
            }
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n  \
<title>Warden · GraphiQL</title>\n  <link rel=\"icon\" href=\"data:,\">\n{tags}</head>\n<body>\n  \
<div id=\"graphiql\" data-endpoint=\"/graphql\">Loading GraphiQL…</div>\n  \
<noscript>GraphiQL needs JavaScript.</noscript>\n</body>\n</html>\n"
    )
});

/// `/graphiql/<hash>`: where the assets of this build live.
pub fn prefix() -> String {
    format!("/graphiql/{}", *VERSION)
}

/// The GraphiQL page, with its security headers. Never cached: it names the
/// assets of this build.
pub fn page() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header("Cross-Origin-Opener-Policy", "same-origin")
        .header(header::CACHE_CONTROL, "no-store")
        .body(PAGE.as_str())
}

/// `GET /graphiql/:version/:file`: one embedded asset, or 404 for anything
/// else (an old or unknown version, an unknown name, GraphiQL turned off).
/// Names are looked up in a fixed table, never joined to a filesystem path.
#[handler]
pub fn assets(
    Path((version, file)): Path<(String, String)>,
    Data(http): Data<&Arc<HttpState>>,
) -> Response {
    let found = ASSETS
        .iter()
        .find(|a| a.name == file)
        .filter(|_| version == *VERSION && http.app.config.introspection);
    match found {
        Some(asset) => Response::builder()
            .status(StatusCode::OK)
            .content_type(asset.content_type)
            .header(header::CACHE_CONTROL, IMMUTABLE)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .body(asset.bytes),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_under_this_builds_prefix() {
        for asset in &ASSETS {
            assert!(PAGE.contains(&format!("{}/{}\"", prefix(), asset.name)));
        }
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert!(!PAGE.contains("<style"), "no inline style");
        assert_eq!(VERSION.len(), 16);
    }
}
