//! Operational routes outside `/v2`: liveness and readiness for load balancers and Kubernetes.

use std::sync::Arc;

use bunker_db::SchemaStatus;
use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{handler, IntoResponse, Response};
use serde_json::json;

use crate::http::app::AppState;

/// `GET /health` (and `/status`): the process is up. Touches nothing else.
#[handler]
pub fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the database answers and its schema is the one this binary expects, or a newer
/// one it can serve on (during a rolling upgrade, the previous release's pods stay ready).
#[handler]
pub async fn ready(state: Data<&Arc<AppState>>) -> Response {
    let (code, message) = match state.db.schema_status().await {
        Ok(SchemaStatus::Ready | SchemaStatus::Newer { .. }) => {
            return Json(json!({"status": "ok"})).into_response()
        }
        Ok(status) => {
            tracing::warn!(?status, "not ready: schema is not current");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database schema is not current",
            )
        }
        Err(err) => {
            tracing::warn!(error = %err, "not ready: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unreachable",
            )
        }
    };
    Json(json!({"status": "error", "message": message}))
        .with_status(code)
        .into_response()
}
