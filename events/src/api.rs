//! Request and response bodies of the collector's HTTP API that the agent
//! also speaks (docs/api.md describes the routes).

use serde::{Deserialize, Serialize};

use crate::envelope::Host;

/// `POST /api/v1/enroll` body, sent with an enroll token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub host: Host,
    pub agent_version: String,
    /// A random secret this installation made before its first enrolment
    /// and keeps beside its token. Presenting it again proves a
    /// re-enrolment comes from the same installation; without it a known
    /// identity's enrolment waits for an admin. Absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enroll_key: Option<String>,
}

/// `POST /api/v1/enroll` answer: the host's own token. It is shown once;
/// the collector keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub host_id: i64,
    pub token: String,
}

/// `POST /api/v1/events` answer. `accepted + duplicate` is the batch size:
/// a duplicate is an event whose uid was already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    pub accepted: u64,
    pub duplicate: u64,
}

/// Every error the API returns: `code` is stable for programs, `error` is
/// for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub error: String,
}
