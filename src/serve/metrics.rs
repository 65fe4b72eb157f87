//! The server's Prometheus metrics (`GET /metrics`, Prometheus's text format): requests and
//! errors by route and status, latency, batch sizes, queue depth, documents and tokens served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub errors: Family<RouteStatus, Counter>,
    pub latency: Family<Route, Histogram>,
    pub batch_documents: Family<ModelLabel, Histogram>,
    pub queue_depth: Family<ModelLabel, Gauge>,
    pub documents: Family<ModelLabel, Counter>,
    pub tokens: Family<ModelLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("awd");
        let requests = Family::<RouteStatus, Counter>::default();
        let errors = Family::<RouteStatus, Counter>::default();
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let batch_documents = Family::<ModelLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 10))
        });
        let queue_depth = Family::<ModelLabel, Gauge>::default();
        let documents = Family::<ModelLabel, Counter>::default();
        let tokens = Family::<ModelLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Requests answered with a 4xx or 5xx status",
            errors.clone(),
        );
        registry.register(
            "request_seconds",
            "Time from request to answer",
            latency.clone(),
        );
        registry.register(
            "batch_documents",
            "Documents run together in one batch",
            batch_documents.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a model",
            queue_depth.clone(),
        );
        registry.register(
            "documents",
            "Documents classified, scored or generated from",
            documents.clone(),
        );
        registry.register("tokens", "Tokens read or generated", tokens.clone());
        Self {
            registry,
            requests,
            errors,
            latency,
            batch_documents,
            queue_depth,
            documents,
            tokens,
        }
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let key = RouteStatus {
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&key).inc();
        if status >= 400 {
            self.errors.get_or_create(&key).inc();
        }
        self.latency
            .get_or_create(&Route {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
