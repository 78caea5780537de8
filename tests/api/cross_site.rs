//! Cookie mode across sites, in headless Chromium (`tests/js/cookies.mjs`):
//! an app page served from one origin calls Warden on another with
//! `credentials: 'include'`. Same-site, the cookie works; cross-site with
//! the default `SameSite=Strict` it is dropped (and start-up warned about
//! it); cross-site with `SameSite=None; Secure` it works. Also the CORS
//! request headers of real clients, in the same browser.

use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};
use warden::config::{RefreshCookieMode, SameSite};

use crate::helpers::{captured_logs, email, spawn_app_with, TestApp, PASSWORD};

/// A second HTTP server standing in for the app's dev server: a blank HTML
/// page for any host and path, on its own port. Stops when dropped.
struct Frontend {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn frontend() -> Frontend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let page = "<!doctype html><title>app</title>";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Frontend { port, task }
}

fn port_of(app: &TestApp) -> &str {
    app.address.rsplit(':').next().unwrap()
}

/// Runs the browser check: the app page at `app_host:{frontend port}`
/// logs in and refreshes against Warden at `api_host:{its port}`.
async fn browse(
    app: &TestApp,
    frontend: &Frontend,
    app_host: &str,
    api_host: &str,
    who: &str,
    options: Value,
) -> Option<Value> {
    let page = format!("http://{app_host}:{}/", frontend.port);
    let api = format!("http://{api_host}:{}", port_of(app));
    crate::node::run(
        "cookies.mjs",
        &[&page, &api, who, PASSWORD, &options.to_string()],
        true,
    )
    .await
}

/// A server in cookie mode whose CORS list holds the app's origin.
async fn cookie_app(
    app_origin: String,
    same_site: SameSite,
    secure: bool,
    public_url: &str,
) -> TestApp {
    let public_url = public_url.to_owned();
    spawn_app_with(move |c| {
        c.refresh_cookie = RefreshCookieMode::On;
        c.cookie_same_site = same_site;
        c.cookie_secure = secure;
        c.cors_origins = vec![app_origin];
        c.public_url = Some(public_url);
    })
    .await
}

fn blocked_names(report: &Value) -> Vec<String> {
    report["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_same_site_app_on_another_origin_refreshes_with_the_cookie() {
    // Strict over "HTTPS" (Chromium told to treat the API's origin as
    // secure), Lax over plain HTTP: either way the app and the API share
    // the site example.test, so `fetch` carries the cookie.
    for (same_site, secure) in [(SameSite::Strict, true), (SameSite::Lax, false)] {
        let front = frontend().await;
        let origin = format!("http://app.example.test:{}", front.port);
        let app = cookie_app(origin, same_site, secure, "http://api.example.test").await;
        let who = email();
        app.register(&who).await;
        let options = json!({ "secureApi": secure, "headers": same_site == SameSite::Strict });
        let Some(report) = browse(
            &app,
            &front,
            "app.example.test",
            "api.example.test",
            &who,
            options,
        )
        .await
        else {
            return;
        };
        assert_eq!(report["login"]["ok"], true, "{report}");
        assert_eq!(report["refresh"]["ok"], true, "{report}");
        assert_eq!(report["refresh"]["accessToken"], true, "{report}");
        assert!(blocked_names(&report).is_empty(), "{report}");
        if same_site == SameSite::Strict {
            // Apollo's CSRF header and a W3C trace header pass the
            // preflight; a header outside WARDEN_CORS_ALLOW_HEADERS does not.
            let allowed = &report["headers"]["allowed"];
            assert_eq!(allowed["ok"], true, "{report}");
            assert_eq!(allowed["data"]["__typename"], "Query", "{report}");
            let unlisted = &report["headers"]["unlisted"];
            assert!(unlisted["fetchError"].is_string(), "{report}");
        }
    }
}

#[tokio::test]
async fn a_cross_site_app_loses_the_strict_cookie_and_start_up_warns_about_it() {
    // The setup: the app on localhost, the API on 127.0.0.1. Third-
    // party cookies are allowed in this browser, so what drops the cookie
    // is SameSite alone.
    let front = frontend().await;
    let origin = format!("http://localhost:{}", front.port);
    let app = cookie_app(
        origin.clone(),
        SameSite::Strict,
        false,
        "http://127.0.0.1:8080",
    )
    .await;
    let warned = format!("CORS origin {origin} is cross-site to the API (site http://127.0.0.1");
    assert!(captured_logs().contains(&warned), "no warning: {warned}");

    let who = email();
    app.register(&who).await;
    let options = json!({ "thirdPartyCookies": true });
    let Some(report) = browse(&app, &front, "localhost", "127.0.0.1", &who, options).await else {
        return;
    };
    assert_eq!(report["login"]["ok"], true, "{report}");
    assert_eq!(report["refresh"]["ok"], false, "{report}");
    assert_eq!(
        report["refresh"]["code"], "INVALID_REFRESH_TOKEN",
        "{report}"
    );
    let reasons = report["blocked"].to_string();
    assert!(reasons.contains("SameSiteStrict"), "{report}");
    assert!(blocked_names(&report).contains(&"warden_refresh".to_owned()));
}

#[tokio::test]
async fn a_cross_site_app_refreshes_with_a_same_site_none_secure_cookie() {
    // Secure over plain HTTP works because Chromium treats 127.0.0.1 as a
    // secure origin. Third-party cookies stay blocked (this Chromium's
    // default): the cookie is Partitioned, kept in the app site's own jar.
    let front = frontend().await;
    let origin = format!("http://localhost:{}", front.port);
    let app = cookie_app(
        origin.clone(),
        SameSite::None,
        true,
        "http://127.0.0.1:8080",
    )
    .await;
    let who = email();
    app.register(&who).await;
    let Some(report) = browse(&app, &front, "localhost", "127.0.0.1", &who, json!({})).await else {
        return;
    };
    assert_eq!(report["login"]["ok"], true, "{report}");
    assert_eq!(report["refresh"]["ok"], true, "{report}");
    assert_eq!(report["refresh"]["accessToken"], true, "{report}");
    assert!(blocked_names(&report).is_empty(), "{report}");
}
