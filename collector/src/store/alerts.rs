//! The alert tables: destinations, and the durable queue the sender
//! (`crate::alerts`) works through.
//!
//! Alerts are queued by the grouper (`store/incidents.rs`) in the
//! transaction that changes an incident, so an incident change and its
//! alerts commit together or not at all. The sender takes due rows with
//! an optimistic claim (moving `next_attempt` forward only if nobody else
//! did), so collectors sharing one PostgreSQL send each alert once; a
//! collector that dies mid-send leaves the claim to expire and the alert
//! is sent again later (at least once, never lost).

use super::types::*;
use super::{Store, dispatch, dispatch_write};

/// The columns of [`AlertDestination`].
pub(super) const DESTINATION_COLUMNS: &str =
    "id, name, kind, url, secret, min_rank, states, rule, host,
     verdict, finding_kind, ca_pem, created_at";

const ALERT_COLUMNS: &str =
    "q.id, q.destination_id, d.name AS destination, q.incident_id, q.state, q.event_id,
     q.body, q.queued_at, q.status, q.attempts, q.next_attempt, q.last_error, q.sent_at";

impl Store {
    /// Add a destination (its `id` is ignored); its id. `None` when the
    /// name is taken.
    pub async fn add_alert_destination(
        &self,
        d: &AlertDestination,
    ) -> Result<Option<i64>, StoreError> {
        dispatch_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO alert_destinations (name, kind, url, secret, min_rank, states, rule, host,
                   verdict, finding_kind, ca_pem, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(&d.name)
            .bind(&d.kind)
            .bind(&d.url)
            .bind(&d.secret)
            .bind(d.min_rank)
            .bind(&d.states)
            .bind(&d.rule)
            .bind(&d.host)
            .bind(&d.verdict)
            .bind(&d.finding_kind)
            .bind(&d.ca_pem)
            .bind(d.created_at)
            .fetch_optional(pool)
            .await
            .ctx("adding an alert destination")
        })
    }

    pub async fn alert_destinations(&self) -> Result<Vec<AlertDestination>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DESTINATION_COLUMNS} FROM alert_destinations ORDER BY name"
            )))
            .fetch_all(pool)
            .await
            .ctx("listing alert destinations")
        })
    }

    /// Remove a destination and its queued alerts. Whether it existed.
    pub async fn remove_alert_destination(&self, name: &str) -> Result<bool, StoreError> {
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("removing an alert destination")?;
            sqlx::query(
                "DELETE FROM alert_queue WHERE destination_id IN
                   (SELECT id FROM alert_destinations WHERE name = $1)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await
            .ctx("removing an alert destination")?;
            let gone = sqlx::query("DELETE FROM alert_destinations WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .ctx("removing an alert destination")?
                .rows_affected();
            tx.commit().await.ctx("removing an alert destination")?;
            Ok(gone > 0)
        })
    }

    /// Pending alerts whose time has come, oldest first.
    pub async fn due_alerts(&self, now: i64, max: i64) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ALERT_COLUMNS} FROM alert_queue q JOIN alert_destinations d ON d.id = q.destination_id
                 WHERE q.status = 'pending' AND q.next_attempt <= $1 ORDER BY q.next_attempt, q.id LIMIT $2"
            )))
            .bind(now)
            .bind(max)
            .fetch_all(pool)
            .await
            .ctx("reading due alerts")
        })
    }

    /// Take alerts for sending until `until`, each only if nobody took it
    /// since it was read (its `next_attempt` is still the `seen` given
    /// with it). One transaction for the round, so SQLite's writer (which
    /// ingest shares) commits once, not once per alert. The ids taken.
    pub async fn claim_alerts(
        &self,
        alerts: &[(i64, i64)],
        until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("claiming alerts")?;
            let mut taken = Vec::new();
            for (id, seen) in alerts {
                let n = sqlx::query(
                    "UPDATE alert_queue SET next_attempt = $3
                     WHERE id = $1 AND next_attempt = $2 AND status = 'pending'",
                )
                .bind(id)
                .bind(seen)
                .bind(until)
                .execute(&mut *tx)
                .await
                .ctx("claiming an alert")?
                .rows_affected();
                if n == 1 {
                    taken.push(*id);
                }
            }
            tx.commit().await.ctx("claiming alerts")?;
            Ok(taken)
        })
    }

    /// Record a round's deliveries in one transaction: sent, or failed and
    /// due again at `next_attempt` (or `dead`).
    pub async fn record_deliveries(&self, outcomes: &[Delivery]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("recording deliveries")?;
            for d in outcomes {
                match &d.error {
                    None => sqlx::query(
                        "UPDATE alert_queue SET status = 'sent', attempts = $2, sent_at = $3, last_error = NULL
                         WHERE id = $1",
                    )
                    .bind(d.id)
                    .bind(d.attempts)
                    .bind(d.at)
                    .execute(&mut *tx)
                    .await
                    .ctx("marking an alert sent")?,
                    Some(error) => sqlx::query(
                        "UPDATE alert_queue SET status = $2, attempts = $3, next_attempt = $4, last_error = $5
                         WHERE id = $1",
                    )
                    .bind(d.id)
                    .bind(if d.dead { "dead" } else { "pending" })
                    .bind(d.attempts)
                    .bind(d.next_attempt)
                    .bind(error)
                    .execute(&mut *tx)
                    .await
                    .ctx("recording a failed alert")?,
                };
            }
            tx.commit().await.ctx("recording deliveries")?;
        });
        Ok(())
    }

    /// Alerts, newest first; only those with `status` if given.
    pub async fn alerts(
        &self,
        status: Option<&str>,
        max: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ALERT_COLUMNS} FROM alert_queue q JOIN alert_destinations d ON d.id = q.destination_id
                 WHERE ($1 IS NULL OR q.status = $1) ORDER BY q.id DESC LIMIT $2"
            )))
            .bind(status)
            .bind(max)
            .fetch_all(pool)
            .await
            .ctx("listing alerts")
        })
    }

    /// Put dead alerts back in the queue, to be tried again now.
    pub async fn retry_dead_alerts(&self, now: i64) -> Result<u64, StoreError> {
        dispatch_write!(self, pool => {
            Ok(sqlx::query(
                "UPDATE alert_queue SET status = 'pending', attempts = 0, next_attempt = $1
                 WHERE status = 'dead'",
            )
            .bind(now)
            .execute(pool)
            .await
            .ctx("retrying dead alerts")?
            .rows_affected())
        })
    }

    pub async fn alert_counts(&self) -> Result<AlertCounts, StoreError> {
        dispatch!(self, pool => {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM alert_queue GROUP BY status")
                    .fetch_all(pool)
                    .await
                    .ctx("counting alerts")?;
            let mut c = AlertCounts::default();
            for (status, n) in rows {
                match status.as_str() {
                    "pending" => c.pending = n,
                    "sent" => c.sent = n,
                    "dead" => c.dead = n,
                    _ => {}
                }
            }
            Ok(c)
        })
    }
}
