//! # strata-server
//!
//! The `strata` binary and the network APIs over [`strata_engine`]: a Qdrant-compatible HTTP
//! API (axum), JWT authentication, Prometheus metrics, layered configuration. Handlers parse,
//! authorize, call the engine and map errors; no storage logic lives here.
//!
//! # Layout
//! - `config`: the typed configuration and its layering (defaults < TOML < env < flags).
//! - `cli`, `run`: command-line parsing and what each command does.
//! - `auth`: JWT verification, claims, rights, minting.
//! - `http`: router, middleware, handlers, request parsing.
//! - `grpc`: the `strata.v1` services, health and reflection.
//! - `error`: the API error and the one kind → status mapping.
//! - `metrics`: the Prometheus recorder and `/metrics`.
//! - `openapi`: the OpenAPI document.
//! - `server`: listeners and graceful shutdown.

// The OpenAPI document (openapi.rs) is a few large json! literals.
#![recursion_limit = "256"]

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod grpc;
mod grpc_actors;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod qdrant_grpc;
pub mod run;
pub mod server;
mod tiers;
