//! Runs the client-side checks in `tests/js` (Node: the graphql-http audit,
//! Apollo Client, headless Chromium through puppeteer-core) against a live
//! server, and hands their report back to the Rust test.
//!
//! Each script prints one JSON object as the last line of its standard
//! output. `.ci/run` installs Node, Chromium and `tests/js/node_modules`
//! (`npm ci`), so under `CI` a missing tool fails the test; on a laptop
//! without them the test says what to install and is skipped.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `tests/js` in this checkout.
fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// The Chromium binary the browser checks drive.
pub fn chromium() -> PathBuf {
    std::env::var_os("WARDEN_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether the tools a check needs are here. Under `CI` they must be.
fn available(browser: bool) -> bool {
    let modules = js_dir().join("node_modules");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing = Vec::new();
    if !node {
        missing.push("node (Node 20+)".to_owned());
    }
    if !modules.is_dir() {
        missing.push("tests/js/node_modules (`npm ci --prefix tests/js`)".to_owned());
    }
    if browser && !chromium().exists() {
        missing.push(format!("{} (Debian: chromium)", chromium().display()));
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have every client-side tool; missing: {}",
        missing.join(", ")
    );
    eprintln!("skipped: missing {}", missing.join(", "));
    false
}

/// Runs `node tests/js/<script> <args…>` and returns its report, or `None`
/// when Node (or Chromium, for `browser` checks) is not installed outside CI.
/// A script that exits non-zero fails the test with its output.
pub async fn run(script: &str, args: &[&str], browser: bool) -> Option<Value> {
    if !available(browser) {
        return None;
    }
    let output = tokio::process::Command::new("node")
        .arg(js_dir().join(script))
        .args(args)
        .current_dir(js_dir())
        .env("WARDEN_TEST_CHROMIUM", chromium())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let report = last.and_then(|l| serde_json::from_str(l).ok());
    Some(report.unwrap_or_else(|| panic!("{script} printed no JSON report:\n{stdout}\n{stderr}")))
}

#[tokio::test]
async fn headless_chromium_loads_a_page_from_the_server_under_test() {
    let app = crate::helpers::spawn_app().await;
    let Some(report) = run("smoke.mjs", &[&app.address], true).await else {
        return;
    };
    assert_eq!(report["status"], 200, "{report}");
    assert!(
        report["userAgent"]
            .as_str()
            .unwrap_or("")
            .contains("Chrome"),
        "{report}"
    );
}
