-- The finding's own kind (listener, persistence, camera_grant,
-- camera_use) beside the event kind, so readers can filter on it without
-- reading bodies. NULL for events that are not detection findings.
-- postgres/0002_finding_kind.sql is the same change in PostgreSQL's
-- dialect: keep the two in step.

ALTER TABLE events ADD COLUMN finding_kind TEXT;
-- Backfill from the stored bodies, checked at ingest; only known kinds are
-- copied, so the column never holds a value the API cannot name.
UPDATE events SET finding_kind = json_extract(body, '$.payload.finding.kind')
    WHERE kind = 'detection_finding'
    AND json_extract(body, '$.payload.finding.kind') IN ('listener', 'persistence', 'camera_grant', 'camera_use');
CREATE INDEX events_finding_kind_time ON events (finding_kind, time, id) WHERE finding_kind IS NOT NULL;
