-- Alert filters by verdict and finding kind, and syslog over TLS
-- (collector/src/alerts.rs); incidents say their strongest verdict and
-- the kinds of their findings, which those filters match.
-- sqlite/0006_alert_filters.sql is the same change in SQLite's
-- dialect: keep the two in step.

ALTER TABLE incidents ADD COLUMN verdict TEXT;
ALTER TABLE incidents ADD COLUMN kinds TEXT NOT NULL DEFAULT '';

-- Comma-separated lists; NULL: any.
ALTER TABLE alert_destinations ADD COLUMN verdict TEXT;
ALTER TABLE alert_destinations ADD COLUMN finding_kind TEXT;
-- PEM certificates a tls:// syslog receiver must chain to (instead of
-- the public web roots), read from a file by `alert add --ca`.
ALTER TABLE alert_destinations ADD COLUMN ca_pem TEXT;

-- Incidents are derived from events: derive them again, so those already
-- stored get their verdict and kinds, and camera sessions and grants tied
-- to a helper join its incident. As `incidents rebuild` does, regrouped
-- events do not alert again.
DELETE FROM incident_keys;
DELETE FROM incident_events;
DELETE FROM incidents;
DELETE FROM incident_pending;
INSERT INTO incident_pending (event_id) SELECT id FROM events WHERE kind <> 'agent_health';
UPDATE alert_quiet SET quiet_through = (SELECT COALESCE(MAX(id), 0) FROM events) WHERE id = 1;

-- Findings of one kind and verdict, newest first (the Camera page's
-- incidents: reported or remediated camera sessions), found without
-- walking every finding of that verdict.
CREATE INDEX events_finding_kind_verdict_time ON events (finding_kind, verdict, time, id)
    WHERE finding_kind IS NOT NULL;
