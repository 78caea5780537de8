//! Connections that cannot exhaust memory or file descriptors: head size,
//! connection caps, the open-files limit; and the SQLite file kept private.
//!
//! The head-size and cap tests here run an in-process server with small
//! caps; [`real_binary`] runs `warden serve` for memory and descriptors,
//! [`database_file`] checks the SQLite file's permissions.

mod database_file;
mod real_binary;

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::spawn_app_with;

/// The request-head cap of the issue: 32 KiB.
const HEAD_CAP: usize = 32 * 1024;

// ------------------------------------------------------------ raw HTTP/1.1

/// Sends one request on `stream` and reads its response (head and a body
/// of `Content-Length` bytes). Returns what arrived before EOF or a reset.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> String {
    if stream.write_all(request).await.is_err() {
        return String::new();
    }
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            // A reset after the response, or no answer at all: what came is it.
            Ok(Err(_)) | Err(_) => break,
        };
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn healthz() -> Vec<u8> {
    b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n".to_vec()
}

/// A `GET /healthz` whose head is exactly `size` bytes, padded by one header.
fn head_of(size: usize) -> Vec<u8> {
    let start = b"GET /healthz HTTP/1.1\r\nHost: warden\r\nX-Pad: ";
    let end = b"\r\n\r\n";
    let mut head = start.to_vec();
    head.resize(size - end.len(), b'a');
    head.extend_from_slice(end);
    assert_eq!(head.len(), size);
    head
}

fn status(response: &str) -> &str {
    response.get(9..12).unwrap_or("")
}

// ------------------------------------------------------------ head size

#[tokio::test]
async fn a_request_head_over_32_kib_gets_431_and_one_under_it_is_served() {
    let app = spawn_app_with(|_| {}).await;
    let addr = app.address.trim_start_matches("http://").to_owned();

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let response = exchange(&mut stream, &head_of(30 * 1024)).await;
    assert_eq!(status(&response), "200", "30 KiB head: {response}");

    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let response = exchange(&mut stream, &head_of(33 * 1024)).await;
    assert_eq!(status(&response), "431", "33 KiB head: {response}");
    // And the connection is closed after it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open after the 431");
    let text = metrics(&app).await;
    assert!(
        text.contains("warden_request_heads_too_large_total 1"),
        "{text}"
    );
}

// ------------------------------------------------------------ connection caps

/// Opens `n` connections and has each answer one request, so the server
/// has accepted (and counted) every one of them before the test goes on.
async fn open_served(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let response = exchange(&mut stream, &healthz()).await;
        assert_eq!(status(&response), "200", "{response}");
        streams.push(stream);
    }
    streams
}

/// A connection over a cap: the server answers 503 (or just closes) at
/// once, and never serves the request.
async fn assert_refused(addr: &str) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let response = exchange(&mut stream, &healthz()).await;
    assert!(
        response.is_empty() || status(&response) == "503",
        "a connection over the cap was served: {response}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refused connection was held open"
    );
}

/// After a connection closes, its place is free again; the server notices
/// the close asynchronously, so this tries for a few seconds. Returns how
/// many tries were refused first (each one counted by the server).
async fn served_eventually(addr: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    loop {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let response = exchange(&mut stream, &healthz()).await;
        if status(&response) == "200" {
            return refused;
        }
        refused += 1;
        assert!(Instant::now() < deadline, "never served again: {response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(app: &crate::helpers::TestApp) -> String {
    app.metrics().await
}

#[tokio::test]
async fn one_client_ip_cannot_hold_more_connections_than_its_cap() {
    let app = spawn_app_with(|c| c.max_connections_per_ip = 3).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut held = open_served(&addr, 3).await;
    assert_refused(&addr).await;
    // A client that has sent nothing yet reads the 503 before the close.
    let mut quiet = TcpStream::connect(&addr).await.unwrap();
    let response = read_response(&mut quiet).await;
    assert_eq!(status(&response), "503", "{response}");
    assert!(response.contains("Retry-After: 1"), "{response}");
    // The held connections still work, and closing one frees a place.
    for stream in &mut held {
        assert_eq!(status(&exchange(stream, &healthz()).await), "200");
    }
    drop(held.pop());
    let mut refused = 2 + served_eventually(&addr).await;
    drop(held);
    // /metrics takes a connection of its own from the same IP: it fits
    // once the held ones are closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.address))
            .send()
            .await;
        match text {
            Ok(response) if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                break response.text().await.unwrap()
            }
            _ => refused += 1,
        }
        assert!(Instant::now() < deadline, "/metrics never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The two refused above, and any try refused while a close was still
    // being noticed.
    assert!(
        text.contains(&format!(
            "warden_connections_refused_total{{reason=\"per_ip\"}} {refused}"
        )),
        "{refused} refused: {text}"
    );
}

#[tokio::test]
async fn the_server_holds_no_more_connections_than_its_global_cap() {
    let app = spawn_app_with(|c| {
        c.max_connections = 3;
        c.max_connections_per_ip = 100;
    })
    .await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let held = open_served(&addr, 3).await;
    assert_refused(&addr).await;
    drop(held);
    let refused = 1 + served_eventually(&addr).await;
    let text = metrics(&app).await;
    assert!(
        text.contains(&format!(
            "warden_connections_refused_total{{reason=\"global\"}} {refused}"
        )),
        "{refused} refused: {text}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_is_not_capped_per_ip_but_still_by_the_global_cap() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.max_connections_per_ip = 2;
        c.max_connections = 6;
    })
    .await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let held = open_served(&addr, 6).await;
    assert_refused(&addr).await;
    drop(held);
    served_eventually(&addr).await;
}
