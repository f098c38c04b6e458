-- One incident's page of events without reading all of them (issue 13):
-- the seq beside each membership, indexed with it, so a page is a walk of
-- (incident_id, seq, event_id). postgres/0009_incident_event_order.sql
-- says why; this is the same change.

ALTER TABLE incident_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE incident_events SET seq = (SELECT e.seq FROM events e WHERE e.id = incident_events.event_id);
CREATE INDEX incident_events_order ON incident_events (incident_id, seq, event_id);
