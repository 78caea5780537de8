//! The README's gateway example, run: nginx (`examples/gateway/`) in front
//! of a small API, asking Warden's `/oauth/introspect` about every
//! request's bearer token. Needs `nginx` with the njs module (CI installs
//! `nginx-light` and `libnginx-mod-http-js`); without them the test says
//! so and passes, except under `CI=true`, where it fails.

use std::{path::Path, process::Stdio, time::Duration};

use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    helpers::{email, s, spawn_app},
    smtp::free_port,
};

const JS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";

/// A stand-in API on a loopback port: answers every request with the
/// identity headers nginx passed on, as `id role scope`.
async fn api() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let value = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .unwrap_or("-")
                        .trim()
                        .to_owned()
                };
                let body = format!(
                    "{} {} {}",
                    value("x-user-id"),
                    value("x-user-role"),
                    value("x-token-scope")
                );
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// nginx with the example's configuration, its placeholders filled in.
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_nginx(warden: &str, api: u16, key: &str) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gateway");
    std::fs::copy(
        examples.join("introspect.js"),
        dir.path().join("introspect.js"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    let port = free_port();
    let conf = std::fs::read_to_string(examples.join("nginx.conf"))
        .unwrap()
        .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
        .replace("@WARDEN@", warden)
        .replace("@API@", &format!("127.0.0.1:{api}"))
        .replace("@INTROSPECT_KEY@", key)
        .replace("@DIR@", dir.path().to_str().unwrap());
    let unfilled = conf
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains('@'));
    assert!(!unfilled, "every placeholder filled");
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .args(["-c", "nginx.conf", "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    // Stopped (killed and waited for) on drop, whatever happens next.
    let nginx = Nginx { child, port, dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not listen: {log}");
}

fn nginx_with_njs() -> bool {
    let found = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
        && Path::new(JS_MODULE).exists();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install nginx-light and libnginx-mod-http-js"
        );
        eprintln!("skipped: nginx with the njs module is not installed");
    }
    found
}

#[tokio::test]
async fn the_nginx_example_lets_live_tokens_through_and_stops_them_at_logout() {
    if !nginx_with_njs() {
        return;
    }
    let app = spawn_app().await;
    // The gateway's own key, with the INTROSPECT scope only.
    let operator = s(&app.register(&email()).await, "accessToken").to_owned();
    let created = app
        .gql(
            Some(&operator),
            "mutation { createApiKey(input: { name: \"gateway\", scopes: [INTROSPECT] }) { secret } }",
            json!({}),
        )
        .await;
    let key = s(&created["data"]["createApiKey"], "secret").to_owned();
    let api = api().await;
    let warden = app.address.trim_start_matches("http://").to_owned();
    let nginx = start_nginx(&warden, api, &key).await;
    let url = format!("http://127.0.0.1:{}/api/orders", nginx.port);
    let client = reqwest::Client::new();
    let get = |token: Option<String>, forged: bool| {
        let (client, url) = (&client, &url);
        async move {
            let mut req = client.get(url);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if forged {
                req = req.header("X-User-Id", "someone-else");
            }
            let response = req.send().await.unwrap();
            let status = response.status();
            (status, response.text().await.unwrap())
        }
    };

    let account = app.register(&email()).await;
    let token = s(&account, "accessToken").to_owned();
    let id = account["user"]["id"].as_str().unwrap().to_owned();
    let (status, body) = get(Some(token.clone()), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        format!("{id} user user"),
        "a forged X-User-Id is replaced"
    );

    // Without a token, or with a made-up one: 401 from the gateway.
    assert_eq!(get(None, false).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("not.a.token".into()), false).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A logout stops the token at the gateway on the very next request,
    // long before it expires.
    let out = app
        .gql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(get(Some(token), false).await.0, StatusCode::UNAUTHORIZED);

    // An API key of the user goes through as that user, until revoked.
    let user_token = s(
        &app.login(
            account["user"]["email"].as_str().unwrap(),
            crate::helpers::PASSWORD,
        )
        .await["data"]["login"],
        "accessToken",
    )
    .to_owned();
    let made = app
        .gql(
            Some(&user_token),
            "mutation { createApiKey(input: { name: \"cli\", scopes: [USER] }) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let user_key = s(&made["data"]["createApiKey"], "secret").to_owned();
    let (status, body) = get(Some(user_key.clone()), false).await;
    assert_eq!((status, body), (StatusCode::OK, format!("{id} user user")));
    let revoke = app
        .gql(
            Some(&user_token),
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": made["data"]["createApiKey"]["apiKey"]["id"] }),
        )
        .await;
    assert_eq!(revoke["data"]["revokeApiKey"], true, "{revoke}");
    assert_eq!(get(Some(user_key), false).await.0, StatusCode::UNAUTHORIZED);

    // The gateway's own key (INTROSPECT only) is nobody at the gateway,
    // and an administrator's key acts as an administrator only with the
    // ADMIN scope.
    assert_eq!(
        get(Some(key.clone()), false).await.0,
        StatusCode::UNAUTHORIZED
    );
    let admin = app.admin_token().await;
    let admin_id = app.me(Some(&admin)).await["data"]["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (scopes, seen) in [
        ("[USER]", "user user"),
        ("[USER, ADMIN]", "admin user admin"),
    ] {
        let made = app
            .gql(
                Some(&admin),
                &format!("mutation {{ createApiKey(input: {{ name: \"k\", scopes: {scopes} }}) {{ secret }} }}"),
                json!({}),
            )
            .await;
        let secret = s(&made["data"]["createApiKey"], "secret").to_owned();
        let (status, body) = get(Some(secret), false).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, format!("{admin_id} {seen}"))
        );
    }

    // The gateway's key revoked: it fails closed (500 from nginx, the API
    // never reached), not open.
    let keys = app
        .gql(Some(&operator), "{ apiKeys { id } }", json!({}))
        .await;
    let gateway_key = keys["data"]["apiKeys"][0]["id"].clone();
    app.gql(
        Some(&operator),
        "mutation($id: ID!) { revokeApiKey(id: $id) }",
        json!({ "id": gateway_key }),
    )
    .await;
    let (status, _) = get(Some(user_token), false).await;
    assert!(status.is_server_error(), "{status}");
}
