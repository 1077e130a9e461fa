//! Liveness and readiness for orchestrators and load balancers.

use super::dto::HealthResponse;
use super::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthResponse)))]
async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// 200 when every backing store answers within a second (and, with the
/// revocation check on, this instance hears of revoked sessions), else 503.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, description = "`unavailable`", body = super::dto::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    for store in &state.health {
        match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check failed");
                return Err(ApiError::Unavailable {
                    message: "a backing store is unavailable",
                    retry_after: 1,
                });
            }
            Err(_) => {
                tracing::warn!("readiness check timed out");
                return Err(ApiError::Unavailable {
                    message: "a backing store is unavailable",
                    retry_after: 1,
                });
            }
        }
    }
    if let Some(revocations) = &state.revocations {
        if !revocations.is_current() {
            tracing::warn!("readiness check failed: the revocation feed is interrupted");
            return Err(ApiError::Unavailable {
                message: "this instance cannot hear of revoked sessions right now",
                retry_after: 1,
            });
        }
    }
    Ok(Json(HealthResponse { status: "ok" }))
}
