//! HTTP endpoints: `/health` (liveness), `/ready` (readiness), `/metrics`,
//! and [`CountRequests`], the middleware that counts every answer.
//! None of them does network I/O: they read what the actors publish.
//!
//! Every request of the gateway and of the application routes goes through
//! here, so the hot path allocates nothing for a known route: constant
//! bodies and headers are static bytes, and each worker keeps the request
//! counters it has already resolved.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, Responder, get, web};
use prometheus_client::metrics::counter::Counter;
use rustc_hash::FxBuildHasher;

use crate::metrics::Metrics;
use crate::status::Health;

/// Registers the gateway's own endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(liveness).service(readiness).service(metrics);
}

/// `/health`'s body: what `json!({"status": "ok"})` serialises to.
const HEALTH_BODY: &[u8] = br#"{"status":"ok"}"#;

fn json() -> (actix_web::http::header::HeaderName, HeaderValue) {
    (CONTENT_TYPE, HeaderValue::from_static("application/json"))
}

/// Liveness: 200 whenever the process serves; never checks a dependency, so a
/// database outage cannot get healthy pods restarted.
#[get("/health")]
async fn liveness() -> HttpResponse {
    HttpResponse::Ok().insert_header(json()).body(HEALTH_BODY)
}

/// Readiness: 200 when every dependency is up, else 503; the body names each
/// dependency with its state.
#[get("/ready")]
async fn readiness(health: web::Data<Health>) -> HttpResponse {
    let (ready, body) = health.ready_answer();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).insert_header(json()).body(body)
}

#[get("/metrics")]
async fn metrics(health: web::Data<Health>) -> impl Responder {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(health.metrics().encode())
}

/// Counts every answer in `readygate_http_requests_total{path,status}`:
/// `path` is the pattern of the route that served the request; for a request
/// that no route served, the first pattern that matches its path (`POST
/// /health` is `/health`, status 404), else `unmatched`; an error that left
/// the application is `unmatched` with the error's status.
///
/// Wrapped around the whole `App`. actix-web builds the `App` once per
/// worker thread, so each worker gets its own `RouteCounters`: no lock and
/// no label hashing per request, one atomic add on an already-resolved
/// counter.
pub struct CountRequests {
    health: Health,
}

impl CountRequests {
    pub fn new(health: Health) -> Self {
        CountRequests { health }
    }
}

impl<S, B> Transform<S, ServiceRequest> for CountRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = CountRequestsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CountRequestsService {
            service,
            counters: Rc::new(RefCell::new(RouteCounters::new(self.health.clone()))),
        }))
    }
}

pub struct CountRequestsService<S> {
    service: S,
    counters: Rc<RefCell<RouteCounters>>,
}

impl<S, B> Service<ServiceRequest> for CountRequestsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: Unpin,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Counted<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Counted {
            inner: self.service.call(req),
            counters: Some(Rc::clone(&self.counters)),
        }
    }
}

/// The application's answer, counted when it is ready. (Unboxed: the App's
/// own future is already a box, and `Unpin`.)
pub struct Counted<F> {
    inner: F,
    counters: Option<Rc<RefCell<RouteCounters>>>,
}

impl<F, B> Future for Counted<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        if let Some(counters) = this.counters.take() {
            let mut counters = counters.borrow_mut();
            match &result {
                Ok(res) => counters.count(res.request(), res.status().as_u16()),
                Err(e) => counters.count_unmatched(e.as_response_error().status_code().as_u16()),
            }
        }
        Poll::Ready(result)
    }
}

/// The label of requests that no route pattern matches.
const UNMATCHED: &str = "unmatched";

/// How many request paths a worker remembers. Every remembered path matched
/// a route pattern, but one pattern with a variable segment matches
/// unboundedly many paths: when full, the memory starts over (the routes
/// themselves, a few per application, are kept).
const MAX_PATHS: usize = 256;

/// One worker's request counters, resolved once per route and status.
struct RouteCounters {
    health: Health,
    routes: Vec<Route>,
    /// Route pattern (or `unmatched`) → index in `routes`: one entry per
    /// route of the application at most, plus `unmatched`.
    by_pattern: HashMap<Box<str>, usize>,
    /// Request path → the method and route of the requests seen on it, for
    /// paths that matched a pattern; so a known route costs one hash of its
    /// path instead of `HttpRequest::match_pattern()` (a walk of the
    /// resource map and a `String`). Unknown paths are never stored. The
    /// router's answer for a path and method is the same for every request,
    /// unless an application tells routes with overlapping patterns apart
    /// by another guard (`Host`, a header): those would all be counted
    /// under the route of the first such request.
    /// FxHash (`rustc-hash`): a path hashes in a few instructions, where
    /// the standard SipHash took a tenth of the whole middleware. Not
    /// resistant to chosen collisions, which is harmless here: the map holds
    /// only paths that matched a route, at most [`MAX_PATHS`] of them.
    by_path: HashMap<Box<str>, Vec<(Method, usize)>, FxBuildHasher>,
}

/// One route pattern and its counters by status.
struct Route {
    pattern: Box<str>,
    statuses: Vec<(u16, Counter)>,
}

impl RouteCounters {
    fn new(health: Health) -> Self {
        RouteCounters {
            health,
            routes: Vec::new(),
            by_pattern: HashMap::new(),
            by_path: HashMap::default(),
        }
    }

    fn count(&mut self, req: &HttpRequest, status: u16) {
        let known = self
            .by_path
            .get(req.path())
            .and_then(|seen| seen.iter().find(|(m, _)| m == req.method()));
        let route = match known {
            Some(&(_, route)) => route,
            None => self.resolve(req),
        };
        self.inc(route, status);
    }

    fn count_unmatched(&mut self, status: u16) {
        let route = self.route(UNMATCHED);
        self.inc(route, status);
    }

    /// The route of a request whose path and method are not remembered yet:
    /// what actix-web's router says (the served route's pattern, else the
    /// first pattern matching the path).
    fn resolve(&mut self, req: &HttpRequest) -> usize {
        let Some(pattern) = req.match_pattern() else {
            return self.route(UNMATCHED);
        };
        let route = self.route(&pattern);
        if self.by_path.len() >= MAX_PATHS {
            self.by_path.clear();
        }
        self.by_path
            .entry(req.path().into())
            .or_default()
            .push((req.method().clone(), route));
        route
    }

    fn route(&mut self, pattern: &str) -> usize {
        if let Some(&route) = self.by_pattern.get(pattern) {
            return route;
        }
        self.routes.push(Route {
            pattern: pattern.into(),
            statuses: Vec::new(),
        });
        let route = self.routes.len() - 1;
        self.by_pattern.insert(pattern.into(), route);
        route
    }

    fn inc(&mut self, route: usize, status: u16) {
        let registry: &Metrics = self.health.metrics();
        let Some(route) = self.routes.get_mut(route) else {
            return;
        };
        match route.statuses.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                let counter = registry.request_counter(&route.pattern, status);
                counter.inc();
                route.statuses.push((status, counter));
            }
        }
    }
}
