//! `/metrics`: each counter moves after the operation it counts.

use serde_json::json;
use warden::cleanup;

use crate::helpers::{email, s, spawn_app, spawn_app_with, TestApp, PASSWORD};

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.unwrap()
}

/// The value of one series, 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `op` and returns how much each series moved.
async fn moved<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    series: &[&str],
    op: F,
) -> Vec<f64> {
    let before = scrape(app).await;
    op.await;
    let after = scrape(app).await;
    series
        .iter()
        .map(|s| value(&after, s) - value(&before, s))
        .collect()
}

#[tokio::test]
async fn account_and_session_counters_move_with_their_operations() {
    let app = spawn_app_with(|c| c.lockout_threshold = 2).await;
    let who = email();
    let reg = moved(
        &app,
        &[
            "warden_registrations_total",
            "warden_graphql_operations_total{operation=\"register\",outcome=\"ok\"}",
        ],
        async {
            app.register(&who).await;
        },
    )
    .await;
    assert_eq!(reg, [1.0, 1.0]);

    let login = moved(
        &app,
        &[
            "warden_logins_total{outcome=\"success\"}",
            "warden_graphql_operation_seconds_count{operation=\"login\"}",
        ],
        async {
            app.login(&who, PASSWORD).await;
        },
    )
    .await;
    assert_eq!(login, [1.0, 1.0]);

    let locked = moved(
        &app,
        &[
            "warden_logins_total{outcome=\"invalid_credentials\"}",
            "warden_lockouts_total",
            "warden_logins_total{outcome=\"account_locked\"}",
        ],
        async {
            app.login(&who, "wrong password guess").await;
            app.login(&who, "wrong password guess").await;
            app.login(&who, PASSWORD).await;
        },
    )
    .await;
    assert_eq!(locked, [2.0, 1.0, 1.0]);

    let session = app.register(&email()).await;
    let token = s(&session, "refreshToken").to_owned();
    let rotated = moved(
        &app,
        &[
            "warden_refreshes_total{outcome=\"rotated\"}",
            "warden_refreshes_total{outcome=\"retry\"}",
        ],
        async {
            app.refresh(&token).await;
            app.refresh(&token).await;
        },
    )
    .await;
    assert_eq!(rotated, [1.0, 1.0]);

    let reuse = moved(
        &app,
        &[
            "warden_refresh_token_reuse_detected_total",
            "warden_sessions_revoked_total{reason=\"refresh_token_reuse\"}",
        ],
        async {
            app.clock.advance(std::time::Duration::from_secs(11));
            app.refresh(&token).await;
        },
    )
    .await;
    assert_eq!(reuse, [1.0, 1.0]);

    let other = app.register(&email()).await;
    let logout = moved(
        &app,
        &["warden_sessions_revoked_total{reason=\"logout\"}"],
        async {
            app.gql(
                Some(s(&other, "accessToken")),
                "mutation { logout }",
                json!({}),
            )
            .await;
        },
    )
    .await;
    assert_eq!(logout, [1.0]);

    let all = app.register(&who.replace("user-", "all-")).await;
    let everywhere = moved(
        &app,
        &["warden_sessions_revoked_total{reason=\"logout_all\"}"],
        async {
            app.gql(
                Some(s(&all, "accessToken")),
                "mutation { logoutAllDevices }",
                json!({}),
            )
            .await;
        },
    )
    .await;
    assert_eq!(everywhere, [1.0]);

    let denied = moved(
        &app,
        &["warden_graphql_operations_total{operation=\"me\",outcome=\"unauthenticated\"}"],
        async {
            app.me(None).await;
        },
    )
    .await;
    assert_eq!(denied, [1.0]);
}

#[tokio::test]
async fn rate_limit_refusals_are_counted_by_rule() {
    let app = spawn_app_with(|c| c.rates.rate_refresh_ip = "1/min".parse().unwrap()).await;
    let refused = moved(
        &app,
        &[
            "warden_rate_limited_total{rule=\"refresh_ip\"}",
            "warden_logins_total{outcome=\"rate_limited\"}",
        ],
        async {
            for _ in 0..3 {
                app.refresh("not-a-token").await;
            }
        },
    )
    .await;
    assert_eq!(refused, [2.0, 0.0]);
}

#[tokio::test]
async fn cleanup_passes_are_counted_by_kind() {
    let app = spawn_app_with(|c| c.revoked_retention = std::time::Duration::from_secs(60)).await;
    let session = app.register(&email()).await;
    app.gql(
        Some(s(&session, "accessToken")),
        "mutation { logout }",
        json!({}),
    )
    .await;
    let later = app.clock.now() + chrono::TimeDelta::hours(1);
    let counted = moved(
        &app,
        &[
            "warden_cleanup_removed_total{kind=\"revoked_sessions\"}",
            "warden_cleanup_removed_total{kind=\"refresh_tokens\"}",
        ],
        async {
            let removed = cleanup::run_once(&app.state.db, &app.config, later)
                .await
                .unwrap();
            cleanup::report(&app.state.metrics, &removed);
        },
    )
    .await;
    assert_eq!(counted, [1.0, 1.0]);
}

#[tokio::test]
async fn responses_are_counted_by_status() {
    let app = spawn_app().await;
    let counted = moved(
        &app,
        &[
            "warden_http_responses_total{status=\"200\"}",
            "warden_http_responses_total{status=\"415\"}",
            "warden_http_responses_total{status=\"404\"}",
        ],
        async {
            app.me(None).await;
            let refused = app
                .client
                .post(format!("{}/graphql", app.address))
                .header("content-type", "text/plain")
                .body("{ me { id } }")
                .send()
                .await
                .unwrap();
            assert_eq!(
                refused.status(),
                reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
            for _ in 0..2 {
                let missing = app
                    .client
                    .get(format!("{}/nowhere", app.address))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
            }
        },
    )
    .await;
    // The 200s: the `me`, and the first scrape (counted once it was sent).
    assert_eq!(counted, [2.0, 1.0, 2.0]);
}

#[tokio::test]
async fn process_build_and_dependency_series_are_exported() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(
            &text,
            &format!("warden_build_info{{version=\"{version}\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "warden_dependency_up{dependency=\"database\"}"),
        1.0,
        "{text}"
    );
    if cfg!(target_os = "linux") {
        assert!(
            value(&text, "process_resident_memory_bytes") > 1e6,
            "{text}"
        );
        assert!(value(&text, "process_open_fds") > 0.0, "{text}");
        assert!(value(&text, "process_max_fds") > 0.0, "{text}");
        assert!(value(&text, "process_start_time_seconds") > 1.6e9, "{text}");
        // The server runs in this process: burn CPU here until it shows.
        let cpu = value(&text, "process_cpu_seconds_total");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let burnt = std::time::Instant::now();
            let mut x = 0u64;
            while burnt.elapsed() < std::time::Duration::from_millis(100) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            if value(&scrape(&app).await, "process_cpu_seconds_total") > cpu {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process_cpu_seconds_total never moved from {cpu}"
            );
        }
    }
}

#[tokio::test]
async fn second_factor_counters_move_per_method_and_result() {
    let app = spawn_app().await;
    let who = email();
    let (_, auth, codes) = crate::mfa::enrolled(&app, &who).await;
    let login = app.login(&who, PASSWORD).await;
    let token = login["errors"][0]["extensions"]["mfaToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let complete = |factor: serde_json::Value| {
        let (app, token) = (&app, token.clone());
        async move {
            let mut input = json!({ "mfaToken": token });
            for (k, v) in factor.as_object().unwrap() {
                input[k] = v.clone();
            }
            app.gql(
                None,
                "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { accessToken } }",
                json!({ "i": input }),
            )
            .await;
        }
    };
    let wrong = auth.code_at(crate::mfa::unix(&app) + 900);
    let counts = moved(
        &app,
        &[
            "warden_mfa_total{method=\"TOTP\",result=\"failure\"}",
            "warden_mfa_total{method=\"RECOVERY_CODE\",result=\"success\"}",
        ],
        async {
            complete(json!({ "totpCode": wrong })).await;
            complete(json!({ "recoveryCode": codes[0] })).await;
        },
    )
    .await;
    assert_eq!(counts, [1.0, 1.0]);
}
