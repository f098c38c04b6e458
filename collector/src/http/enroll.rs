//! `POST /api/v1/enroll`: an enroll token buys a host its own token —
//! for a new identity, or for a known one that proves it is the same
//! installation or that an admin approved (see `store/enrollment.rs`).
//! Other enrolments of a known identity are held (409) or refused (403).

use axum::extract::rejection::JsonRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use lenscap_events::api::{EnrollRequest, EnrollResponse};

use crate::auth::{Caller, new_token, token_hash};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{EnrollClaim, EnrollOutcome, Role};
use crate::timefmt::now_ms;

/// Longest hostname, identity or version accepted (DNS names stop at 253).
const MAX_FIELD: usize = 255;
/// Shortest enroll key accepted: it must be a secret no one can guess.
const MIN_KEY: usize = 32;

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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let key_hash = match req.enroll_key.as_deref() {
        None => None,
        Some(k)
            if (MIN_KEY..=MAX_FIELD).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(token_hash(k))
        }
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "enroll_key: {MIN_KEY} to {MAX_FIELD} printable ASCII characters without spaces"
            )));
        }
    };
    let token = new_token(Role::Host).map_err(|e| {
        ApiError::Internal(crate::store::StoreError::Corrupt {
            what: "making a host token",
            detail: format!("no randomness: {e}"),
        })
    })?;
    let identity = req.host.identity();
    let claim = EnrollClaim {
        identity: &identity,
        host: &req.host,
        agent_version: &req.agent_version,
        key_hash,
        peer: Some(peer.ip().to_canonical().to_string()),
    };
    let outcome = state
        .store
        .enroll(&claim, &token_hash(&token), now_ms())
        .await?;
    let ident = format!("{} {}", identity.field, identity.value);
    match outcome {
        EnrollOutcome::Enrolled { host_id } => {
            tracing::info!(host_id, hostname = %req.host.hostname, identity = identity.field, "host enrolled");
            Ok(Json(EnrollResponse { host_id, token }))
        }
        EnrollOutcome::Reenrolled {
            host_id,
            revoked,
            request_id,
        } => {
            tracing::info!(host_id, hostname = %req.host.hostname, revoked, ?request_id, "host enrolled again");
            Ok(Json(EnrollResponse { host_id, token }))
        }
        EnrollOutcome::Held {
            host_id,
            request_id,
        } => {
            tracing::warn!(host_id, request_id, %peer, identity = %ident, "enrolment of a known identity held for an admin");
            Err(ApiError::EnrollHeld {
                message: format!(
                    "{ident} is already enrolled (host {host_id}); this enrolment (request {request_id}) is held for approval: run `lenscap-collector host approve {host_id}` on the collector, and the agent gets its token at its next attempt"
                ),
                host_id,
                request_id,
            })
        }
        EnrollOutcome::Refused {
            host_id,
            request_id,
        } => {
            tracing::warn!(host_id, request_id, %peer, identity = %ident, "refused enrolment tried again");
            Err(ApiError::EnrollRefused {
                message: format!(
                    "an admin refused this enrolment of {ident} (request {request_id}); no token is issued. To undo that, run `lenscap-collector host approve {host_id} --request {request_id}` on the collector"
                ),
                host_id,
                request_id,
            })
        }
    }
}
