//! The HTTP API. Each route group owns its `router()`; this file puts them
//! together with the layers every response shares (timeout, request log,
//! metrics, security headers). docs/api.md describes the routes.

mod alerts;
mod enroll;
mod incidents;
mod ingest;
mod ops;
mod policy;
mod read;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::timeout::{DeadlineBody, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub use ingest::check_batch;
pub use policy::policy_etag;

/// The whole application: API, dashboard, health and metrics.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(enroll::router())
        .merge(ingest::router(state.limits))
        .merge(read::router())
        .merge(incidents::router())
        .merge(alerts::router())
        .merge(policy::router())
        .merge(ops::router())
        .merge(crate::web::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_and_harden,
        ))
        .layer(middleware::from_fn_with_state(
            state.net.body_read_timeout,
            body_deadline,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.net.request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("no such route; see docs/api.md".into())
}

/// The whole body must arrive within the body-read timeout, counted from
/// the end of the headers, however it trickles in (a per-chunk timeout
/// would let one byte every few seconds through). A late body fails to
/// read, and the route answers 400 naming the timeout.
async fn body_deadline(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    next.run(req.map(|body| Body::new(DeadlineBody::new(limit, body))))
        .await
}

/// Count every response by status and add headers that cost nothing and
/// close off whole classes of browser attacks.
async fn count_and_harden(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await.into_response();
    state.metrics.response(resp.status().as_u16());
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
