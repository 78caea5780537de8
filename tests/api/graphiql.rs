//! GraphiQL: the page's security headers, the embedded assets (types,
//! caching, hashes matching the pinned npm builds), unknown and traversing
//! asset paths, GraphiQL turned off, and the page itself in headless
//! Chromium with the network off.

use base64::Engine;
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha384};

use crate::helpers::{email, s, spawn_app, spawn_app_with, TestApp};

const CSP: &str = "default-src 'none'; script-src 'self'; \
style-src 'self' 'sha256-nzTgYzXYDNe6BAHiiI7NNlfK8n/auuOAhh2t92YvuXo='; \
connect-src 'self'; img-src 'self' data:; font-src 'self' data:; \
frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn page(app: &TestApp) -> reqwest::Response {
    app.client
        .get(format!("{}/graphql", app.address))
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap()
}

fn header_of<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

/// Every `src="…"` and `href="…"` in the page, with its `integrity`.
fn assets_of(html: &str) -> Vec<(String, String)> {
    html.lines()
        .filter(|l| l.contains("<script") || l.contains("<link rel=\"stylesheet\""))
        .map(|line| {
            let attr = |name: &str| {
                let start = line
                    .find(&format!("{name}=\""))
                    .unwrap_or_else(|| panic!("no {name} in {line}"))
                    + name.len()
                    + 2;
                line[start..start + line[start..].find('"').unwrap()].to_owned()
            };
            let url = if line.contains("<script") {
                attr("src")
            } else {
                attr("href")
            };
            (url, attr("integrity"))
        })
        .collect()
}

#[tokio::test]
async fn the_page_has_a_strict_csp_no_framing_and_is_not_cached() {
    let app = spawn_app().await;
    let response = page(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_of(&response, "content-security-policy"), CSP);
    assert_eq!(header_of(&response, "x-frame-options"), "DENY");
    assert_eq!(header_of(&response, "referrer-policy"), "no-referrer");
    assert_eq!(header_of(&response, "cache-control"), "no-store");
    assert_eq!(header_of(&response, "x-content-type-options"), "nosniff");
    assert_eq!(
        header_of(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    let html = response.text().await.unwrap();
    // Every script is a file from this server: none inline, none elsewhere.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/graphiql/").count(),
        "{html}"
    );
    assert!(!html.contains("<style"), "{html}");
    for absolute in ["://", "src=\"//", "href=\"//"] {
        assert!(!html.contains(absolute), "no URL elsewhere: {html}");
    }
    assert_eq!(assets_of(&html).len(), 6, "{html}");
}

#[tokio::test]
async fn every_asset_is_served_immutable_with_its_type_and_the_pinned_bytes() {
    let app = spawn_app().await;
    let html = page(&app).await.text().await.unwrap();
    let manifest: Value =
        serde_json::from_str(include_str!("../../assets/graphiql/vendor/manifest.json")).unwrap();
    let pinned = manifest["files"].as_array().unwrap();
    let mut vendored = 0;
    for (url, integrity) in assets_of(&html) {
        assert!(url.starts_with("/graphiql/"), "{url}");
        let response = app
            .client
            .get(format!("{}{url}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let expected_type = if url.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header_of(&response, "content-type"), expected_type, "{url}");
        assert_eq!(
            header_of(&response, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header_of(&response, "x-content-type-options"), "nosniff");
        let bytes = response.bytes().await.unwrap();
        let sri = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&bytes))
        );
        assert_eq!(integrity, sri, "{url}: the page's integrity matches");
        // The vendored files are byte for byte what the build script copied
        // out of the pinned npm packages.
        let name = url.rsplit('/').next().unwrap();
        if let Some(entry) = pinned.iter().find(|f| f["file"] == name) {
            let sha256: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(sha256, s(entry, "sha256"), "{url}");
            assert_eq!(entry["integrity"].as_str(), Some(sri.as_str()), "{url}");
            vendored += 1;
        }
    }
    assert_eq!(vendored, pinned.len(), "every pinned file is on the page");
    // Production builds only.
    let names: Vec<&str> = pinned.iter().map(|f| s(f, "file")).collect();
    assert!(names.contains(&"react.production.min.js"), "{names:?}");
    assert!(names.contains(&"react-dom.production.min.js"), "{names:?}");
}

#[tokio::test]
async fn unknown_stale_and_traversing_asset_paths_are_404() {
    let app = spawn_app().await;
    let html = page(&app).await.text().await.unwrap();
    let (init, _) = assets_of(&html)
        .into_iter()
        .find(|(url, _)| url.ends_with("/init.js"))
        .unwrap();
    let prefix = init.trim_end_matches("/init.js").to_owned();
    let ok = app
        .client
        .get(format!("{}{init}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "the control path is served");
    for path in [
        format!("{prefix}/nope.js"),
        format!("{prefix}/init.js.map"),
        format!("{prefix}/INIT.JS"),
        format!("{prefix}/manifest.json"),
        format!("{prefix}/LICENSE.react"),
        "/graphiql/0000000000000000/init.js".to_owned(),
        "/graphiql/init.js".to_owned(),
        format!("{prefix}/init.js/extra"),
        format!("{prefix}/..%2f..%2fCargo.toml"),
        format!("{prefix}/..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("{prefix}/%2e%2e%2f%2e%2e%2fsrc%2fmain.rs"),
        format!("{prefix}/..\\..\\Cargo.toml"),
        format!("{prefix}/%00init.js"),
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn with_introspection_off_neither_the_page_nor_its_assets_are_served() {
    let open = spawn_app().await;
    let html = page(&open).await.text().await.unwrap();
    let assets = assets_of(&html);
    let closed = spawn_app_with(|c| c.introspection = false).await;
    let response = page(&closed).await;
    // As before GraphiQL had its own module: a GET without a query is a
    // bad request, answered in JSON.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(header_of(&response, "content-type").starts_with("application/json"));
    assert!(!response.text().await.unwrap().contains("graphiql"));
    for (url, _) in assets {
        let response = closed
            .client
            .get(format!("{}{url}", closed.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
    }
}

#[tokio::test]
async fn graphiql_works_offline_in_chromium_shows_login_and_runs_a_query() {
    let app = spawn_app().await;
    let who = email();
    let payload = app.register(&who).await;
    let token = s(&payload, "accessToken");
    let screenshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("graphiql.png");
    let Some(report) = crate::node::run(
        "graphiql.mjs",
        &[&app.address, token, &screenshot.to_string_lossy()],
        true,
    )
    .await
    else {
        return;
    };
    eprintln!("graphiql.mjs: {report}");
    assert_eq!(report["status"], 200, "{report}");
    assert_eq!(report["headers"]["csp"], CSP, "{report}");
    // Offline: nothing was asked of any other origin.
    assert_eq!(report["offsite"], json!([]), "{report}");
    assert_eq!(report["csp"], json!([]), "no CSP violation: {report}");
    assert_eq!(report["afterReload"]["csp"], json!([]), "{report}");
    assert_eq!(
        report["dialogs"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    let console = report["consoleErrors"].as_array().unwrap();
    assert_eq!(console, &Vec::<Value>::new(), "no console error: {report}");
    // The docs explorer (fed by GraphiQL's full introspection query) lists
    // login under Mutation.
    assert_eq!(report["docs"]["title"], "Mutation", "{report}");
    let fields = report["docs"]["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f == "login"), "{report}");
    assert!(fields.iter().any(|f| f == "register"), "{report}");
    // The headers editor opens with an Authorization header to fill in.
    assert_eq!(report["headersVisible"], "Headers", "{report}");
    let headers = report["initialHeaders"].as_str().unwrap_or_default();
    assert!(
        headers.contains("\"Authorization\": \"Bearer <"),
        "{report}"
    );
    assert!(
        report["initialQuery"]
            .as_str()
            .unwrap_or_default()
            .contains("mutation Login"),
        "{report}"
    );
    assert!(
        report["initialVariables"]
            .as_str()
            .unwrap_or_default()
            .contains("\"password\""),
        "{report}"
    );
    // The query ran with the pasted token; neither the token nor the
    // variables were kept, and a reload restores the query but not them.
    assert_eq!(report["result"]["data"]["me"]["email"], who, "{report}");
    assert_eq!(report["tokenInLocalStorage"], false, "{report}");
    assert_eq!(report["secretInLocalStorage"], false, "{report}");
    assert_eq!(
        report["afterReload"]["query"], "query Me { me { email role } }",
        "{report}"
    );
    assert_eq!(report["afterReload"]["headers"], report["initialHeaders"]);
}
