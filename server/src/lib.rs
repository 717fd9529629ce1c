//! # strata-server
//!
//! The `strata` binary: configuration, CLI, and (next) the HTTP and gRPC APIs over
//! [`strata_engine`]. Handlers parse, authorize, call the engine and map errors; no storage
//! logic lives here.
//!
//! # Layout
//! - `cli`: command-line parsing (`strata serve`, `strata check`).
//! - `run`: what each command does.

pub mod cli;
mod run;

pub use run::{check, init_logging as cli_init, serve};
