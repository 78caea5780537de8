//! Counts and times every GraphQL root field for `/metrics`.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    async_trait,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
    ServerResult, Value,
};

use crate::metrics::Metrics;

/// Records `warden_graphql_operations_total` and `warden_graphql_operation_seconds`.
pub struct Observe(pub Arc<Metrics>);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObserveExtension(self.0.clone()))
    }
}

struct ObserveExtension(Arc<Metrics>);

#[async_trait::async_trait]
impl Extension for ObserveExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Only root fields are operations; nested fields would only add noise.
        if info.path_node.parent.is_some() {
            return next.run(ctx, info).await;
        }
        // The field name comes from the schema (validation has passed), so
        // the label set is bounded.
        let operation = info.name.to_owned();
        let started = Instant::now();
        let result = next.run(ctx, info).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(err) => err
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(|c| match c {
                    Value::String(code) => Some(code.to_ascii_lowercase()),
                    _ => None,
                })
                .unwrap_or_else(|| "error".to_owned()),
        };
        self.0
            .operation_seconds
            .with_label_values(&[operation.as_str()])
            .observe(started.elapsed().as_secs_f64());
        self.0
            .operations
            .with_label_values(&[operation.as_str(), outcome.as_str()])
            .inc();
        result
    }
}
