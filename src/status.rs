//! The live state of every dependency, published by the dependency actors
//! and read by `/ready` and `/metrics` without any network I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use actix_web::web::Bytes;
use serde::Serialize;

use crate::connector::ServerInfo;
use crate::metrics::{AttemptLabels, DependencyLabels, Metrics, ServerLabels};
use crate::redact::scrub;

/// A supervised dependency, by name: `database`, `cache`, or a name of
/// `WAIT_FOR` or of the application's own ([`crate::Gateway::dependency`]).
/// Cheap to clone; ordered by name, as `/ready` lists them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dependency(Arc<str>);

impl Dependency {
    pub fn database() -> Self {
        Dependency::named("database")
    }

    pub fn cache() -> Self {
        Dependency::named("cache")
    }

    pub fn named(name: &str) -> Self {
        Dependency(Arc::from(name))
    }

    /// The name used in `/ready`, metrics labels and JSON log fields.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Start-up attempts are under way; never been up.
    Connecting,
    Up,
    /// Was up, lost, being reconnected.
    Down,
}

/// One dependency as `/ready` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct DependencyStatus {
    pub backend: &'static str,
    /// Whether start-up and `/ready` wait for it; shown only when `false`
    /// (an optional dependency: down, it leaves `/ready` at 200).
    #[serde(skip_serializing_if = "is_true")]
    pub required: bool,
    pub state: State,
    /// When the dependency entered its state (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub since: SystemTime,
    pub consecutive_failures: u32,
    /// Whether the connection is encrypted (TLS); absent for dependencies
    /// without a network connection (SQLite, the memory cache) and before
    /// the first connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Which of several servers it is connected to (`host:port`), and that
    /// server's role (`primary`, `standby`) when known; absent for a
    /// dependency with one server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The cause chain (no password) of the last failure while `connecting`
    /// or `down`; `null` while `up`.
    pub last_error: Option<String>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// The body of `/ready`.
#[derive(Clone, Debug, Serialize)]
pub struct ReadyReport {
    /// `ready`, `not_ready`, or `draining` once a stop signal came.
    pub status: &'static str,
    pub dependencies: BTreeMap<String, DependencyStatus>,
    /// `readygate exec`'s program: ready only while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramStatus>,
}

/// The program `readygate exec` runs, on `/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramStatus {
    /// The program as given (without its arguments).
    pub command: String,
    /// Its pid once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub running: bool,
}

impl ReadyReport {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// The state map and the `/ready` answer rendered from it. The answer is
/// rendered when the state changes, not per request: probes then cost a
/// read lock and a reference count.
#[derive(Default)]
struct Published {
    states: BTreeMap<Dependency, DependencyStatus>,
    /// A stop signal came: not ready, whatever the dependencies.
    draining: bool,
    program: Option<ProgramStatus>,
    ready: bool,
    body: Bytes,
}

impl Published {
    fn report(&self) -> ReadyReport {
        let dependencies: BTreeMap<_, _> = self
            .states
            .iter()
            .map(|(d, s)| (d.name().to_owned(), s.clone()))
            .collect();
        let up = dependencies
            .values()
            .all(|s| s.state == State::Up || !s.required)
            && self.program.as_ref().is_none_or(|p| p.running);
        ReadyReport {
            status: match (self.draining, up) {
                (true, _) => "draining",
                (false, true) => "ready",
                (false, false) => "not_ready",
            },
            dependencies,
            program: self.program.clone(),
        }
    }

    fn render(&mut self) {
        let report = self.report();
        self.ready = report.is_ready();
        self.body = serde_json::to_vec(&report)
            .map(Bytes::from)
            .unwrap_or_default();
    }
}

/// Shared, cheap to clone: the published state plus the metrics it drives.
#[derive(Clone, Default)]
pub struct Health {
    published: Arc<RwLock<Published>>,
    metrics: Arc<Metrics>,
}

impl Health {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn update(&self, dependency: &Dependency, f: impl FnOnce(&mut DependencyStatus)) {
        if let Ok(mut published) = self.published.write()
            && let Some(status) = published.states.get_mut(dependency)
        {
            f(status);
            published.render();
        }
    }

    fn labels(dependency: &Dependency) -> DependencyLabels {
        DependencyLabels {
            dependency: dependency.name().to_owned(),
        }
    }

    /// A new dependency, `connecting`; `required`: whether `/ready` waits
    /// for it.
    pub fn register(&self, dependency: &Dependency, backend: &'static str, required: bool) {
        if let Ok(mut published) = self.published.write() {
            published.states.insert(
                dependency.clone(),
                DependencyStatus {
                    backend,
                    required,
                    state: State::Connecting,
                    since: SystemTime::now(),
                    consecutive_failures: 0,
                    tls: None,
                    server: None,
                    role: None,
                    last_error: None,
                },
            );
            published.render();
        }
        self.metrics
            .dependency_up
            .get_or_create(&Self::labels(dependency))
            .set(0);
        self.metrics
            .dependency_info
            .get_or_create(&crate::metrics::InfoLabels {
                dependency: dependency.name().to_owned(),
                backend: backend.to_owned(),
            })
            .set(1);
    }

    /// Move to `state`; counts a change only when the state really changes.
    pub fn set_state(&self, dependency: &Dependency, state: State) {
        let mut changed = false;
        self.update(dependency, |s| {
            if s.state != state {
                s.state = state;
                s.since = SystemTime::now();
                changed = true;
            }
            if state == State::Up {
                s.consecutive_failures = 0;
                s.last_error = None;
            }
        });
        let labels = Self::labels(dependency);
        self.metrics
            .dependency_up
            .get_or_create(&labels)
            .set(i64::from(state == State::Up));
        if changed {
            self.metrics.state_changes.get_or_create(&labels).inc();
        }
    }

    /// A failure: an attempt when `attempt` (counted in the metrics), or a
    /// runtime check of a dependency that was up.
    pub fn failed(&self, dependency: &Dependency, cause: &str, attempt: bool) {
        let cause = scrub(cause).into_owned();
        self.update(dependency, |s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(cause);
        });
        if attempt {
            self.count_attempt(dependency, "failure");
        }
    }

    /// Whether `dependency`'s connection is encrypted, as its connector
    /// last saw it; the answer is rendered again only when it changes.
    pub fn set_encrypted(&self, dependency: &Dependency, tls: Option<bool>) {
        if tls.is_none() {
            return;
        }
        if let Ok(mut published) = self.published.write()
            && let Some(status) = published.states.get_mut(dependency)
            && status.tls != tls
        {
            status.tls = tls;
            published.render();
        }
    }

    /// Which server `dependency` is connected to, as its connector last saw
    /// it; the answer is rendered again, and the metric's series replaced,
    /// only when it changes.
    pub fn set_server(&self, dependency: &Dependency, info: Option<ServerInfo>) {
        let Some(info) = info else {
            return;
        };
        let mut old = None;
        if let Ok(mut published) = self.published.write()
            && let Some(status) = published.states.get_mut(dependency)
            && (status.server.as_deref(), status.role) != (Some(info.server.as_str()), info.role)
        {
            old = Some((status.server.replace(info.server.clone()), status.role));
            status.role = info.role;
            published.render();
        }
        let Some((old_server, old_role)) = old else {
            return;
        };
        let labels = |server: String, role: Option<&str>| ServerLabels {
            dependency: dependency.name().to_owned(),
            server,
            role: role.unwrap_or_default().to_owned(),
        };
        if let Some(server) = old_server {
            self.metrics.server_info.remove(&labels(server, old_role));
        }
        self.metrics
            .server_info
            .get_or_create(&labels(info.server, info.role))
            .set(1);
    }

    /// A stop signal came: `/ready` answers 503 (`"status":"draining"`)
    /// from now on.
    pub fn set_draining(&self) {
        if let Ok(mut published) = self.published.write() {
            published.draining = true;
            published.render();
        }
    }

    /// `readygate exec`'s program: what `/ready` says of it.
    pub fn set_program(&self, program: ProgramStatus) {
        if let Ok(mut published) = self.published.write() {
            published.program = Some(program);
            published.render();
        }
    }

    pub fn count_attempt(&self, dependency: &Dependency, outcome: &str) {
        self.metrics
            .connect_attempts
            .get_or_create(&AttemptLabels {
                dependency: dependency.name().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Whether the dependency named `name` is up now.
    pub fn is_up(&self, name: &str) -> bool {
        self.published.read().is_ok_and(|p| {
            p.states
                .get(&Dependency::named(name))
                .is_some_and(|s| s.state == State::Up)
        })
    }

    pub fn report(&self) -> ReadyReport {
        self.published
            .read()
            .map(|p| p.report())
            .unwrap_or_else(|_| ReadyReport {
                status: "not_ready",
                dependencies: BTreeMap::new(),
                program: None,
            })
    }

    /// The `/ready` answer as rendered at the last change: whether every
    /// dependency is up, and the JSON body.
    pub fn ready_answer(&self) -> (bool, Bytes) {
        self.published
            .read()
            .map(|p| (p.ready, p.body.clone()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_dependency_is_up() {
        let h = Health::default();
        h.register(&Dependency::database(), "postgres", true);
        h.register(&Dependency::cache(), "redis", true);
        assert!(!h.report().is_ready());
        h.set_state(&Dependency::database(), State::Up);
        assert!(!h.report().is_ready());
        h.set_state(&Dependency::cache(), State::Up);
        assert!(h.report().is_ready());
        h.failed(&Dependency::cache(), "connection refused", false);
        h.set_state(&Dependency::cache(), State::Down);
        let r = h.report();
        assert!(!r.is_ready());
        assert_eq!(r.dependencies["cache"].consecutive_failures, 1);
        assert_eq!(
            r.dependencies["cache"].last_error.as_deref(),
            Some("connection refused")
        );
        let (ready, body) = h.ready_answer();
        assert!(!ready);
        h.set_state(&Dependency::cache(), State::Up);
        assert!(h.ready_answer().0);
        h.set_draining();
        let (ready, body_draining) = h.ready_answer();
        assert!(!ready, "draining is never ready");
        let draining: serde_json::Value = serde_json::from_slice(&body_draining).unwrap();
        assert_eq!(draining["status"], "draining");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["dependencies"]["cache"]["state"], "down");
        assert_eq!(body["dependencies"]["cache"]["consecutive_failures"], 1);
    }

    #[test]
    fn an_optional_dependency_down_leaves_ready_at_200_and_says_so() {
        let h = Health::default();
        h.register(&Dependency::database(), "sqlite", true);
        h.register(&Dependency::cache(), "redis", false);
        h.set_state(&Dependency::database(), State::Up);
        h.set_state(&Dependency::cache(), State::Down);
        let (ready, body) = h.ready_answer();
        assert!(ready, "an optional dependency does not hold /ready");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["dependencies"]["cache"]["required"], false);
        assert!(
            body["dependencies"]["database"].get("required").is_none(),
            "required is shown only when false: {body}"
        );
        assert!(h.is_up("database"));
        assert!(!h.is_up("cache"));
        h.set_state(&Dependency::database(), State::Down);
        assert!(!h.ready_answer().0);
    }

    #[test]
    fn metrics_follow_the_state() {
        let h = Health::default();
        h.register(&Dependency::database(), "postgres", true);
        h.failed(&Dependency::database(), "refused", true);
        h.set_state(&Dependency::database(), State::Up);
        h.set_state(&Dependency::database(), State::Up);
        let text = h.metrics().encode();
        assert!(
            text.contains(r#"readygate_dependency_up{dependency="database"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"readygate_dependency_state_changes_total{dependency="database"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"readygate_dependency_connect_attempts_total{dependency="database",outcome="failure"} 1"#),
            "{text}"
        );
    }
}
