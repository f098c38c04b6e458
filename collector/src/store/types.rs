//! The plain data the store takes and gives, and its error type.

use lenscap_events::{FindingKind, Kind, Verdict};

/// Declare a struct that a query result row maps onto by column name, on
/// either database: the struct as written plus a generic
/// [`sqlx::FromRow`], so `query_as::<_, T>` serves SQLite and PostgreSQL
/// alike instead of a hand-written `try_get` per field per query. (What
/// sqlx's `FromRow` derive would generate; the workspace builds sqlx
/// without its proc macros.) The SELECT names its columns as the fields.
macro_rules! row_struct {
    ($(#[$m:meta])* pub struct $ty:ident {
        $($(#[$fm:meta])* pub $field:ident : $fty:ty),* $(,)?
    }) => {
        $(#[$m])*
        pub struct $ty {
            $($(#[$fm])* pub $field: $fty),*
        }

        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $ty
        where
            &'r str: sqlx::ColumnIndex<R>,
            $($fty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)*
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok($ty {
                    $($field: row.try_get(stringify!($field))?),*
                })
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("cannot open database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring database {url} up to date: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error while {what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data does not make sense while {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// The batch was not stored: the writer stopped, or the group it was
    /// committed with failed.
    #[error("events not stored: {0}")]
    NotStored(String),
}

/// Attach what the store was doing to a driver error.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, sqlx::Error> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what, source })
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Enroll hosts (`POST /api/v1/enroll`); nothing else.
    Enroll,
    /// Read events, hosts, exports, the dashboard and the policy.
    Reader,
    /// Everything a reader may, and change the fleet policy.
    Admin,
    /// One host: write its own events, read the policy.
    Host,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Enroll => "enroll",
            Role::Reader => "reader",
            Role::Admin => "admin",
            Role::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Enroll, Role::Reader, Role::Admin, Role::Host]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// May read fleet data (events, hosts, exports, dashboard).
    pub fn reads_fleet(self) -> bool {
        matches!(self, Role::Reader | Role::Admin)
    }
}

/// A token found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub role: Role,
    /// Set for host tokens.
    pub host_id: Option<i64>,
    /// When an admin revoked it (ms); a revoked token authenticates
    /// nothing.
    pub revoked_at: Option<i64>,
}

/// A token as `token list` shows it: never the token itself, which the
/// collector does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub role: Role,
    pub host_id: Option<i64>,
    /// The host's name, for host tokens.
    pub hostname: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub note: Option<String>,
}

/// Who asks to enrol, as `POST /api/v1/enroll` told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollClaim<'a> {
    pub identity: &'a lenscap_events::HostIdentity,
    pub host: &'a lenscap_events::Host,
    pub agent_version: &'a str,
    /// SHA-256 of the agent's enroll key, when it sent one.
    pub key_hash: Option<String>,
    /// The address the request came from (the proxy's, behind one).
    pub peer: Option<String>,
}

/// What enrolling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// A new identity: the host was recorded and the token stored.
    Enrolled { host_id: i64 },
    /// A known identity got the token: the same installation (same enroll
    /// key) again, or a request an admin approved (`request_id`). The
    /// host's earlier tokens were revoked (`revoked` of them).
    Reenrolled {
        host_id: i64,
        revoked: u64,
        request_id: Option<i64>,
    },
    /// A known identity from another installation: no token; the request
    /// waits for `lenscap-collector host approve`.
    Held { host_id: i64, request_id: i64 },
    /// An admin refused this request.
    Refused { host_id: i64, request_id: i64 },
}

/// Where an enrolment request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Waiting for an admin.
    Held,
    /// Approved; the agent's next attempt gets the token.
    Approved,
    /// Refused; the agent's attempts are answered 403.
    Refused,
    /// Approved and the token handed out.
    Issued,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Held => "held",
            RequestState::Approved => "approved",
            RequestState::Refused => "refused",
            RequestState::Issued => "issued",
        }
    }

    pub fn parse(s: &str) -> Option<RequestState> {
        [
            RequestState::Held,
            RequestState::Approved,
            RequestState::Refused,
            RequestState::Issued,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An enrolment of a known identity that needed an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRequestRecord {
    pub id: i64,
    pub host_id: i64,
    pub state: RequestState,
    /// The enrolled host's identity and current name.
    pub identity_field: String,
    pub identity_value: String,
    pub host_hostname: String,
    /// What the request said about itself.
    pub hostname: String,
    pub serial: Option<String>,
    pub agent_version: Option<String>,
    /// Whether the agent sent an enroll key (older agents do not; the
    /// approval of a keyless request goes to the next keyless attempt).
    pub has_key: bool,
    pub peer: Option<String>,
    pub requested_at: i64,
    pub last_attempt_at: i64,
    pub attempts: i64,
    pub decided_at: Option<i64>,
}

row_struct! {
/// A host's identity as enrollment recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub id: i64,
    pub identity_field: String,
    pub identity_value: String,
    pub hostname: String,
}
}

row_struct! {
/// A host as the fleet overview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSummary {
    pub id: i64,
    pub hostname: String,
    pub identity_field: String,
    pub identity_value: String,
    pub serial: Option<String>,
    pub enrolled_at: i64,
    /// When it last sent events (ms); `None` before its first upload.
    pub last_seen: Option<i64>,
    pub agent_version: Option<String>,
    pub mode: Option<String>,
    pub max_seq: i64,
    pub event_count: i64,
    pub open_findings: i64,
    /// Number of gap ranges and the events missing in them.
    pub gaps: i64,
    pub missing_events: i64,
    pub chain_breaks: i64,
}
}

/// Position in the hosts-by-name order: `(hostname, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCursor {
    pub hostname: String,
    pub id: i64,
}

impl HostCursor {
    /// The opaque text form handed to clients: the hostname in hex (it
    /// may hold any character), `_`, the id.
    pub fn encode(&self) -> String {
        format!("{}_{}", hex::encode(self.hostname.as_bytes()), self.id)
    }

    pub fn decode(s: &str) -> Option<HostCursor> {
        let (name, id) = s.rsplit_once('_')?;
        Some(HostCursor {
            hostname: String::from_utf8(hex::decode(name).ok()?).ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// Which hosts to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// Only hosts with open findings, missing events or chain breaks.
    pub attention: bool,
    pub mode: Option<String>,
    /// Last seen before / at or after (ms); a host never seen matches
    /// neither.
    pub seen_before: Option<i64>,
    pub seen_since: Option<i64>,
    /// Hostname starts with this.
    pub name_prefix: Option<String>,
    pub cursor: Option<HostCursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPage {
    pub hosts: Vec<HostSummary>,
    pub next: Option<HostCursor>,
}

/// Fleet-wide counts for the fleet page's tiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub hosts: i64,
    /// Hosts with open findings, missing events or chain breaks.
    pub attention: i64,
    pub open_findings: i64,
    pub hosts_with_gaps: i64,
    pub missing_events: i64,
    pub chain_breaks: i64,
}

/// The host snapshot from the newest event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMeta {
    pub hostname: String,
    pub agent_version: String,
    pub mode: &'static str,
}

/// A finding's latest state, from a detection finding event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingUpdate {
    pub finding_uid: String,
    pub open: bool,
    pub verdict: &'static str,
    pub severity: &'static str,
    pub rule: Option<String>,
    pub title: String,
}

/// One checked event, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestItem {
    pub uid: String,
    pub seq: i64,
    pub time: i64,
    pub kind: &'static str,
    /// `finding.kind` of a detection finding ([`finding_kind_str`]).
    pub finding_kind: Option<&'static str>,
    pub verdict: Option<&'static str>,
    pub rule: Option<String>,
    pub severity: Option<&'static str>,
    pub hash: String,
    pub prev_hash: String,
    /// Canonical JSON of the event as received.
    pub body: String,
    pub meta: HostMeta,
    pub finding: Option<FindingUpdate>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub accepted: u64,
    pub duplicate: u64,
    pub gaps_opened: u64,
    pub breaks: u64,
}

/// Every finding kind, in the order messages list them.
pub const FINDING_KINDS: [FindingKind; 4] = [
    FindingKind::Listener,
    FindingKind::Persistence,
    FindingKind::CameraGrant,
    FindingKind::CameraUse,
];

/// A finding kind as the wire format, the `finding_kind` column and the
/// API spell it.
pub fn finding_kind_str(k: FindingKind) -> &'static str {
    match k {
        FindingKind::Listener => "listener",
        FindingKind::Persistence => "persistence",
        FindingKind::CameraGrant => "camera_grant",
        FindingKind::CameraUse => "camera_use",
    }
}

pub fn parse_finding_kind(s: &str) -> Option<FindingKind> {
    FINDING_KINDS
        .into_iter()
        .find(|k| finding_kind_str(*k) == s)
}

/// Position in the newest-first event order: `(time, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub id: i64,
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(self) -> String {
        format!("{}_{}", self.time, self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (t, i) = s.split_once('_')?;
        Some(Cursor {
            time: t.parse().ok()?,
            id: i.parse().ok()?,
        })
    }
}

/// Which events to list. Every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Hostname, hardware UUID, machine-id or serial, exactly.
    pub host: Option<String>,
    pub host_id: Option<i64>,
    /// Any of these kinds (empty: all).
    pub kinds: Vec<Kind>,
    pub verdict: Option<Verdict>,
    /// Detection findings of any of these finding kinds (empty: no
    /// narrowing; events of other kinds never match a non-empty list).
    pub finding_kinds: Vec<FindingKind>,
    pub rule: Option<String>,
    /// `time >= since` (ms).
    pub since: Option<i64>,
    /// `time < until` (ms).
    pub until: Option<i64>,
    /// Events strictly after this position in newest-first order.
    pub cursor: Option<Cursor>,
    pub limit: u32,
}

row_struct! {
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub host_id: i64,
    pub hostname: String,
    pub seq: i64,
    pub time: i64,
    pub received_at: i64,
    pub kind: String,
    /// `finding.kind` of a detection finding; `None` for other events.
    pub finding_kind: Option<String>,
    pub verdict: Option<String>,
    pub rule: Option<String>,
    /// Canonical JSON, exactly as hashed.
    pub body: String,
    /// The event is involved in a chain break (its seq was reused, or its
    /// `prev_hash` or its successor's does not match): do not trust it.
    pub untrusted: bool,
}
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Set when there may be more: pass it back as `cursor`.
    pub next: Option<Cursor>,
}

row_struct! {
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRecord {
    pub host_id: i64,
    pub hostname: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub detected_at: i64,
}
}

row_struct! {
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakRecord {
    pub host_id: i64,
    pub hostname: String,
    pub seq: i64,
    pub kind: String,
    pub uid: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub detected_at: i64,
}
}

row_struct! {
/// An incident as readers see it (`crate::incidents` explains them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRecord {
    pub id: i64,
    pub host_id: i64,
    pub hostname: String,
    pub title: String,
    pub state: String,
    pub severity: String,
    pub name: String,
    pub what: Option<String>,
    pub rule: Option<String>,
    /// The strongest verdict of its findings (`remediate`, `report`,
    /// `allow`); none for an incident of plan steps only.
    pub verdict: Option<String>,
    /// The kinds of its findings, sorted, comma-separated.
    pub kinds: String,
    pub first_time: i64,
    pub last_time: i64,
    pub findings: i64,
    pub open_findings: i64,
    pub steps_done: i64,
    pub steps_failed: i64,
    pub steps_would: i64,
    pub restores: i64,
    pub quarantined: i64,
    pub event_count: i64,
    /// One of its events is involved in a chain break.
    pub untrusted: bool,
}
}

row_struct! {
/// An incident's aggregate as the grouper reads it (nothing joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupedIncident {
    pub id: i64,
    pub severity: String,
    pub name: String,
    pub what: Option<String>,
    pub rule: Option<String>,
    pub verdict: Option<String>,
    pub kinds: String,
    pub first_time: i64,
    pub last_time: i64,
    pub findings: i64,
    pub open_findings: i64,
    pub steps_done: i64,
    pub steps_failed: i64,
    pub steps_would: i64,
    pub restores: i64,
    pub quarantined: i64,
    pub event_count: i64,
}
}

/// Which incidents to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Hostname, hardware UUID, machine-id or serial, exactly.
    pub host: Option<String>,
    pub host_id: Option<i64>,
    pub state: Option<String>,
    /// At least this severity.
    pub min_severity: Option<i64>,
    pub rule: Option<String>,
    /// Last activity `>= since` (ms).
    pub since: Option<i64>,
    /// Last activity `< until` (ms).
    pub until: Option<i64>,
    /// Only incidents holding an event on a chain break.
    pub untrusted: bool,
    /// After this position in most-recent-first order (`last_time`, id).
    pub cursor: Option<Cursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentRecord>,
    pub next: Option<Cursor>,
}

/// Findings grouped by the rule that decided them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    /// `None`: decided by heuristics, no rule.
    pub rule: Option<String>,
    pub findings: i64,
    pub open: i64,
    pub hosts: i64,
    pub worst_severity: String,
}

row_struct! {
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Canonical JSON of the policy.
    pub body: String,
    pub etag: String,
    pub updated_at: i64,
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cursor_round_trips_any_name_and_rejects_junk() {
        for name in ["mac", "", "a_b_c", "<script>", "Jürgen's MacBook"] {
            let c = HostCursor {
                hostname: name.into(),
                id: 7,
            };
            assert_eq!(HostCursor::decode(&c.encode()), Some(c));
        }
        for junk in ["", "zz_1", "61_", "61_x", "6_1", "ff_1"] {
            assert_eq!(HostCursor::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let c = Cursor {
            time: 1_764_312_005_000,
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for junk in ["", "1", "a_b", "1_", "_1", "1_2_3", "1' OR '1'='1"] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn finding_kinds_are_spelt_as_on_the_wire() {
        for k in FINDING_KINDS {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::from(finding_kind_str(k))
            );
            assert_eq!(parse_finding_kind(finding_kind_str(k)), Some(k));
        }
        for junk in ["", "Camera_use", "camera_use ", "camera_use' OR '1'='1"] {
            assert_eq!(parse_finding_kind(junk), None, "{junk}");
        }
    }

    #[test]
    fn roles() {
        for r in [Role::Enroll, Role::Reader, Role::Admin, Role::Host] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(Role::Admin.reads_fleet() && Role::Reader.reads_fleet());
        assert!(!Role::Host.reads_fleet() && !Role::Enroll.reads_fleet());
    }
}

row_struct! {
    /// A place alerts go (`alert_destinations`).
    #[derive(Debug, Clone, serde::Serialize)]
    pub struct AlertDestination {
        pub id: i64,
        pub name: String,
        /// `webhook` or `syslog`.
        pub kind: String,
        pub url: String,
        /// Signs webhook bodies; never shown.
        #[serde(skip)]
        pub secret: Option<String>,
        /// Lowest severity rank that alerts (`incidents::severity_rank`).
        pub min_rank: i64,
        /// Comma-separated incident states that alert; empty: all.
        pub states: String,
        /// Only incidents of this rule, when set.
        pub rule: Option<String>,
        /// Only incidents on the Mac with this hostname, when set.
        pub host: Option<String>,
        /// Comma-separated verdicts; only incidents whose strongest
        /// verdict is one of them, when set.
        pub verdict: Option<String>,
        /// Comma-separated finding kinds; only incidents holding a
        /// finding of one of them, when set.
        pub finding_kind: Option<String>,
        /// PEM certificates a `tls://` syslog receiver's certificate must
        /// chain to, instead of the public web roots, when set.
        pub ca_pem: Option<String>,
        pub created_at: i64,
    }
}

row_struct! {
    /// One alert in the queue (`alert_queue`), with where it goes.
    #[derive(Debug, Clone, serde::Serialize)]
    pub struct AlertRecord {
        pub id: i64,
        pub destination_id: i64,
        pub destination: String,
        pub incident_id: i64,
        pub state: String,
        pub event_id: i64,
        #[serde(skip)]
        pub body: String,
        pub queued_at: i64,
        /// `pending`, `sent` or `dead`.
        pub status: String,
        pub attempts: i64,
        pub next_attempt: i64,
        pub last_error: Option<String>,
        pub sent_at: Option<i64>,
    }
}

/// How many alerts are in each state, for `/metrics` and `alert list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertCounts {
    pub pending: i64,
    pub sent: i64,
    pub dead: i64,
}

/// One delivery attempt's outcome (`Store::record_deliveries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// When it was made (ms).
    pub at: i64,
    /// Why it failed; `None`: sent.
    pub error: Option<String>,
    /// A failed one: when to try again.
    pub next_attempt: i64,
    /// A failed one: given up.
    pub dead: bool,
}
