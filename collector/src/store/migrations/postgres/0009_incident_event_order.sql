-- One incident's page of events without reading all of them (issue 13).
-- An incident of a helper that keeps coming back holds thousands of
-- events; its page (`GET /api/v1/incidents/{id}`, 100 in the host's seq
-- order) joined every membership with its event and sorted them, which on
-- PostgreSQL cost 50–85 ms p95 at 2,000,000 events. With the seq kept
-- beside the membership, a page is a walk of (incident_id, seq, event_id)
-- that stops after the page, and only those events are read. The grouper
-- (store/incidents.rs) writes the seq with each membership.
-- sqlite/0009_incident_event_order.sql is the same change.

ALTER TABLE incident_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE incident_events ie SET seq = e.seq FROM events e WHERE e.id = ie.event_id;
CREATE INDEX incident_events_order ON incident_events (incident_id, seq, event_id);
