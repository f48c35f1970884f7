//! The Ficha replica app: client records over the replica store, the sync driver, the local
//! HTTP API, the command line and the demo.

pub mod app;
pub mod cli;
pub mod cli_cases;
pub mod cli_records;
pub mod demo;
pub mod duplicates;
pub mod files;
pub mod http;
pub mod import;
pub mod listing;
pub mod mail;
pub mod progress;
pub mod server;
pub mod sync;
pub mod trash;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
