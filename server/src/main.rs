//! The `strata` binary: a thin shell over `strata_server`.

use clap::Parser;
use strata_server::cli::{Cli, Command};

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
