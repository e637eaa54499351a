//! Prometheus metrics (prometheus-client), served on `GET /metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub dependency: String,
    /// `success` or `failure`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern (`/ready`), never the raw path, so that
    /// unknown paths cannot grow the series without bound.
    pub path: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    pub connect_attempts: Family<AttemptLabels, Counter>,
    pub state_changes: Family<DependencyLabels, Counter>,
    pub startup_duration: Gauge<f64, AtomicU64>,
    pub http_requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let dependency_up = Family::<DependencyLabels, Gauge>::default();
        let connect_attempts = Family::<AttemptLabels, Counter>::default();
        let state_changes = Family::<DependencyLabels, Counter>::default();
        let startup_duration = Gauge::<f64, AtomicU64>::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "readygate_dependency_up",
            "Whether the dependency is up (1) or not (0)",
            dependency_up.clone(),
        );
        registry.register(
            "readygate_dependency_connect_attempts",
            "Connection attempts (start-up and reconnection) by outcome",
            connect_attempts.clone(),
        );
        registry.register(
            "readygate_dependency_state_changes",
            "Changes of a dependency's state (connecting, up, down)",
            state_changes.clone(),
        );
        registry.register(
            "readygate_startup_duration_seconds",
            "Time from process start until every dependency was ready",
            startup_duration.clone(),
        );
        registry.register(
            "readygate_http_requests",
            "HTTP requests served, by route and status",
            http_requests.clone(),
        );
        Metrics {
            registry,
            dependency_up,
            connect_attempts,
            state_changes,
            startup_duration,
            http_requests,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The counter of `readygate_http_requests_total{path,status}`, created
    /// at its first use. Resolve it once and keep it: counting is then one
    /// atomic add, with no label hashing or lock.
    pub fn request_counter(&self, path: &str, status: u16) -> Counter {
        self.http_requests.get_or_create_owned(&RequestLabels {
            path: path.to_owned(),
            status,
        })
    }
}
