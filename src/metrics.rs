//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! Each server owns its registry (no process-global state), so two servers
//! in one process, as in the tests, count separately. Label values come
//! from small fixed sets (operation names, outcomes, rule names), never from
//! user input, so the number of series stays bounded.
//!
//! Besides Warden's own series (prefixed `warden_`), `/metrics` carries the
//! standard process series (`process_resident_memory_bytes`,
//! `process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`, …; Linux only), from the `prometheus`
//! crate's process collector in a registry of their own so they keep their
//! usual unprefixed names, and `warden_build_info{version} 1`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric Warden exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// The process collector's registry, without the `warden` prefix.
    process: Registry,
    /// GraphQL root fields executed, by `operation` and `outcome` (`ok` or an error code).
    pub operations: IntCounterVec,
    /// Seconds per GraphQL root field, by `operation`.
    pub operation_seconds: HistogramVec,
    /// `login` attempts by `outcome`.
    pub logins: IntCounterVec,
    /// Accounts created.
    pub registrations: IntCounter,
    /// Refresh tokens rotated, by `outcome` (`rotated`, `retry`).
    pub refreshes: IntCounterVec,
    /// Replays of spent refresh tokens caught.
    pub reuse_detections: IntCounter,
    /// Sessions ended, by `reason`.
    pub sessions_revoked: IntCounterVec,
    /// Client locks armed: one client locked out of one email.
    pub lockouts: IntCounter,
    /// Email locks armed: an email closed to all but its trusted devices.
    pub lockout_email_locks: IntCounter,
    /// Requests refused by a rate limit, by `rule`.
    pub rate_limited: IntCounterVec,
    /// Checks answered by the in-memory limiter because the shared store failed.
    pub limiter_fallbacks: IntCounter,
    /// Rows deleted by cleanup, by `kind`.
    pub cleanup_removed: IntCounterVec,
    /// Connections open now.
    pub connections_open: IntGauge,
    /// Connections closed at accept because a cap was reached, by `reason`
    /// (`global`, `per_ip`).
    pub connections_refused: IntCounterVec,
    /// Connections closed with 431 because their request head outgrew the cap.
    pub request_heads_too_large: IntCounter,
    /// Breached-password (Pwned Passwords) checks, by `outcome`: `clean`,
    /// `breached`, or `unavailable` (failed open).
    pub password_breach_checks: IntCounterVec,
    /// HTTP responses by `status` code (a few dozen values at most).
    pub http_responses: IntCounterVec,
    /// 1 when a `dependency` (`database`, `redis`) answered its last check,
    /// 0 when it did not; set by `/readyz` and before each scrape.
    pub dependency_up: IntGaugeVec,
    /// Delivery attempts of outbound mail by `kind` and `result`
    /// (`sent`, `retry`, `failed`).
    pub mail_sent: IntCounterVec,
    /// Messages in the outbox not yet sent nor given up (as of the sender's last pass).
    pub mail_outbox_depth: IntGauge,
    /// Second factors and passkey sign-ins checked, by `method` (`TOTP`,
    /// `RECOVERY_CODE`, `PASSKEY` as a second step, `PASSKEY_LOGIN` without
    /// a password) and `result` (`success`, `failure`).
    pub mfa: IntCounterVec,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("warden".into()), None)?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let operation_seconds = HistogramVec::new(
            HistogramOpts::new(
                "graphql_operation_seconds",
                "Seconds per GraphQL root field.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation"],
        )?;
        registry.register(Box::new(operation_seconds.clone()))?;
        let connections_open = IntGauge::new("connections_open", "Connections open now.")?;
        registry.register(Box::new(connections_open.clone()))?;
        let mail_outbox_depth = IntGauge::new(
            "mail_outbox_depth",
            "Outbound messages waiting to be sent (as of the sender's last pass).",
        )?;
        registry.register(Box::new(mail_outbox_depth.clone()))?;
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "1 when the dependency answered its last check, else 0.",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(dependency_up.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "The running build; always 1."),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            operations: counter_vec(
                "graphql_operations_total",
                "GraphQL root fields executed.",
                &["operation", "outcome"],
            )?,
            operation_seconds,
            logins: counter_vec("logins_total", "Login attempts by outcome.", &["outcome"])?,
            registrations: counter("registrations_total", "Accounts created.")?,
            refreshes: counter_vec(
                "refreshes_total",
                "Refresh tokens rotated or retried.",
                &["outcome"],
            )?,
            reuse_detections: counter(
                "refresh_token_reuse_detected_total",
                "Replays of spent refresh tokens caught.",
            )?,
            sessions_revoked: counter_vec(
                "sessions_revoked_total",
                "Sessions ended, by reason.",
                &["reason"],
            )?,
            lockouts: counter(
                "lockouts_total",
                "Clients locked out of an email after too many failed logins.",
            )?,
            lockout_email_locks: counter(
                "lockout_email_locks_total",
                "Emails closed to all but trusted devices after failures from many clients.",
            )?,
            rate_limited: counter_vec(
                "rate_limited_total",
                "Requests refused by a rate limit.",
                &["rule"],
            )?,
            limiter_fallbacks: counter(
                "limiter_fallbacks_total",
                "Checks answered in memory because the shared limiter failed.",
            )?,
            cleanup_removed: counter_vec(
                "cleanup_removed_total",
                "Rows removed by cleanup.",
                &["kind"],
            )?,
            connections_open,
            connections_refused: counter_vec(
                "connections_refused_total",
                "Connections closed at accept because a connection cap was reached.",
                &["reason"],
            )?,
            request_heads_too_large: counter(
                "request_heads_too_large_total",
                "Connections answered 431 because the request head outgrew the cap.",
            )?,
            password_breach_checks: counter_vec(
                "password_breach_checks_total",
                "Breached-password checks by outcome; unavailable means accepted unchecked.",
                &["outcome"],
            )?,
            http_responses: counter_vec(
                "http_responses_total",
                "HTTP responses by status code.",
                &["status"],
            )?,
            dependency_up,
            mail_sent: counter_vec(
                "mail_sent_total",
                "Outbound mail delivery attempts by kind and result (sent, retry, failed).",
                &["kind", "result"],
            )?,
            mail_outbox_depth,
            mfa: counter_vec(
                "mfa_total",
                "Second factors and passkey sign-ins checked, by method (TOTP, RECOVERY_CODE, PASSKEY, PASSKEY_LOGIN) and result (success, failure).",
                &["method", "result"],
            )?,
            registry,
            process,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        if let Err(err) = encoder.encode(&families, &mut buffer) {
            tracing::warn!(error = %err, "could not encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_text_format() {
        let metrics = Metrics::new().expect("registry");
        metrics.logins.with_label_values(&["success"]).inc();
        metrics
            .rate_limited
            .with_label_values(&["login_ip"])
            .inc_by(2);
        let text = metrics.render();
        assert!(
            text.contains("warden_logins_total{outcome=\"success\"} 1"),
            "{text}"
        );
        assert!(text.contains("warden_rate_limited_total{rule=\"login_ip\"} 2"));
        assert!(text.contains("# TYPE warden_registrations_total counter"));
    }

    #[test]
    fn build_info_and_process_series_are_exported() {
        let metrics = Metrics::new().expect("registry");
        let text = metrics.render();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("warden_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for series in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(series), "{series} missing: {text}");
        }
    }

    #[test]
    fn two_servers_count_separately() {
        let a = Metrics::new().expect("registry");
        let b = Metrics::new().expect("registry");
        a.registrations.inc();
        assert_eq!(a.registrations.get(), 1);
        assert_eq!(b.registrations.get(), 0);
    }
}
