//! `projects-example`: the project service, beside a running tessera.
//!
//! Environment: `TESSERA_ISSUER` (required), `TESSERA_JWKS_URL` or
//! `JWT_SECRET` (one of them), `TESSERA_AUDIENCE` (default `tessera`),
//! `TESSERA_TENANT` (optional tenant uuid), `PROJECTS_BIND` (default
//! `127.0.0.1:3000`), `PROJECTS_LOG` (a tracing filter, default `info`).
//!
//! Exit codes: 0 after a clean shutdown (Ctrl-C, SIGTERM), 2 for bad
//! configuration, 1 when tessera's key set cannot be fetched or the
//! address cannot be bound.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use projects_example::config::Config;
use tessera_verify::BuildError;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env("PROJECTS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("projects-example: {err}");
            return ExitCode::from(2);
        }
    };
    let verifier = match config.verifier_builder().build().await {
        Ok(verifier) => verifier,
        Err(err) => {
            eprintln!("projects-example: {err}");
            return ExitCode::from(build_exit_code(&err));
        }
    };
    tracing::info!(?verifier, "verifier ready");

    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "projects-example: PROJECTS_BIND: cannot listen on {}: {err}",
                config.bind
            );
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "projects-example listening"),
        Err(err) => tracing::warn!(error = %err, "listening, on an address the system does not report"),
    }
    let served = axum::serve(listener, projects_example::router(verifier))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("projects-example: serving failed: {err}");
            ExitCode::from(1)
        }
    }
}

/// 1 when tessera could not be reached or answered badly (maybe it is not
/// up yet: retry), 2 when the configuration itself is wrong.
fn build_exit_code(err: &BuildError) -> u8 {
    match err {
        BuildError::Fetch { .. } | BuildError::HttpClient(_) => 1,
        _ => 2,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
