//! The docs' Rust snippets, compiled by `cargo test --doc`: each markdown file is the documentation of an empty item, so every ```rust block in it is a doctest (see docs/testing.md, "Docs that cannot drift").

#[doc = include_str!("../README.md")]
pub struct Readme;

#[doc = include_str!("../docs/architecture.md")]
pub struct Architecture;

#[doc = include_str!("../docs/configuration.md")]
pub struct Configuration;

#[doc = include_str!("../docs/dependencies.md")]
pub struct Dependencies;

#[doc = include_str!("../docs/embedding.md")]
pub struct Embedding;

#[doc = include_str!("../docs/failure-behaviour.md")]
pub struct FailureBehaviour;

#[doc = include_str!("../docs/logs-and-endpoints.md")]
pub struct LogsAndEndpoints;

#[doc = include_str!("../docs/operations.md")]
pub struct Operations;

#[doc = include_str!("../docs/retry.md")]
pub struct Retry;

#[doc = include_str!("../docs/testing.md")]
pub struct Testing;

#[doc = include_str!("../docs/tls.md")]
pub struct Tls;
