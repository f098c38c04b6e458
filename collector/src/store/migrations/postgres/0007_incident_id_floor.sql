-- Incident ids are never reused (collector/src/store/incidents.rs,
-- INSERT_INCIDENT_SQLITE). SQLite gives a new row the largest id in the
-- table plus one, so after `incidents rebuild` (or 0006's rebuild) emptied
-- the table, new incidents took the ids of old ones, and an alert already
-- queued for an old incident's (destination, id, state) kept the new
-- incident's alert from being queued. id_floor is the largest id any
-- incident or alert has used; SQLite's inserts start above it. PostgreSQL's
-- identity never reuses an id, but keeps the column so the two schemas stay
-- in step. sqlite/0007_incident_id_floor.sql is the same change.

ALTER TABLE incident_lock ADD COLUMN id_floor BIGINT NOT NULL DEFAULT 0;
UPDATE incident_lock
   SET id_floor = GREATEST((SELECT COALESCE(MAX(id), 0) FROM incidents),
                      (SELECT COALESCE(MAX(incident_id), 0) FROM alert_queue))
 WHERE id = 1;
