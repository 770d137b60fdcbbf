use std::process::ExitCode;

use clap::Parser;

/// mimalloc (see `demiurge::heap`: why, and the `heap-stats` count).
#[global_allocator]
static GLOBAL: demiurge::heap::Allocator = demiurge::heap::Allocator;

fn main() -> ExitCode {
    // One TLS crypto provider for the whole process (pingora, rustls, ACME all use ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = demiurge::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(demiurge::cli::run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
