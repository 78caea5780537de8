//! Documents whose expanded size, errors or fields would cost more than they are worth are refused before they run.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (ns).
///
/// `#[tokio::test]` runs on a current-thread runtime: the server spawned by
/// `spawn_app` and the client both run on the test's own thread, so this
/// thread's CPU is the server's CPU for the request (plus the client's small
/// share), and tests running in parallel on other threads do not blur it.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// `query { ...G<depth> }` where each `G<k>` spreads `G<k-1>` `fanout` times and
/// `G0` is `__typename`: `fanout^depth` fields once expanded.
fn nested_spreads(depth: usize, fanout: usize) -> String {
    let mut doc = format!("query {{ ...G{depth} }}\n");
    for k in 1..=depth {
        let spreads = format!("...G{} ", k - 1).repeat(fanout);
        doc.push_str(&format!("fragment G{k} on Query {{ {spreads}}}\n"));
    }
    doc.push_str("fragment G0 on Query { __typename }\n");
    doc
}

/// What the server did with one document, and the CPU it took.
struct Answer {
    status: StatusCode,
    body: Value,
    cpu: Duration,
}

async fn send(app: &TestApp, query: &str) -> Answer {
    let before = thread_cpu();
    let response = app.post(None, query, json!({})).await;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        cpu: thread_cpu().saturating_sub(before),
    }
}

#[tokio::test]
async fn a_ten_deep_nest_of_fragment_spreads_is_refused_in_milliseconds() {
    let app = spawn_app().await;
    let doc = nested_spreads(10, 5);
    assert!(doc.len() < 700, "{} bytes", doc.len());
    let started = Instant::now();
    let answer = send(&app, &doc).await;
    eprintln!(
        "ten-deep spreads ({} bytes): {} in {:?} wall, {:?} CPU: {}",
        doc.len(),
        answer.status,
        started.elapsed(),
        answer.cpu,
        answer.body
    );
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(answer.cpu < Duration::from_millis(50), "{:?}", answer.cpu);
}
