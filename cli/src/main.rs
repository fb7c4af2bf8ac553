//! `cloudy-p2p`: the one binary of cloudy-p2p. `init` and `up` work on the
//! home directly; every other subcommand is a client of the running node's
//! local control API.

mod args;
mod commands;
mod output;
mod progress;

use clap::Parser;

/// The node runs on at most two worker threads unless TOKIO_WORKER_THREADS
/// says otherwise: a second thread lets transfers use a second core, more
/// would only add wake-ups on the small boxes nodes run on (see
/// ARCHITECTURE.md). Client commands keep tokio's default.
fn runtime(command: &args::Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if matches!(command, args::Command::Up { .. }) && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        b.worker_threads(cores.min(2));
    }
    b.enable_all().build()
}

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    let runtime = match runtime(&cli.command) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
