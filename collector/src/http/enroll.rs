//! `POST /api/v1/enroll`: an enroll token buys a host its own token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use lenscap_events::api::{EnrollRequest, EnrollResponse};

use super::AppState;
use crate::auth::{Caller, new_token, token_hash};
use crate::error::ApiError;
use crate::store::Role;
use crate::timefmt::now_ms;

/// Longest hostname, identity or version accepted (DNS names stop at 253).
const MAX_FIELD: usize = 255;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enroll", post(enroll))
        .layer(DefaultBodyLimit::max(64 * 1024))
}

fn check_field(name: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > MAX_FIELD || v.chars().any(char::is_control) => {
            Err(ApiError::BadRequest(format!(
                "{name}: at most {MAX_FIELD} bytes and no control characters"
            )))
        }
        _ => Ok(()),
    }
}

async fn enroll(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    caller.require(&[Role::Enroll], "enroll hosts")?;
    let Json(req) = body?;
    if req.host.hostname.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "host.hostname must not be empty".into(),
        ));
    }
    check_field("host.hostname", Some(&req.host.hostname))?;
    check_field("host.hardware_uuid", req.host.hardware_uuid.as_deref())?;
    check_field("host.serial", req.host.serial.as_deref())?;
    check_field("host.machine_id", req.host.machine_id.as_deref())?;
    check_field("agent_version", Some(&req.agent_version))?;
    let token = new_token(Role::Host).map_err(|e| {
        ApiError::Internal(crate::store::StoreError::Corrupt {
            what: "making a host token",
            detail: format!("no randomness: {e}"),
        })
    })?;
    let identity = req.host.identity();
    let host_id = state
        .store
        .enroll(
            &identity,
            &req.host,
            &req.agent_version,
            &token_hash(&token),
            now_ms(),
        )
        .await?;
    tracing::info!(host_id, hostname = %req.host.hostname, identity = identity.field, "host enrolled");
    Ok(Json(EnrollResponse { host_id, token }))
}
