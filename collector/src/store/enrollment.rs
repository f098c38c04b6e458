//! Enrolment, approval and revocation: who may hold a token for a host.
//!
//! The fleet's enroll token is shared by every Mac, so whoever has it can
//! claim any identity (hardware UUID, machine-id). A new identity gets a
//! token at once — that is what the enroll token is for. A *known*
//! identity gets one only when the request proves it comes from the
//! installation that enrolled it (the same enroll key: a random secret the
//! agent made at its first enrolment and keeps beside its token), or when
//! an admin approved that very request (`lenscap-collector host approve`).
//! Anything else is held: recorded in `enroll_requests`, one row per host
//! and enroll key, and answered without a token. Approving binds the
//! token to the request's key, so another claimant polling the same
//! identity cannot collect it.
//!
//! Whenever a host gets a new token its older ones are revoked, and
//! revoking a host's token forgets its enroll key, so the installation
//! that held it cannot enrol its way back without an admin.

use super::types::*;
use super::{Store, dispatch, dispatch_write};

const SELECT_HOST: &str =
    "SELECT id, enroll_key_hash FROM hosts WHERE identity_field = $1 AND identity_value = $2";
/// PostgreSQL: lock the host row so two enrolments of one identity on two
/// collectors run one after the other. (SQLite has one writer anyway.)
const SELECT_HOST_FOR_UPDATE: &str = "SELECT id, enroll_key_hash FROM hosts WHERE identity_field = $1 AND identity_value = $2 FOR UPDATE";

const REQUEST_COLUMNS: &str = "r.id, r.host_id, r.state, h.identity_field, h.identity_value, h.hostname AS host_hostname,
     r.hostname, r.serial, r.agent_version, r.key_hash, r.peer, r.requested_at, r.last_attempt_at, r.attempts, r.decided_at";

/// A row of [`REQUEST_COLUMNS`], in order.
type RequestRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
);

fn request_from_row(
    (
        id,
        host_id,
        state,
        identity_field,
        identity_value,
        host_hostname,
        hostname,
        serial,
        agent_version,
        key_hash,
        peer,
        requested_at,
        last_attempt_at,
        attempts,
        decided_at,
    ): RequestRow,
) -> Result<EnrollRequestRecord, StoreError> {
    Ok(EnrollRequestRecord {
        id,
        host_id,
        state: RequestState::parse(&state).ok_or_else(|| StoreError::Corrupt {
            what: "reading enrolment requests",
            detail: format!("unknown state {state:?}"),
        })?,
        identity_field,
        identity_value,
        host_hostname,
        hostname,
        serial,
        agent_version,
        has_key: !key_hash.is_empty(),
        peer,
        requested_at,
        last_attempt_at,
        attempts,
        decided_at,
    })
}

/// A row of [`TOKEN_COLUMNS`], in order.
type TokenRow = (
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
);

fn token_from_row(
    (hash, role, host_id, hostname, created_at, revoked_at, note): TokenRow,
) -> Result<TokenInfo, StoreError> {
    let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
        what: "listing tokens",
        detail: format!("unknown role {role:?}"),
    })?;
    Ok(TokenInfo {
        hash,
        role,
        host_id,
        hostname,
        created_at,
        revoked_at,
        note,
    })
}

const TOKEN_COLUMNS: &str =
    "SELECT t.hash, t.role, t.host_id, h.hostname, t.created_at, t.revoked_at, t.note
     FROM tokens t LEFT JOIN hosts h ON h.id = t.host_id";

impl Store {
    /// Enrol `claim`'s host. A token (`token_hash`) is stored only for a
    /// new identity, the same installation again, or an approved request;
    /// see the module documentation.
    pub async fn enroll(
        &self,
        claim: &EnrollClaim<'_>,
        token_hash: &str,
        now: i64,
    ) -> Result<EnrollOutcome, StoreError> {
        let select_host = match self {
            Store::Sqlite(_) => SELECT_HOST,
            Store::Postgres(_) => SELECT_HOST_FOR_UPDATE,
        };
        let host = claim.host;
        let key = claim.key_hash.as_deref().unwrap_or("");
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("enrolling a host")?;
            let new_id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO hosts (identity_field, identity_value, hostname, hardware_uuid, serial, machine_id, enrolled_at, agent_version, enroll_key_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (identity_field, identity_value) DO NOTHING
                 RETURNING id",
            )
            .bind(claim.identity.field)
            .bind(&claim.identity.value)
            .bind(&host.hostname)
            .bind(&host.hardware_uuid)
            .bind(&host.serial)
            .bind(&host.machine_id)
            .bind(now)
            .bind(claim.agent_version)
            .bind(&claim.key_hash)
            .fetch_optional(&mut *tx)
            .await
            .ctx("enrolling a host")?;
            let insert_token = "INSERT INTO tokens (hash, role, host_id, created_at, note) VALUES ($1, 'host', $2, $3, NULL)";
            if let Some(host_id) = new_id {
                sqlx::query(super::ingest::COUNT_NEW_HOST)
                    .bind(super::ingest::totals_slot(host_id))
                    .execute(&mut *tx)
                    .await
                    .ctx("counting a new host")?;
                sqlx::query(insert_token)
                    .bind(token_hash)
                    .bind(host_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .ctx("storing a host token")?;
                tx.commit().await.ctx("enrolling a host")?;
                return Ok(EnrollOutcome::Enrolled { host_id });
            }
            let (host_id, key_on_file): (i64, Option<String>) = sqlx::query_as(select_host)
                .bind(claim.identity.field)
                .bind(&claim.identity.value)
                .fetch_one(&mut *tx)
                .await
                .ctx("enrolling a host")?;
            let same_installation =
                !key.is_empty() && key_on_file.as_deref() == Some(key);
            let request: Option<(i64, String)> = if same_installation {
                None
            } else {
                sqlx::query_as("SELECT id, state FROM enroll_requests WHERE host_id = $1 AND key_hash = $2")
                    .bind(host_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("enrolling a host")?
            };
            let approved = matches!(&request, Some((_, s)) if s == RequestState::Approved.as_str());
            if same_installation || approved {
                let revoked = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE host_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await
                    .ctx("revoking a host's older tokens")?
                    .rows_affected();
                sqlx::query(insert_token)
                    .bind(token_hash)
                    .bind(host_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .ctx("storing a host token")?;
                // An empty key (an agent that sends none) is stored as
                // NULL: it never proves anything.
                sqlx::query("UPDATE hosts SET hostname = $1, serial = $2, agent_version = $3, enroll_key_hash = $4 WHERE id = $5")
                    .bind(&host.hostname)
                    .bind(&host.serial)
                    .bind(claim.agent_version)
                    .bind(&claim.key_hash)
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await
                    .ctx("enrolling a host")?;
                let request_id = request.map(|(id, _)| id);
                if let Some(id) = request_id {
                    sqlx::query("UPDATE enroll_requests SET state = 'issued', last_attempt_at = $1, attempts = attempts + 1 WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .ctx("enrolling a host")?;
                }
                tx.commit().await.ctx("enrolling a host")?;
                return Ok(EnrollOutcome::Reenrolled { host_id, revoked, request_id });
            }
            let outcome = match request {
                None => {
                    let request_id: i64 = sqlx::query_scalar(
                        "INSERT INTO enroll_requests (host_id, key_hash, state, hostname, hardware_uuid, serial, machine_id, agent_version, peer, requested_at, last_attempt_at, attempts)
                         VALUES ($1, $2, 'held', $3, $4, $5, $6, $7, $8, $9, $9, 1)
                         RETURNING id",
                    )
                    .bind(host_id)
                    .bind(key)
                    .bind(&host.hostname)
                    .bind(&host.hardware_uuid)
                    .bind(&host.serial)
                    .bind(&host.machine_id)
                    .bind(claim.agent_version)
                    .bind(&claim.peer)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .ctx("holding an enrolment")?;
                    EnrollOutcome::Held { host_id, request_id }
                }
                Some((request_id, state)) if state == RequestState::Refused.as_str() => {
                    sqlx::query("UPDATE enroll_requests SET last_attempt_at = $1, attempts = attempts + 1, peer = $2 WHERE id = $3")
                        .bind(now)
                        .bind(&claim.peer)
                        .bind(request_id)
                        .execute(&mut *tx)
                        .await
                        .ctx("holding an enrolment")?;
                    EnrollOutcome::Refused { host_id, request_id }
                }
                Some((request_id, state)) => {
                    // Held: one more attempt. Issued: that token was since
                    // revoked or replaced, so this is a new request.
                    let again = state == RequestState::Issued.as_str();
                    sqlx::query(
                        "UPDATE enroll_requests SET state = 'held', hostname = $1, serial = $2, agent_version = $3, peer = $4,
                           last_attempt_at = $5,
                           requested_at = CASE WHEN $6 THEN $5 ELSE requested_at END,
                           attempts = CASE WHEN $6 THEN 1 ELSE attempts + 1 END,
                           decided_at = CASE WHEN $6 THEN NULL ELSE decided_at END
                         WHERE id = $7",
                    )
                    .bind(&host.hostname)
                    .bind(&host.serial)
                    .bind(claim.agent_version)
                    .bind(&claim.peer)
                    .bind(now)
                    .bind(again)
                    .bind(request_id)
                    .execute(&mut *tx)
                    .await
                    .ctx("holding an enrolment")?;
                    EnrollOutcome::Held { host_id, request_id }
                }
            };
            tx.commit().await.ctx("holding an enrolment")?;
            Ok(outcome)
        })
    }

    /// Enrolment requests of `host_id` (or every host) in `states`,
    /// oldest first.
    pub async fn enroll_requests(
        &self,
        host_id: Option<i64>,
        states: &[RequestState],
    ) -> Result<Vec<EnrollRequestRecord>, StoreError> {
        let rows = dispatch!(self, pool => {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "SELECT {REQUEST_COLUMNS} FROM enroll_requests r JOIN hosts h ON h.id = r.host_id WHERE 1 = 1"
            ));
            if let Some(id) = host_id {
                qb.push(" AND r.host_id = ").push_bind(id);
            }
            qb.push(" AND r.state IN (");
            let mut sep = qb.separated(", ");
            for s in states {
                sep.push_bind(s.as_str());
            }
            qb.push(") ORDER BY r.requested_at, r.id");
            qb.build_query_as::<RequestRow>()
                .fetch_all(pool)
                .await
                .ctx("listing enrolment requests")?
        });
        rows.into_iter().map(request_from_row).collect()
    }

    /// Decide a held (or earlier refused) request. Approving revokes the
    /// host's tokens and forgets its enroll key at once: the admin said
    /// this request, not the installation before it, is the host now.
    /// Returns the number of tokens revoked; `None` when there is no such
    /// request in a state that can be decided.
    pub async fn decide_request(
        &self,
        request_id: i64,
        approve: bool,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let new_state = if approve {
            RequestState::Approved
        } else {
            RequestState::Refused
        };
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("deciding an enrolment")?;
            let host_id: Option<i64> = sqlx::query_scalar(
                "UPDATE enroll_requests SET state = $1, decided_at = $2
                 WHERE id = $3 AND state IN ('held', 'refused', 'approved')
                 RETURNING host_id",
            )
            .bind(new_state.as_str())
            .bind(now)
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await
            .ctx("deciding an enrolment")?;
            let Some(host_id) = host_id else {
                return Ok(None);
            };
            let mut revoked = 0;
            if approve {
                revoked = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE host_id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await
                    .ctx("revoking a host's tokens")?
                    .rows_affected();
                sqlx::query("UPDATE hosts SET enroll_key_hash = NULL WHERE id = $1")
                    .bind(host_id)
                    .execute(&mut *tx)
                    .await
                    .ctx("revoking a host's tokens")?;
            }
            tx.commit().await.ctx("deciding an enrolment")?;
            Ok(Some(revoked))
        })
    }

    /// Hosts that `text` names: by id, hostname, identity or serial.
    pub async fn find_hosts(&self, text: &str) -> Result<Vec<HostKey>, StoreError> {
        let id = text.parse::<i64>().unwrap_or(-1);
        let rows: Vec<(i64, String, String, String)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, identity_field, identity_value, hostname FROM hosts
                 WHERE id = $1 OR hostname = $2 OR identity_value = $2 OR serial = $2 ORDER BY id",
            )
            .bind(id)
            .bind(text)
            .fetch_all(pool)
            .await
            .ctx("finding a host")?
        });
        Ok(rows
            .into_iter()
            .map(|(id, identity_field, identity_value, hostname)| HostKey {
                id,
                identity_field,
                identity_value,
                hostname,
            })
            .collect())
    }

    /// Every token, newest first; revoked ones too when asked.
    pub async fn tokens(&self, include_revoked: bool) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{TOKEN_COLUMNS} WHERE ($1 OR t.revoked_at IS NULL) ORDER BY t.created_at DESC, t.hash"
            )))
            .bind(include_revoked)
            .fetch_all(pool)
            .await
            .ctx("listing tokens")?
        });
        rows.into_iter().map(token_from_row).collect()
    }

    /// Tokens whose hash starts with `prefix` (lowercase hex).
    pub async fn tokens_by_prefix(&self, prefix: &str) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<TokenRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{TOKEN_COLUMNS} WHERE t.hash LIKE $1 ORDER BY t.created_at DESC"
            )))
            .bind(format!("{prefix}%"))
            .fetch_all(pool)
            .await
            .ctx("finding a token")?
        });
        rows.into_iter().map(token_from_row).collect()
    }

    /// Revoke the token with this hash. Revoking a host's token also
    /// forgets the host's enroll key, so the agent holding it cannot
    /// enrol again without an admin. False when it was not active.
    pub async fn revoke_token(&self, hash: &str, now: i64) -> Result<bool, StoreError> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("revoking a token")?;
            let host: Option<Option<i64>> = sqlx::query_scalar(
                "UPDATE tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL RETURNING host_id",
            )
            .bind(now)
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await
            .ctx("revoking a token")?;
            let Some(host_id) = host else {
                return Ok(false);
            };
            if let Some(id) = host_id {
                sqlx::query("UPDATE hosts SET enroll_key_hash = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .ctx("revoking a token")?;
            }
            tx.commit().await.ctx("revoking a token")?;
            Ok(true)
        })
    }

    /// Revoke every token of a host and forget its enroll key; how many
    /// were active.
    pub async fn revoke_host(&self, host_id: i64, now: i64) -> Result<u64, StoreError> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("revoking a host's tokens")?;
            let n = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE host_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(host_id)
                .execute(&mut *tx)
                .await
                .ctx("revoking a host's tokens")?
                .rows_affected();
            sqlx::query("UPDATE hosts SET enroll_key_hash = NULL WHERE id = $1")
                .bind(host_id)
                .execute(&mut *tx)
                .await
                .ctx("revoking a host's tokens")?;
            tx.commit().await.ctx("revoking a host's tokens")?;
            Ok(n)
        })
    }
}
