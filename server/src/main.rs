//! The `strata` binary: a thin shell over `strata_server`.

use clap::Parser;
use strata_server::cli::{Cli, Command};

/// mimalloc rather than glibc malloc: the request path allocates many small short-lived
/// buffers across threads, where glibc spent ~15 % of an actor request's CPU (profile in
/// docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve { settings, validate } => strata_server::run::serve(settings, *validate),
        Command::Token {
            settings,
            tenant,
            access,
            collections,
            ttl,
            sub,
        } => strata_server::run::token(settings, tenant, access, collections, ttl, sub.as_deref()),
        Command::Check { settings } => strata_server::run::check(settings),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
