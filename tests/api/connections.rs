//! Connections that cannot exhaust memory or file descriptors: head size,
//! connection caps, the open-files limit; and the SQLite file kept private.
//!
//! The memory and file-descriptor tests run the real binary, so the RSS they
//! read (`/proc/PID/status`) and the limits they set (`ulimit` in a shell
//! that then `exec`s Warden) are the server's alone. The cap tests run an
//! in-process server with small caps.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

use crate::helpers::{captured_logs, spawn_app_with, PASSWORD};

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
/// the close asynchronously, so this tries for a few seconds.
async fn served_eventually(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let response = exchange(&mut stream, &healthz()).await;
        if status(&response) == "200" {
            return;
        }
        assert!(Instant::now() < deadline, "never served again: {response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(app: &crate::helpers::TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
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
    served_eventually(&addr).await;
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
        if let Ok(response) = text {
            break response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/metrics never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("warden_connections_refused_total{reason=\"per_ip\"} 2"),
        "{text}"
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
    served_eventually(&addr).await;
    let text = metrics(&app).await;
    assert!(
        text.contains("warden_connections_refused_total{reason=\"global\"} 1"),
        "{text}"
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

// ------------------------------------------------------------ the real binary

struct Server {
    child: Child,
    pid: u32,
    port: u16,
    _dir: tempfile::TempDir,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server and returns its log lines.
    fn logs(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }

    fn rss_kb(&self) -> u64 {
        proc_status(self.pid, "VmRSS:")
    }
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `warden serve` on a fresh SQLite file with JSON logs; `ulimit`,
/// when given, is run by the shell that `exec`s Warden (`-Sn 256`).
async fn serve(ulimit: Option<&str>, env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_warden");
    let mut cmd = Command::new("sh");
    let script = match ulimit {
        Some(args) => format!("ulimit {args} && exec \"$0\" serve"),
        None => "exec \"$0\" serve".to_owned(),
    };
    cmd.arg("-c").arg(script).arg(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("WARDEN_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display()),
        )
        .env("WARDEN_BCRYPT_COST", "4")
        .env("WARDEN_RATE_LIMITS", "off")
        .env("WARDEN_LOG_FORMAT", "json");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let lines = BufReader::new(child.stdout.take().unwrap());
    let stdout = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect());
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            if status(&exchange(&mut stream, &healthz()).await) == "200" {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        pid,
        port,
        _dir: dir,
        stdout: Some(stdout),
    }
}

/// Bytes the kernel holds, not yet read by the server, on its established
/// connections: when this is 0, the server has read what the clients sent.
fn unread_by_server(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, queues) = (fields.get(1)?, fields.get(3)?, fields.get(4)?);
            (local.ends_with(&port) && *state == "01").then_some(())?;
            u64::from_str_radix(queues.split(':').nth(1)?, 16).ok()
        })
        .sum()
}

/// Waits (up to 60 s) until the server has read everything sent to it,
/// then returns its RSS in KiB, the largest of a few samples.
async fn settled_rss(server: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while unread_by_server(server.port) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rss = 0;
    for _ in 0..5 {
        rss = rss.max(server.rss_kb());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rss
}

/// Opens `n` connections, each sending an unfinished request head of up
/// to `size` bytes in 8 KiB writes (stopping early when the server hangs
/// up), and keeps them open. Returns the streams and how many the server
/// answered or closed within `wait` after their last write.
async fn unfinished_heads(
    port: u16,
    n: usize,
    size: usize,
    wait: Duration,
) -> (Vec<TcpStream>, usize) {
    let gate = Arc::new(Semaphore::new(100));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.unwrap();
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let mut sent = 0;
                let mut cut = false;
                let start = b"GET /healthz HTTP/1.1\r\nHost: warden\r\nX-Pad: ";
                if stream.write_all(start).await.is_err() {
                    return (stream, true);
                }
                sent += start.len();
                let filler = [b'a'; 8192];
                while sent < size {
                    let len = filler.len().min(size - sent);
                    let write = tokio::time::timeout(
                        Duration::from_secs(10),
                        stream.write_all(&filler[..len]),
                    )
                    .await;
                    match write {
                        Ok(Ok(())) => sent += len,
                        _ => {
                            cut = true;
                            break;
                        }
                    }
                }
                // The server may have answered (431) and closed without
                // failing a write yet. Let the next connection start, then
                // look for an answer or a close for `wait` (every connection
                // waits at once).
                drop(permit);
                let mut byte = [0u8; 1];
                if !cut {
                    let read = tokio::time::timeout(wait, stream.read(&mut byte)).await;
                    cut = read.is_ok();
                }
                (stream, cut)
            })
        })
        .collect();
    let mut streams = Vec::new();
    let mut cut = 0;
    for task in tasks {
        let (stream, was_cut) = task.await.unwrap();
        cut += usize::from(was_cut);
        streams.push(stream);
    }
    (streams, cut)
}

#[tokio::test]
async fn a_thousand_connections_sending_380_kb_heads_leave_rss_bounded_and_a_fresh_client_is_served(
) {
    let server = serve(None, &[]).await;
    let before = settled_rss(&server).await;
    let (held, cut) =
        unfinished_heads(server.port, 1000, 380 * 1024, Duration::from_secs(10)).await;
    let after = settled_rss(&server).await;
    eprintln!(
        "380 KB heads on 1000 connections: RSS {} -> {} MB, {} cut off by the server",
        before / 1024,
        after / 1024,
        cut
    );
    // A fresh client is served while the attackers hold their sockets.
    let mut fresh = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    assert_eq!(status(&exchange(&mut fresh, &healthz()).await), "200");
    drop(held);
    assert_eq!(cut, 1000, "every oversized head is refused");
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "RSS grew from {} to {} MB",
        before / 1024,
        after / 1024
    );
}

#[tokio::test]
async fn a_thousand_connections_holding_heads_just_under_the_cap_leave_rss_bounded() {
    let server = serve(None, &[]).await;
    let before = settled_rss(&server).await;
    let (held, cut) =
        unfinished_heads(server.port, 1000, HEAD_CAP - 1024, Duration::from_secs(1)).await;
    let after = settled_rss(&server).await;
    eprintln!(
        "31 KiB unfinished heads on 1000 connections: RSS {} -> {} MB, {} cut off",
        before / 1024,
        after / 1024,
        cut
    );
    let mut fresh = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    assert_eq!(status(&exchange(&mut fresh, &healthz()).await), "200");
    assert_eq!(cut, 0, "a head under the cap is not refused");
    drop(held);
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "RSS grew from {} to {} MB",
        before / 1024,
        after / 1024
    );
}

// ------------------------------------------------------------ file descriptors

fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[tokio::test]
async fn start_up_raises_the_open_files_limit_to_the_hard_limit() {
    let server = serve(Some("-Sn 256"), &[]).await;
    let (soft, hard) = open_files_limit(server.pid);
    assert_eq!(soft, hard, "soft limit {soft}, hard limit {hard}");
}

#[tokio::test]
async fn start_up_warns_when_the_open_files_limit_stays_below_the_connection_cap() {
    let server = serve(Some("-n 512"), &[("WARDEN_MAX_CONNECTIONS", "10000")]).await;
    let logs = server.logs();
    let warning = logs
        .iter()
        .find(|l| l.contains("open files") && l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning about the open files limit: {logs:?}"));
    assert!(warning.contains("512"), "{warning}");
}

// ------------------------------------------------------------ the database file

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// SQLite whatever backend the suite runs on: the files are what is tested.
fn sqlite_url(dir: &tempfile::TempDir) -> (std::path::PathBuf, String) {
    let path = dir.path().join("private.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (path, url)
}

#[tokio::test]
async fn a_fresh_sqlite_database_and_its_wal_and_shm_files_are_readable_by_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = sqlite_url(&dir);
    let app = spawn_app_with(|c| c.database_url = url.into()).await;
    // A write, so the WAL holds data.
    let body = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
            serde_json::json!({ "i": { "email": "private@example.com", "password": PASSWORD } }),
        )
        .await;
    assert!(
        body["data"]["register"]["accessToken"].is_string(),
        "{body}"
    );
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        assert_eq!(
            mode(&file),
            0o600,
            "{} is {:o}",
            file.display(),
            mode(&file)
        );
    }
    assert!(
        !captured_logs()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&path.display().to_string())),
        "a private file drew a warning"
    );
}

#[tokio::test]
async fn start_up_warns_when_the_database_file_is_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = sqlite_url(&dir);
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = spawn_app_with(|c| c.database_url = url.into()).await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let logs = captured_logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&path.display().to_string()))
        .unwrap_or_else(|| panic!("no warning names {}", path.display()));
    assert!(warning.contains("644"), "{warning}");
    // Warden warns; it does not change an operator's file behind their back.
    assert_eq!(mode(&path), 0o644);
}

#[tokio::test]
async fn connections_beyond_what_the_open_files_limit_holds_are_refused_and_the_database_still_works(
) {
    // 300 descriptors: Warden keeps 144 (128 + 16 database connections)
    // for itself and caps connections at 156, below WARDEN_MAX_CONNECTIONS.
    let server = serve(Some("-n 300"), &[("WARDEN_MAX_CONNECTIONS", "10000")]).await;
    let mut held = Vec::new();
    let (mut served, mut refused, mut hung) = (0, 0, 0);
    for _ in 0..400 {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", server.port)).await else {
            refused += 1;
            continue;
        };
        let request = healthz();
        let answer = tokio::time::timeout(Duration::from_secs(2), exchange(&mut stream, &request));
        match answer.await {
            Ok(response) if status(&response) == "200" => {
                served += 1;
                held.push(stream);
            }
            Ok(_) => refused += 1,
            Err(_) => hung += 1,
        }
    }
    eprintln!("ulimit -n 300, 400 connections: {served} served, {refused} refused, {hung} hung");
    assert_eq!(hung, 0, "connections left waiting instead of refused");
    assert!((100..=156).contains(&served), "{served} served");
    // A place freed: the next client is served, and the database (which
    // needs descriptors of its own) still answers.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let body = br#"{"query":"mutation { register(input: {email: \"fd@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}"#;
        let request = [
            format!(
                "POST /graphql HTTP/1.1\r\nHost: warden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes(),
            body.to_vec(),
        ]
        .concat();
        let response = exchange(&mut stream, &request).await;
        if status(&response) == "200" {
            assert!(response.contains("accessToken"), "{response}");
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}
