-- Incidents (collector/src/incidents.rs): a host's events grouped by the
-- program they are about. Derived from events only, so it can be emptied
-- and rebuilt; this migration queues every stored event that can belong
-- to one, and the collector groups them once it runs.
-- postgres/0004_incidents.sql is the same change in PostgreSQL's
-- dialect: keep the two in step.

CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY,
    host_id       BIGINT  NOT NULL REFERENCES hosts (id),
    title         TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    severity      TEXT    NOT NULL,
    severity_rank BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    what          TEXT,
    rule          TEXT,
    first_time    BIGINT  NOT NULL,
    last_time     BIGINT  NOT NULL,
    findings      BIGINT  NOT NULL,
    open_findings BIGINT  NOT NULL,
    steps_done    BIGINT  NOT NULL,
    steps_failed  BIGINT  NOT NULL,
    steps_would   BIGINT  NOT NULL,
    restores      BIGINT  NOT NULL,
    quarantined   BIGINT  NOT NULL,
    event_count   BIGINT  NOT NULL
);
CREATE INDEX incidents_time      ON incidents (last_time, id);
CREATE INDEX incidents_host_time ON incidents (host_id, last_time, id);
CREATE INDEX incidents_state     ON incidents (state, last_time, id);

-- Which events an incident holds.
CREATE TABLE incident_events (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    event_id    BIGINT NOT NULL REFERENCES events (id),
    PRIMARY KEY (incident_id, event_id)
);
CREATE UNIQUE INDEX incident_events_event ON incident_events (event_id);

-- The keys events find their incident by (finding uid, subject, path,
-- listener, plan), per host; is_open for finding keys.
CREATE TABLE incident_keys (
    host_id     BIGINT  NOT NULL REFERENCES hosts (id),
    key         TEXT    NOT NULL,
    incident_id BIGINT  NOT NULL REFERENCES incidents (id),
    is_open     BOOLEAN,
    PRIMARY KEY (host_id, key)
);

-- Events waiting to be grouped, queued in ingest's transaction.
CREATE TABLE incident_pending (
    event_id BIGINT NOT NULL PRIMARY KEY
);
INSERT INTO incident_pending (event_id)
    SELECT id FROM events WHERE kind <> 'agent_health';

-- One row whose update serialises groupers (several collectors may share
-- one PostgreSQL).
CREATE TABLE incident_lock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    turns BIGINT  NOT NULL
);
INSERT INTO incident_lock (id, turns) VALUES (1, 0);

-- Hosts that need attention, found without reading the fleet.
CREATE INDEX findings_open_host ON findings (host_id) WHERE is_open;
CREATE INDEX gaps_host ON gaps (host_id);
CREATE INDEX hosts_name ON hosts (hostname, id);
