//! The one error type every route returns. Clients get a status, a stable
//! `code` and a message about *their* request; database and I/O details go
//! to the log only, under a reference the client can quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lenscap_events::api::ErrorBody;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one the collector does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// A known token that may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// The client took longer than the body-read timeout to send its body.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PreconditionFailed(String),
    /// A known identity's enrolment, waiting for an admin (409).
    #[error("{message}")]
    EnrollHeld {
        message: String,
        host_id: i64,
        request_id: i64,
    },
    /// A known identity's enrolment an admin refused (403).
    #[error("{message}")]
    EnrollRefused {
        message: String,
        host_id: i64,
        request_id: i64,
    },
    /// Something on our side; the message shown is generic.
    #[error("internal error: {0}")]
    Internal(#[from] StoreError),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::EnrollHeld { .. } => (StatusCode::CONFLICT, "enroll_held"),
            ApiError::EnrollRefused { .. } => (StatusCode::FORBIDDEN, "enroll_refused"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// An axum extractor's rejection, keeping its status class and its
    /// message (which describes the client's request, not our insides).
    pub fn rejected(status: StatusCode, text: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(text),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

/// Whether reading the body failed because it came too slowly (the
/// body-read deadline, `http::body_deadline`).
fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn body_timeout() -> ApiError {
    ApiError::Timeout(
        "the request body did not arrive within the collector's body-read timeout; send it faster or in smaller batches".into(),
    )
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection;
        if let JsonRejection::BytesRejection(b) = &r
            && is_body_timeout(b)
        {
            return body_timeout();
        }
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::rejected(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> ApiError {
        if is_body_timeout(&r) {
            return body_timeout();
        }
        ApiError::rejected(r.status(), r.body_text())
    }
}

/// A short reference tying a client's 500 to the log line with details.
fn reference() -> String {
    let mut b = [0u8; 6];
    // Without randomness the reference is only less unique; not worth
    // failing the response over.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(err) => {
                let r = reference();
                tracing::error!(reference = %r, error = %err, "request failed");
                format!("internal error; the collector's log has the details under reference {r}")
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            code: code.to_string(),
            error: message,
        };
        let mut resp = match &self {
            // The ids too, for scripts that act on a held enrolment.
            ApiError::EnrollHeld {
                host_id,
                request_id,
                ..
            }
            | ApiError::EnrollRefused {
                host_id,
                request_id,
                ..
            } => (
                status,
                axum::Json(serde_json::json!({
                    "code": body.code,
                    "error": body.error,
                    "host_id": host_id,
                    "request_id": request_id,
                })),
            )
                .into_response(),
            _ => (status, axum::Json(body)).into_response(),
        };
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lenscap\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_details() {
        let err = ApiError::Internal(StoreError::Corrupt {
            what: "testing",
            detail: "secret table layout".into(),
        });
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            futures_util::FutureExt::now_or_never(axum::body::to_bytes(resp.into_body(), 1 << 16))
                .unwrap()
                .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("reference"), "{text}");
    }

    #[test]
    fn unauthorized_says_how_to_authenticate() {
        let resp = ApiError::Unauthorized("no token".into()).into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
