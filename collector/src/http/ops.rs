//! `/healthz` and `/metrics`: for load balancers and Prometheus.
//! `/healthz` needs no token and says only whether the database answers.
//! `/metrics` (counts of hosts, events, responses, connections) needs a
//! reader or admin token unless `serve --public-metrics` was given:
//! Prometheus sends one with `authorization: { credentials_file: … }`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Role;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn metrics(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if !state.public_metrics {
        caller?.require(&[Role::Reader, Role::Admin], "read metrics")?;
    }
    let totals = state.store.totals().await.ok();
    let mut text = state.metrics.render(state.store.backend(), totals);
    text.push_str(
        &state
            .metrics
            .render_alerts(state.store.alert_counts().await.ok()),
    );
    // Events stored but not yet grouped into incidents: grows when the
    // grouper falls behind ingest (alerts wait for it).
    if let Ok(n) = state.store.incidents_pending().await {
        text.push_str(&format!(
            "# HELP lenscap_collector_incidents_pending Events waiting to be grouped into incidents.\n# TYPE lenscap_collector_incidents_pending gauge\nlenscap_collector_incidents_pending {n}\n"
        ));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}
