//! [`AppError`] → the GraphQL error a client receives: the message,
//! `extensions.code`, and where they apply `field`, `reason`, `retryAfter`
//! or `requestId`.
//!
//! This is the one place an error crosses to the client, so it is also
//! where internal and unavailable errors are logged, with their whole cause
//! chain and the request id. [`AppError`] itself knows nothing of GraphQL.

use async_graphql::ErrorExtensions;

use crate::error::{AppError, Chain};

/// The GraphQL error a client receives for `err`. Internal and unavailable
/// errors are logged here with their whole cause chain: this is the one
/// place.
pub fn into_graphql(err: AppError, request_id: &str) -> async_graphql::Error {
    match &err {
        AppError::Internal(source) => {
            tracing::error!(request_id, error = %Chain(source.as_ref()), "internal error");
        }
        // At most one line a second: an outage or a flood must not turn
        // into a flood of identical log lines.
        AppError::ServiceUnavailable(source) if unavailable_log_allowed() => {
            tracing::warn!(request_id, error = %Chain(source.as_ref()), "service unavailable (further ones this second not logged)");
        }
        _ => {}
    }
    let request_id = request_id.to_owned();
    err.extend_with(|err, ext| match err {
        AppError::BadUserInput { field, .. } => ext.set("field", *field),
        AppError::Unauthenticated(reason) => ext.set("reason", reason.as_str()),
        AppError::Internal(_) => ext.set("requestId", request_id.clone()),
        AppError::MfaRequired { mfa_token, methods } => {
            use secrecy::ExposeSecret;
            ext.set("mfaToken", mfa_token.expose_secret());
            ext.set("methods", methods.clone());
        }
        _ => {
            if let Some(secs) = err.retry_after() {
                ext.set("retryAfter", secs);
            }
        }
    })
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string())
            .extend_with(|_, ext| ext.set("code", self.code()))
    }
}

/// True at most once per second, across threads.
fn unavailable_log_allowed() -> bool {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);
    crate::telemetry::once_a_second(&LAST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::UnauthReason;

    fn ext(err: &async_graphql::Error, key: &str) -> Option<String> {
        err.extensions
            .as_ref()
            .and_then(|e| e.get(key))
            .map(|v| v.to_string())
    }

    #[test]
    fn internal_errors_hide_their_cause_and_carry_the_request_id() {
        let err = into_graphql(
            AppError::internal("UNIQUE constraint failed: users.email"),
            "req-1",
        );
        assert_eq!(err.message, "internal error");
        assert_eq!(ext(&err, "code").as_deref(), Some("\"INTERNAL\""));
        assert_eq!(ext(&err, "requestId").as_deref(), Some("\"req-1\""));
    }

    #[test]
    fn lock_and_limit_errors_carry_retry_after() {
        let err = into_graphql(AppError::AccountLocked { retry_after: 42 }, "r");
        assert_eq!(ext(&err, "retryAfter").as_deref(), Some("42"));
        assert_eq!(ext(&err, "code").as_deref(), Some("\"ACCOUNT_LOCKED\""));
    }

    #[test]
    fn unauthenticated_carries_its_reason() {
        let err = into_graphql(AppError::Unauthenticated(UnauthReason::Expired), "r");
        assert_eq!(ext(&err, "reason").as_deref(), Some("\"EXPIRED\""));
    }
}
