//! The `strata` binary: a thin shell over `strata_server`.

use clap::Parser;
use strata_server::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Serve { common, wal_ack } => {
            strata_server::cli_init(common);
            strata_server::serve(common, wal_ack)
        }
        Command::Check { common } => {
            strata_server::cli_init(common);
            strata_server::check(common)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
