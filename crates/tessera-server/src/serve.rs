//! The accept loop: HTTP/1.1 connections with the limits `axum::serve` does
//! not set.
//!
//! - A request head must arrive within `header_timeout` of the connection
//!   becoming ready for one: a new connection that sends nothing, headers
//!   trickled a line at a time, and an idle keep-alive connection are all
//!   closed when it passes (hyper's `header_read_timeout`, which needs the
//!   timer set here).
//! - At most `max_connections` connections are open; beyond that, new ones
//!   wait in the kernel's accept queue instead of exhausting file descriptors.
//! - Accept errors (`EMFILE` above all) pause the loop briefly instead of
//!   spinning.
//! - On shutdown the listener closes, idle connections close at once, and
//!   requests in flight finish.
//!
//! The body and the handler are bounded separately, by the request deadline
//! in `http::request_id`.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Per-connection failures (reset before accept) are routine;
                    // descriptor exhaustion needs a pause, not a busy loop.
                    tracing::warn!(error = %err, "accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Raises the soft limit on open files to the hard limit and returns how
/// many connections fit in it, keeping some descriptors for the database,
/// logs and the blocking pool.
pub fn connection_capacity(wanted: usize) -> usize {
    const RESERVED: u64 = 64;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = usize::try_from(limit.saturating_sub(RESERVED))
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted > fits {
        tracing::warn!(
            wanted,
            fits,
            "TESSERA_MAX_CONNECTIONS is above what the open-files limit allows; using the lower value (raise `ulimit -n`)"
        );
    }
    wanted.min(fits)
}
