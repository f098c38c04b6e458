//! `GET /api/v1/policy` and `PUT /api/v1/policy`: the fleet's rules and
//! catalog additions, with ETags so agents poll cheaply (`If-None-Match`
//! → 304) and two admins cannot overwrite each other (`If-Match` → 412).
//!
//! Agents read it with their host token; readers and admins may read it;
//! only admins may change it.

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lenscap_events::canonical::sha256_hex;
use lenscap_events::{FleetPolicy, canonical_json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Role;
use crate::timefmt::now_ms;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/policy", get(get_policy).put(put_policy))
        .layer(DefaultBodyLimit::max(1024 * 1024))
}

/// The strong ETag of a policy's canonical JSON.
pub fn policy_etag(body: &str) -> String {
    format!("\"{}\"", sha256_hex(body.as_bytes()))
}

fn empty_policy() -> String {
    serde_json::to_value(FleetPolicy::default())
        .map(|v| canonical_json(&v))
        .unwrap_or_else(|_| "{\"catalog\":[],\"rules\":[]}".into())
}

/// Does an `If-None-Match` / `If-Match` list name this ETag?
fn matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

fn respond(status: StatusCode, body: String, etag: &str) -> Response {
    let mut resp = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Host, Role::Reader, Role::Admin], "read the policy")?;
    let (body, etag) = match state.store.policy().await? {
        Some(p) => (p.body, p.etag),
        None => {
            let body = empty_policy();
            let etag = policy_etag(&body);
            (body, etag)
        }
    };
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches(v, &etag));
    if unchanged {
        return Ok(respond(StatusCode::NOT_MODIFIED, String::new(), &etag));
    }
    Ok(respond(StatusCode::OK, body, &etag))
}

async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<FleetPolicy>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin], "change the policy")?;
    let Json(policy) = body?;
    policy
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let value = serde_json::to_value(&policy).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let text = canonical_json(&value);
    let etag = policy_etag(&text);
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::BadRequest("If-Match is not text".into()))
        })
        .transpose()?;
    let empty = policy_etag(&empty_policy());
    // The store compares one ETag; a list in If-Match is rare enough to
    // refuse plainly.
    if if_match.is_some_and(|m| m.contains(',')) {
        return Err(ApiError::BadRequest(
            "If-Match: give the one ETag you read".into(),
        ));
    }
    let stored = state
        .store
        .put_policy(
            &text,
            &etag,
            if_match.map(|m| m.trim_start_matches("W/")),
            &empty,
            now_ms(),
        )
        .await?;
    if !stored {
        return Err(ApiError::PreconditionFailed(
            "the policy changed since you read it: GET it again, re-apply your change, and PUT with the new ETag".into(),
        ));
    }
    tracing::info!(etag = %etag, rules = policy.rules.len(), catalog = policy.catalog.len(), "policy changed");
    Ok(respond(StatusCode::OK, text, &etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists() {
        let e = policy_etag("{}");
        assert!(e.starts_with('"') && e.ends_with('"') && e.len() == 66);
        assert!(matches(&e, &e));
        assert!(matches(&format!("\"x\", W/{e}"), &e));
        assert!(matches("*", &e));
        assert!(!matches("\"x\"", &e));
    }

    #[test]
    fn empty_policy_is_canonical() {
        assert_eq!(empty_policy(), "{\"catalog\":[],\"rules\":[]}");
    }
}
