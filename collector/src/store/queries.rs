//! Queries both databases run with the same SQL: tokens, enrollment, the
//! policy, and everything readers see. See [`dispatch!`](super::dispatch).

use sqlx::QueryBuilder;

use super::types::*;
use super::{Store, dispatch, dispatch_write};

/// Whether event `e` is involved in a chain break, as a column
/// `untrusted`: one lookup in the `chain_breaks (host_id, seq)` index.
pub(crate) const UNTRUSTED: &str = "EXISTS (SELECT 1 FROM chain_breaks b
     WHERE b.host_id = e.host_id AND b.seq = e.seq AND b.uid = e.uid) AS untrusted";

/// The columns of [`HostSummary`] for `hosts h`. The counters are the
/// host's own columns, kept up to date by ingest (`store/ingest.rs`,
/// `UPDATE_HOST`), so a row costs the same whatever the host has stored.
const HOST_COLUMNS: &str =
    "h.id, h.hostname, h.identity_field, h.identity_value, h.serial, h.enrolled_at,
     h.last_seen, h.agent_version, h.mode, h.max_seq, h.event_count,
     h.open_findings, h.gap_count AS gaps, h.missing_events, h.break_count AS chain_breaks";

/// The fleet's totals: a sum over the few rows of `fleet_totals`, which
/// ingest and enrolment keep up to date, so it costs the same in a fleet
/// of any size.
const FLEET_TOTALS: &str = "SELECT CAST(COALESCE(SUM(hosts), 0) AS BIGINT),
            CAST(COALESCE(SUM(attention), 0) AS BIGINT),
            CAST(COALESCE(SUM(open_findings), 0) AS BIGINT),
            CAST(COALESCE(SUM(hosts_with_gaps), 0) AS BIGINT),
            CAST(COALESCE(SUM(missing_events), 0) AS BIGINT),
            CAST(COALESCE(SUM(chain_breaks), 0) AS BIGINT),
            CAST(COALESCE(SUM(events), 0) AS BIGINT)
     FROM fleet_totals";

/// Rows per page when the caller does not say, and at most.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

impl Store {
    /// Is the database answering?
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await.ctx("checking the database")?;
        });
        Ok(())
    }

    pub async fn insert_token(
        &self,
        hash: &str,
        role: Role,
        host_id: Option<i64>,
        note: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch_write!(self, pool => {
            sqlx::query("INSERT INTO tokens (hash, role, host_id, created_at, note) VALUES ($1, $2, $3, $4, $5)")
                .bind(hash)
                .bind(role.as_str())
                .bind(host_id)
                .bind(now)
                .bind(note)
                .execute(pool)
                .await
                .ctx("storing a token")?;
        });
        Ok(())
    }

    pub async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row: Option<(String, Option<i64>, Option<i64>)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT role, host_id, revoked_at FROM tokens WHERE hash = $1")
                .bind(hash)
                .fetch_optional(pool)
                .await
                .ctx("looking up a token")?
        });
        let Some((role, host_id, revoked_at)) = row else {
            return Ok(None);
        };
        let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            what: "looking up a token",
            detail: format!("unknown role {role:?}"),
        })?;
        Ok(Some(TokenRecord {
            role,
            host_id,
            revoked_at,
        }))
    }

    pub async fn host_key(&self, host_id: i64) -> Result<Option<HostKey>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT id, identity_field, identity_value, hostname FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_optional(pool)
                .await
                .ctx("looking up a host")
        })
    }

    /// Every host, by name. For the admin CLI's listing; readers page
    /// with [`Store::host_page`].
    pub async fn hosts(&self) -> Result<Vec<HostSummary>, StoreError> {
        Ok(self
            .host_page(&HostFilter {
                limit: u32::MAX,
                ..HostFilter::default()
            })
            .await?
            .hosts)
    }

    /// One host with its counters.
    pub async fn host(&self, id: i64) -> Result<Option<HostSummary>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {HOST_COLUMNS} FROM hosts h WHERE h.id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
            .ctx("reading a host")
        })
    }

    /// A page of hosts by name. Each host's counters are columns of its
    /// row, so a page costs the same in a fleet of any size; `attention`
    /// walks the partial index of hosts whose `attention` flag is set
    /// (open findings, gaps or chain breaks), by name.
    pub async fn host_page(&self, filter: &HostFilter) -> Result<HostPage, StoreError> {
        let limit = filter.limit.max(1);
        dispatch!(self, pool => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT {HOST_COLUMNS} FROM hosts h WHERE 1 = 1"
            ));
            if filter.attention {
                qb.push(" AND h.attention");
            }
            if let Some(mode) = &filter.mode {
                qb.push(" AND h.mode = ").push_bind(mode.clone());
            }
            if let Some(t) = filter.seen_before {
                qb.push(" AND h.last_seen < ").push_bind(t);
            }
            if let Some(t) = filter.seen_since {
                qb.push(" AND h.last_seen >= ").push_bind(t);
            }
            if let Some(prefix) = &filter.name_prefix {
                // Not LIKE: a hostname may hold `%` and `_`, and both
                // databases compare substrings the same way.
                qb.push(" AND substr(h.hostname, 1, length(")
                    .push_bind(prefix.clone())
                    .push(")) = ")
                    .push_bind(prefix.clone());
            }
            if let Some(c) = &filter.cursor {
                // A row comparison, not `hostname > ? OR (hostname = ? AND
                // id > ?)`: both databases seek the (hostname, id) index to
                // it, where PostgreSQL walks the OR from the index's start,
                // so a deep page would cost in proportion to its depth.
                qb.push(" AND (h.hostname, h.id) > (")
                    .push_bind(c.hostname.clone())
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            qb.push(" ORDER BY h.hostname, h.id LIMIT ")
                .push_bind(i64::from(limit) + 1);
            let mut hosts: Vec<HostSummary> = qb
                .build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing hosts")?;
            let more = hosts.len() > limit as usize;
            hosts.truncate(limit as usize);
            let next = if more {
                hosts.last().map(|h| HostCursor { hostname: h.hostname.clone(), id: h.id })
            } else {
                None
            };
            Ok(HostPage { hosts, next })
        })
    }

    /// The fleet page's counts, from the maintained totals.
    pub async fn fleet_counts(&self) -> Result<FleetCounts, StoreError> {
        Ok(self.fleet_totals().await?.0)
    }

    /// The fleet's counts and its stored events, from `fleet_totals`.
    async fn fleet_totals(&self) -> Result<(FleetCounts, i64), StoreError> {
        let (
            hosts,
            attention,
            open_findings,
            hosts_with_gaps,
            missing_events,
            chain_breaks,
            events,
        ): (i64, i64, i64, i64, i64, i64, i64) = dispatch!(self, pool => {
            sqlx::query_as(FLEET_TOTALS)
                .fetch_one(pool)
                .await
                .ctx("counting the fleet")?
        });
        Ok((
            FleetCounts {
                hosts,
                attention,
                open_findings,
                hosts_with_gaps,
                missing_events,
                chain_breaks,
            },
            events,
        ))
    }

    /// A page of events, newest first by event time. All filter values
    /// are bound parameters.
    pub async fn events(&self, filter: &EventFilter) -> Result<EventPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        // Resolve `host` to ids first: `host_id = ?` lets the (host_id,
        // time, id) index hand rows over already in order, where an IN
        // over a subquery would make the database sort every match.
        let mut host_ids: Option<Vec<i64>> = filter.host_id.map(|id| vec![id]);
        if let Some(host) = &filter.host {
            let ids: Vec<i64> = dispatch!(self, pool => {
                sqlx::query_scalar(
                    "SELECT id FROM hosts WHERE hostname = $1 OR identity_value = $1 OR serial = $1 ORDER BY id",
                )
                .bind(host)
                .fetch_all(pool)
                .await
                .ctx("finding a host")?
            });
            host_ids = Some(match host_ids {
                Some(given) => ids.into_iter().filter(|id| given.contains(id)).collect(),
                None => ids,
            });
        }
        if host_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        }
        // An IN over several kinds (the Remediations page: both step
        // kinds; the Camera page: both camera kinds) would make the
        // database read every match to sort them: ask for each value on
        // its own, each a walk of its (kind, time, id) index that stops
        // after a page, and merge.
        let mut parts: Vec<EventFilter> = vec![filter.clone()];
        if filter.kinds.len() > 1 {
            parts = filter
                .kinds
                .iter()
                .map(|k| EventFilter {
                    kinds: vec![*k],
                    ..filter.clone()
                })
                .collect();
        }
        if filter.finding_kinds.len() > 1 {
            parts = parts
                .iter()
                .flat_map(|p| {
                    filter.finding_kinds.iter().map(move |fk| EventFilter {
                        finding_kinds: vec![*fk],
                        ..p.clone()
                    })
                })
                .collect();
        }
        let mut events: Vec<StoredEvent> = Vec::new();
        for part in &parts {
            events.extend(self.event_rows(part, host_ids.as_deref(), limit).await?);
        }
        if parts.len() > 1 {
            events.sort_by_key(|e| std::cmp::Reverse((e.time, e.id)));
            events.dedup_by_key(|e| e.id);
        }
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next = if more {
            events.last().map(|e| Cursor {
                time: e.time,
                id: e.id,
            })
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// Up to `limit + 1` events matching `filter` (with `host` already
    /// resolved to `host_ids`), newest first.
    async fn event_rows(
        &self,
        filter: &EventFilter,
        host_ids: Option<&[i64]>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, pool => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT e.id, e.host_id, h.hostname, e.seq, e.time, e.received_at, e.kind, e.finding_kind, e.verdict, e.rule, e.body, {UNTRUSTED}
                 FROM events e JOIN hosts h ON h.id = e.host_id WHERE 1 = 1"
            ));
            match host_ids {
                Some([id]) => {
                    qb.push(" AND e.host_id = ").push_bind(*id);
                }
                Some(ids) => {
                    qb.push(" AND e.host_id IN (");
                    let mut sep = qb.separated(", ");
                    for id in ids {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                }
                None => {}
            }
            // Only detection findings carry a verdict, a rule or a
            // finding kind (ingest sets them for nothing else), so with
            // one of those the kind test is either always true or always
            // false. Left in, PostgreSQL with statistics older than a bulk
            // load ANDed the kind and verdict indexes and sorted every
            // match (0.7 s for the fleet page at 640,000 events); left
            // out, the (verdict, time, id) index hands a page over in
            // order whatever the statistics say.
            let finding_only = filter.verdict.is_some()
                || filter.rule.is_some()
                || !filter.finding_kinds.is_empty();
            if finding_only && !filter.kinds.is_empty() {
                if !filter.kinds.contains(&lenscap_events::Kind::DetectionFinding) {
                    return Ok(Vec::new());
                }
            } else if !filter.kinds.is_empty() {
                qb.push(" AND e.kind IN (");
                let mut sep = qb.separated(", ");
                for k in &filter.kinds {
                    sep.push_bind(k.as_str());
                }
                qb.push(")");
            }
            if !filter.finding_kinds.is_empty() {
                qb.push(" AND e.finding_kind IN (");
                let mut sep = qb.separated(", ");
                for k in &filter.finding_kinds {
                    sep.push_bind(finding_kind_str(*k));
                }
                qb.push(")");
            }
            if let Some(v) = filter.verdict {
                qb.push(" AND e.verdict = ").push_bind(v.as_str());
            }
            if let Some(rule) = &filter.rule {
                qb.push(" AND e.rule = ").push_bind(rule.clone());
            }
            if let Some(since) = filter.since {
                qb.push(" AND e.time >= ").push_bind(since);
            }
            if let Some(until) = filter.until {
                qb.push(" AND e.time < ").push_bind(until);
            }
            if let Some(c) = filter.cursor {
                qb.push(" AND (e.time, e.id) < (")
                    .push_bind(c.time)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            qb.push(" ORDER BY e.time DESC, e.id DESC LIMIT ")
                .push_bind(i64::from(limit) + 1);
            let events: Vec<StoredEvent> = qb
                .build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing events")?;
            Ok(events)
        })
    }

    /// Open sequence gaps, newest first; one host's or everyone's.
    pub async fn gaps(&self, host_id: Option<i64>) -> Result<Vec<GapRecord>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT g.host_id, h.hostname, g.first_seq, g.last_seq, g.detected_at
                 FROM gaps g JOIN hosts h ON h.id = g.host_id
                 WHERE ($1 IS NULL OR g.host_id = $1)
                 ORDER BY g.detected_at DESC, g.host_id, g.first_seq LIMIT 1000",
            )
            .bind(host_id)
            .fetch_all(pool)
            .await
            .ctx("listing gaps")
        })
    }

    pub async fn chain_breaks(&self, host_id: Option<i64>) -> Result<Vec<BreakRecord>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT b.host_id, h.hostname, b.seq, b.kind, b.uid, b.expected, b.actual, b.detected_at
                 FROM chain_breaks b JOIN hosts h ON h.id = b.host_id
                 WHERE ($1 IS NULL OR b.host_id = $1)
                 ORDER BY b.detected_at DESC, b.id DESC LIMIT 1000",
            )
            .bind(host_id)
            .fetch_all(pool)
            .await
            .ctx("listing chain breaks")
        })
    }

    /// Findings grouped by deciding rule, most findings first.
    pub async fn rules(&self) -> Result<Vec<RuleSummary>, StoreError> {
        let rows: Vec<(Option<String>, i64, i64, i64, i64)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT rule, COUNT(*) AS findings,
                        CAST(COALESCE(SUM(CASE WHEN is_open THEN 1 ELSE 0 END), 0) AS BIGINT) AS open,
                        COUNT(DISTINCT host_id) AS hosts,
                        CAST(MAX(CASE severity WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3
                                               WHEN 'low' THEN 2 ELSE 1 END) AS BIGINT) AS worst
                 FROM findings WHERE verdict <> 'allow'
                 GROUP BY rule ORDER BY findings DESC, rule LIMIT 1000",
            )
            .fetch_all(pool)
            .await
            .ctx("summarising findings by rule")?
        });
        Ok(rows
            .into_iter()
            .map(|(rule, findings, open, hosts, worst)| RuleSummary {
                rule,
                findings,
                open,
                hosts,
                worst_severity: match worst {
                    5 => "critical",
                    4 => "high",
                    3 => "medium",
                    2 => "low",
                    _ => "info",
                }
                .to_string(),
            })
            .collect())
    }

    /// (hosts, stored events), cheaply: for /metrics.
    pub async fn totals(&self) -> Result<(i64, i64), StoreError> {
        let (counts, events) = self.fleet_totals().await?;
        Ok((counts.hosts, events))
    }

    pub async fn policy(&self) -> Result<Option<PolicyRecord>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT body, etag, updated_at FROM policy WHERE id = 1")
                .fetch_optional(pool)
                .await
                .ctx("reading the policy")
        })
    }

    /// Store a new policy. With `if_match`, only when the stored policy's
    /// ETag is that one (or there is none and `if_match` is the ETag of
    /// the empty policy); returns false when that precondition failed.
    pub async fn put_policy(
        &self,
        body: &str,
        etag: &str,
        if_match: Option<&str>,
        empty_etag: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("storing the policy")?;
            let current: Option<String> = sqlx::query_scalar("SELECT etag FROM policy WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await
                .ctx("storing the policy")?;
            if let Some(want) = if_match {
                let have = current.as_deref().unwrap_or(empty_etag);
                if want != have && want != "*" {
                    return Ok(false);
                }
            }
            // The conditional UPDATE makes two writers racing on one
            // PostgreSQL lose cleanly rather than overwrite each other.
            let changed = match &current {
                Some(old) => sqlx::query("UPDATE policy SET body = $1, etag = $2, updated_at = $3 WHERE id = 1 AND etag = $4")
                    .bind(body)
                    .bind(etag)
                    .bind(now)
                    .bind(old)
                    .execute(&mut *tx)
                    .await
                    .ctx("storing the policy")?
                    .rows_affected(),
                None => sqlx::query("INSERT INTO policy (id, body, etag, updated_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING")
                    .bind(body)
                    .bind(etag)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .ctx("storing the policy")?
                    .rows_affected(),
            };
            if changed == 0 {
                return Ok(false);
            }
            tx.commit().await.ctx("storing the policy")?;
            Ok(true)
        })
    }
}
