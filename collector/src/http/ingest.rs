//! `POST /api/v1/events`: a host's batch of events.
//!
//! The body is a JSON array of events, or `{"events": [...]}`, plain or
//! gzip (`Content-Encoding: gzip`). The batch is all or nothing: if one
//! event is malformed or not the token's host's, nothing is stored and the
//! error names the event by index and uid. Events whose uid is already
//! stored count as duplicates, so re-sending a batch is harmless.

use std::io::Read;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use flate2::read::GzDecoder;
use lenscap_events::api::IngestResponse;
use lenscap_events::{Body, Event, FindingActivity, Sha256Hex, Verdict, canonical_json};
use serde_json::Value;

use crate::auth::Caller;
use crate::config::Limits;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{FindingUpdate, HostKey, HostMeta, IngestItem, Role, finding_kind_str};
use crate::timefmt::now_ms;

pub(super) fn router(limits: Limits) -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", post(post_events))
        // Checked again after decompression; this bounds what is read
        // off the socket.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
}

async fn post_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestResponse>, ApiError> {
    caller.require(&[Role::Host], "send events")?;
    let host_id = caller.host_id.ok_or_else(|| {
        ApiError::Forbidden("this host token is not tied to a host; enroll again".into())
    })?;
    let host = state.store.host_key(host_id).await?.ok_or_else(|| {
        ApiError::Forbidden("this token's host no longer exists; enroll again".into())
    })?;
    check_content_type(&headers)?;
    let raw = body.map_err(|e| {
        let err = ApiError::from(e);
        match err {
            ApiError::TooLarge(_) => too_large(state.limits.max_body_bytes),
            other => other,
        }
    })?;
    let items = check_batch(&headers, raw, &state.limits, &host)?;

    let started = Instant::now();
    let outcome = state.store.ingest(host_id, items, now_ms()).await?;
    state
        .metrics
        .batch(&outcome, started.elapsed().as_micros() as u64);
    Ok(Json(IngestResponse {
        accepted: outcome.accepted,
        duplicate: outcome.duplicate,
    }))
}

/// Everything done to a batch before the database sees it: decompress
/// within the limit, split into events, check each (shape, chain fields,
/// the token's host) and canonicalise it. Public so the fuzz target
/// `ingest_batch` drives exactly the path an enrolled host's bytes take.
pub fn check_batch(
    headers: &HeaderMap,
    raw: Bytes,
    limits: &Limits,
    host: &HostKey,
) -> Result<Vec<IngestItem>, ApiError> {
    let bytes = decode(headers, raw, limits.max_body_bytes)?;
    let values = batch_values(&bytes, limits.max_batch_events)?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| item(i, v, host))
        .collect()
}

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "the batch is larger than {limit} bytes (after decompression); send fewer events per request"
    ))
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, not {ct:?}"
        )))
    }
}

/// The body as JSON bytes: gunzipped when it says gzip, never more than
/// `limit` bytes however well it compresses. A plain body is passed on as
/// received, not copied.
fn decode(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadRequest(format!("the body is not valid gzip: {e}")))?;
            if out.len() > limit {
                return Err(too_large(limit));
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported; send gzip or no encoding"
        ))),
    }
}

/// The events of a batch, as JSON values.
fn batch_values(bytes: &[u8], max_events: usize) -> Result<Vec<Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let events = match value {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("events") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::BadRequest(
                    "expected a JSON array of events or {\"events\": [...]}".into(),
                ));
            }
        },
        _ => {
            return Err(ApiError::BadRequest(
                "expected a JSON array of events or {\"events\": [...]}".into(),
            ));
        }
    };
    if events.len() > max_events {
        return Err(ApiError::TooLarge(format!(
            "the batch has {} events; send at most {max_events} per request",
            events.len()
        )));
    }
    Ok(events)
}

/// Check one event and turn it into what the store keeps.
fn item(index: usize, value: Value, host: &HostKey) -> Result<IngestItem, ApiError> {
    let uid_hint = value
        .get("uid")
        .and_then(Value::as_str)
        .map(|u| format!(" (uid {u:?})"))
        .unwrap_or_default();
    // Hash and store exactly what was received, unknown fields included,
    // so the chain the agent computed is the chain we check.
    let body = canonical_json(&value);
    // canonical_hash(&value) would write the canonical JSON a second time.
    let hash = Sha256Hex::of_bytes(body.as_bytes());
    let event = Event::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("event {index}{uid_hint}: {e}")))?;
    let identity = event.host.identity();
    if identity.field != host.identity_field || identity.value != host.identity_value {
        return Err(ApiError::Forbidden(format!(
            "event {index}{uid_hint} is about host {}={:?}, but this token belongs to another host; \
             a host may send only its own events",
            identity.field, identity.value
        )));
    }
    let (finding_kind, verdict, rule, severity, finding) = match &event.body {
        Body::DetectionFinding(d) => {
            let f = &d.finding;
            let update = FindingUpdate {
                finding_uid: d.finding_info.uid.clone(),
                open: d.activity != FindingActivity::Close && f.verdict != Verdict::Allow,
                verdict: f.verdict.as_str(),
                severity: f.severity.as_str(),
                rule: f.rule.clone(),
                title: d.finding_info.title.clone(),
            };
            (
                Some(finding_kind_str(f.kind)),
                Some(f.verdict.as_str()),
                f.rule.clone(),
                Some(f.severity.as_str()),
                Some(update),
            )
        }
        _ => (None, None, None, None, None),
    };
    Ok(IngestItem {
        uid: event.uid.to_string(),
        // check() keeps seq within i64.
        seq: event.seq as i64,
        time: event.time,
        kind: event.kind().as_str(),
        finding_kind,
        verdict,
        rule,
        severity,
        hash: hash.to_string(),
        prev_hash: event.prev_hash.to_string(),
        body,
        meta: HostMeta {
            hostname: event.host.hostname.clone(),
            agent_version: event.agent_version.clone(),
            mode: event.mode.as_str(),
        },
        finding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, encoding.parse().unwrap());
        h
    }

    #[test]
    fn gzip_bomb_is_cut_off_at_the_limit() {
        let zeros = vec![b'0'; 1 << 20];
        let err = decode(&headers("gzip"), gz(&zeros), 1000).unwrap_err();
        assert!(matches!(err, ApiError::TooLarge(_)), "{err}");
        assert_eq!(
            decode(&headers("gzip"), gz(b"[]"), 1000).unwrap(),
            &b"[]"[..]
        );
        let err = decode(&headers("gzip"), Bytes::from_static(b"not gzip"), 1000).unwrap_err();
        assert!(err.to_string().contains("not valid gzip"));
        let err = decode(&headers("br"), Bytes::new(), 1000).unwrap_err();
        assert!(matches!(err, ApiError::UnsupportedMediaType(_)));
    }

    #[test]
    fn batch_shapes() {
        assert_eq!(batch_values(b"[]", 10).unwrap().len(), 0);
        assert_eq!(batch_values(br#"{"events":[{},{}]}"#, 10).unwrap().len(), 2);
        assert!(batch_values(br#"{"event":[]}"#, 10).is_err());
        assert!(batch_values(b"42", 10).is_err());
        assert!(
            batch_values(b"[1,", 10)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(matches!(
            batch_values(b"[1,2,3]", 2),
            Err(ApiError::TooLarge(_))
        ));
    }
}
