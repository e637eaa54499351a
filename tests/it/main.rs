#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The single integration-test crate of `readygate`.
//!
//! Every integration test lives in a module of this crate (one test binary,
//! one link step); `support` holds the helpers they share.

mod cache;
mod classification;
mod config_errors;
mod consistency;
mod dependencies;
mod docs;
mod embedding;
mod exec;
mod ha_postgres;
mod ha_redis;
mod lifecycle;
mod metrics_exposition;
mod mysql;
mod probe;
mod protocol_waits;
mod readiness;
mod reliability;
mod retry_policy;
mod rotation;
mod runtime;
mod secrets;
mod startup;
mod support;
mod support_smoke;
mod tls;
