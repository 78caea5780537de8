//! The real binary under attack: the RSS it reads (`/proc/PID/status`) and
//! the limits it sets (`ulimit` in a shell that then `exec`s Warden) are the
//! server's alone, not the test process's.

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

use super::{exchange, healthz, status, HEAD_CAP};

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
