//! The connection loop: HTTP/1.1 straight on hyper, one task per connection.
//!
//! poem's own `Server` hands every connection to hyper-util's `auto`
//! builder, which can also speak cleartext HTTP/2. Its per-connection state
//! is much larger than hyper's HTTP/1 connection alone: on a bare harness,
//! 10,000 idle keep-alive connections took 264 MB that way and 168 MB this
//! way; Warden itself went from 279 MB to 226 MB. Warden's callers are
//! browsers and apps, usually through a proxy or load balancer, which speak
//! HTTP/1.1 to their upstreams (TLS and HTTP/2 end at the proxy), so Warden
//! serves HTTP/1.1 only, without protocol upgrades (it has no WebSocket
//! endpoint). Routing, extractors and middleware are still poem's: each
//! request goes to the same endpoint poem's server would call, with the
//! same local and remote addresses.
//!
//! A connection has [`ServeOptions::header_timeout`] to send a complete
//! request head whenever it is waiting for one: just opened, or idle
//! between keep-alive requests. That closes idle connections and clients
//! that trickle their headers; the GraphQL handler bounds the body read
//! with the same time.
//!
//! What one connection may cost is bounded too. A request head (request
//! line and headers) may be at most [`MAX_HEAD_BYTES`]: past that hyper
//! answers 431 and closes, and its read buffer never grows beyond it (by
//! default hyper buffers up to ~400 KB of unfinished head per connection:
//! 1,000 connections took the server from 31 to 421 MB). How many
//! connections are open is capped in all and per client
//! ([`ConnectionCaps`]); a connection over a cap gets a 503 written straight
//! to its socket and is closed in the accept loop, without a task or any
//! buffer of its own.

use std::{convert::Infallible, future::Future, io, io::Write, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use poem::{
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, EndpointExt, Request,
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::caps::ConnectionCaps;
use crate::metrics::Metrics;

/// The largest request head (request line and headers) accepted. Browsers
/// send a few KB, cookies included; the common server defaults are 8 to
/// 32 KB (nginx's `large_client_header_buffers` allows 4 x 8 KB).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Written, without waiting, to a connection refused by a cap.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
    Connection: close\r\nRetry-After: 1\r\n\r\n";

/// How long to wait before accepting again after `accept` failed for want
/// of resources (file descriptors, buffers), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Timeouts and bounds of the connection loop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Time a connection has to send a request head while one is awaited.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish once shutdown begins.
    pub grace: Duration,
    /// Largest request head accepted; a larger one gets 431 and the
    /// connection is closed. At least 8 KiB (hyper's smallest buffer).
    pub max_head_bytes: usize,
    /// How many connections may be open, in all and per client.
    pub caps: ConnectionCaps,
    /// Where heads over the cap are counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl ServeOptions {
    /// The production bounds with these timeouts and caps.
    pub fn new(header_timeout: Duration, grace: Duration, caps: ConnectionCaps) -> Self {
        Self {
            header_timeout,
            grace,
            max_head_bytes: MAX_HEAD_BYTES,
            caps,
            metrics: None,
        }
    }
}

/// Accepts connections on `listener` and serves `endpoint` on each until
/// `shutdown` completes. Then it stops accepting, lets every connection
/// finish the request it is serving (closing it afterwards), and returns
/// once all are closed; connections still busy after `options.grace` are
/// cut off.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint.map_to_response());
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_per_connection(&err) => {
                    tracing::debug!(error = %err, "a connection failed before it was accepted");
                    continue;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Over a cap: refused here, before the connection costs a task or
        // a buffer. The permit rides with the connection's task and gives
        // the place back when the task ends, however it ends.
        let permit = match options.caps.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(peer = %peer, cap = refusal.label(), "connection refused");
                refuse(socket);
                continue;
            }
        };
        // Responses go out in one write; there is nothing to coalesce.
        let _ = socket.set_nodelay(true);
        let remote = RemoteAddr(Addr::SocketAddr(peer));
        let (endpoint, local) = (endpoint.clone(), local.clone());
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let req = Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
            // Boxed: hyper keeps a slot the size of the service's future in
            // every connection for as long as it is open, idle or not (in a
            // box of its own, made with the connection). Warden's endpoint
            // future is ~10 KB unoptimised; boxed, the slot is a pointer and
            // the future exists only while a request runs.
            let response: BoxFuture<'static, Result<_, Infallible>> = Box::pin(async move {
                let response = endpoint.get_response(req).await;
                Ok(hyper::Response::from(response))
            });
            response
        });
        // `max_header_size` answers 431 once the unfinished head reaches
        // the cap; `max_buf_size` keeps the read buffer itself from growing
        // past it (hyper's floor is 8 KiB).
        let head = options.max_head_bytes.max(8192);
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .max_header_size(head)
            .max_buf_size(head)
            .serve_connection(TokioIo::new(socket), service);
        let conn = graceful.watch(conn);
        let metrics = options.metrics.clone();
        connections.spawn(async move {
            let _permit = permit;
            // Peers hang up mid-request and heads time out: neither is ours
            // to report above debug.
            if let Err(err) = conn.await {
                if err.is_parse_too_large() {
                    if let Some(metrics) = &metrics {
                        metrics.request_heads_too_large.inc();
                    }
                }
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.grace) => {
            tracing::warn!(
                connections = connections.len(),
                grace_secs = options.grace.as_secs(),
                "requests still running after the grace period are cut off"
            );
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Writes the 503 if the socket takes it at once, then closes. The socket
/// leaves the runtime first: a plain non-blocking write needs no readiness
/// event, and the close is immediate.
fn refuse(socket: TcpStream) {
    if let Ok(mut socket) = socket.into_std() {
        let _ = socket.write(REFUSED);
    }
}

/// Errors that concern one incoming connection, not the listener: accepting
/// the next one can go on at once.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use poem::{handler, Route};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::oneshot,
    };

    use super::*;

    /// Tells the test it has started, then takes 300 ms.
    #[handler]
    async fn slow(started: poem::web::Data<&Arc<tokio::sync::Notify>>) -> &'static str {
        started.notify_one();
        tokio::time::sleep(Duration::from_millis(300)).await;
        "done"
    }

    /// Tells the test it has started, then never answers.
    #[handler]
    async fn stuck(started: poem::web::Data<&Arc<tokio::sync::Notify>>) -> &'static str {
        started.notify_one();
        std::future::pending::<()>().await;
        "never"
    }

    #[handler]
    fn peer(req: &Request) -> String {
        req.remote_addr().to_string()
    }

    struct Running {
        addr: std::net::SocketAddr,
        slow_started: Arc<tokio::sync::Notify>,
        stop: Option<oneshot::Sender<()>>,
        served: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(header_timeout: Duration) -> io::Result<Running> {
        start_with(header_timeout, Duration::from_secs(5)).await
    }

    async fn start_with(header_timeout: Duration, grace: Duration) -> io::Result<Running> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let slow_started = Arc::new(tokio::sync::Notify::new());
        let routes = Route::new()
            .at("/slow", slow)
            .at("/stuck", stuck)
            .at("/peer", peer)
            .data(slow_started.clone());
        let options = ServeOptions::new(header_timeout, grace, ConnectionCaps::unlimited());
        let served = tokio::spawn(serve(listener, routes, options, async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            slow_started,
            stop: Some(stop),
            served,
        })
    }

    /// Sends one request on `stream` and reads its whole response.
    async fn get(stream: &mut TcpStream, path: &str) -> io::Result<String> {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
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
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    #[tokio::test]
    async fn one_connection_serves_requests_back_to_back_and_sees_its_peer() -> io::Result<()> {
        let server = start(Duration::from_secs(5)).await?;
        let mut stream = TcpStream::connect(server.addr).await?;
        let mine = stream.local_addr()?;
        for _ in 0..3 {
            let response = get(&mut stream, "/peer").await?;
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(response.ends_with(&mine.to_string()), "{response}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_head_is_closed() -> io::Result<()> {
        let server = start(Duration::from_millis(300)).await?;
        // Idle after a request, and trickling a head that never ends.
        let mut idle = TcpStream::connect(server.addr).await?;
        assert!(get(&mut idle, "/peer").await?.starts_with("HTTP/1.1 200"));
        let mut trickle = TcpStream::connect(server.addr).await?;
        trickle.write_all(b"GET /peer HTTP/1.1\r\nHo").await?;
        let started = Instant::now();
        for stream in [&mut idle, &mut trickle] {
            let mut rest = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            assert!(read.is_ok(), "the connection was still open after 5 s");
        }
        assert!(started.elapsed() >= Duration::from_millis(200));
        Ok(())
    }

    #[tokio::test]
    async fn shutdown_lets_a_running_request_finish_and_then_stops_accepting() -> io::Result<()> {
        let mut server = start(Duration::from_secs(5)).await?;
        let mut stream = TcpStream::connect(server.addr).await?;
        let addr = server.addr;
        let running = tokio::spawn(async move { get(&mut stream, "/slow").await });
        server.slow_started.notified().await;
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        let response = running.await.map_err(io::Error::other)??;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("done"), "{response}");
        let served = tokio::time::timeout(Duration::from_secs(5), server.served).await;
        assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
        Ok(())
    }

    #[tokio::test]
    async fn a_request_still_running_after_the_grace_period_is_cut_off() -> io::Result<()> {
        let mut server = start_with(Duration::from_secs(5), Duration::from_millis(200)).await?;
        let mut stream = TcpStream::connect(server.addr).await?;
        stream
            .write_all(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        server.slow_started.notified().await;
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        // The handler never returns: only the cut-off lets `serve` end.
        let served = tokio::time::timeout(Duration::from_secs(5), server.served).await;
        assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
        // The client sees its connection closed with no response at all.
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        match read {
            Ok(Ok(_)) => assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest)),
            Ok(Err(err)) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}"),
            Err(_) => panic!("the connection was still open 5 s after the cut-off"),
        }
        Ok(())
    }
}
