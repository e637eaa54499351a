//! Prometheus metrics (prometheus-client), served on `GET /metrics`.

use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::handles::PoolStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DependencyLabels {
    pub dependency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    pub dependency: String,
    /// What it is (`postgres`, `redis`, `http`, `amqp`...), as `/ready`'s
    /// `backend`: a `WAIT_FOR` entry's scheme.
    pub backend: String,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub dependency: String,
    /// `host:port` of the server a dependency is connected to.
    pub server: String,
    /// `primary`, `standby`, or empty when unknown.
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `in_use` or `idle`.
    pub state: &'static str,
}

/// Reads the application's pool figures when `/metrics` is scraped.
type PoolSource = Box<dyn Fn() -> PoolStatus + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub dependency_up: Family<DependencyLabels, Gauge>,
    /// 1 for each dependency, labelled with its backend.
    pub dependency_info: Family<InfoLabels, Gauge>,
    pub connect_attempts: Family<AttemptLabels, Counter>,
    pub state_changes: Family<DependencyLabels, Counter>,
    pub startup_duration: Gauge<f64, AtomicU64>,
    pub http_requests: Family<RequestLabels, Counter>,
    /// 1 for the server each dependency with several servers is connected
    /// to now (one series per dependency).
    pub server_info: Family<ServerLabels, Gauge>,
    db_pool_connections: Family<PoolLabels, Gauge>,
    db_pool_waiting: Gauge,
    db_pool_max: Gauge,
    pool_source: RwLock<Option<PoolSource>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let dependency_up = Family::<DependencyLabels, Gauge>::default();
        let dependency_info = Family::<InfoLabels, Gauge>::default();
        let connect_attempts = Family::<AttemptLabels, Counter>::default();
        let state_changes = Family::<DependencyLabels, Counter>::default();
        let startup_duration = Gauge::<f64, AtomicU64>::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        let db_pool_connections = Family::<PoolLabels, Gauge>::default();
        let server_info = Family::<ServerLabels, Gauge>::default();
        let db_pool_waiting = Gauge::default();
        let db_pool_max = Gauge::default();
        registry.register(
            "readygate_dependency_up",
            "Whether the dependency is up (1) or not (0)",
            dependency_up.clone(),
        );
        registry.register(
            "readygate_dependency_info",
            "Each dependency and its backend (1)",
            dependency_info.clone(),
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
        registry.register(
            "readygate_dependency_server_info",
            "The server a dependency with several servers is connected to, and its role (1)",
            server_info.clone(),
        );
        registry.register(
            "readygate_db_pool_connections",
            "Connections of the application's database pool, by state (in_use, idle)",
            db_pool_connections.clone(),
        );
        registry.register(
            "readygate_db_pool_waiting",
            "Application requests waiting for a pooled database connection",
            db_pool_waiting.clone(),
        );
        registry.register(
            "readygate_db_pool_max_connections",
            "Size limit of the application's database pool (DB_POOL_SIZE)",
            db_pool_max.clone(),
        );
        registry.register(
            "readygate_secret_reloads",
            "Changes of a secret or certificate file, by variable and outcome (changed: taken; rejected: cannot be used, the last good value kept)",
            crate::secrets::RELOADS.clone(),
        );
        Metrics {
            registry,
            dependency_up,
            dependency_info,
            connect_attempts,
            state_changes,
            startup_duration,
            http_requests,
            server_info,
            db_pool_connections,
            db_pool_waiting,
            db_pool_max,
            pool_source: RwLock::new(None),
        }
    }
}

impl Metrics {
    /// Read the pool figures from `source` at every scrape from now on.
    pub fn watch_pool(&self, source: impl Fn() -> PoolStatus + Send + Sync + 'static) {
        if let Ok(mut slot) = self.pool_source.write() {
            *slot = Some(Box::new(source));
        }
    }

    fn refresh_pool(&self) {
        let Ok(slot) = self.pool_source.read() else {
            return;
        };
        let Some(source) = slot.as_ref() else {
            return;
        };
        let status = source();
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (state, n) in [("in_use", status.in_use), ("idle", status.idle)] {
            self.db_pool_connections
                .get_or_create(&PoolLabels { state })
                .set(gauge(n));
        }
        self.db_pool_waiting.set(gauge(status.waiting));
        self.db_pool_max.set(gauge(status.max));
    }

    /// The OpenMetrics text exposition (which Prometheus reads).
    pub fn encode(&self) -> String {
        self.refresh_pool();
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
