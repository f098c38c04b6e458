-- Alerts (collector/src/alerts.rs): where incidents are told, and a
-- durable queue of what is still to be told, so a restart or a receiver
-- that is down loses nothing.
-- postgres/0005_alerts.sql is the same change in PostgreSQL's
-- dialect: keep the two in step.

-- Destinations, managed with `lenscap-collector alert add|list|test|remove`.
-- kind is `webhook` (url, secret signs the body) or `syslog` (url is
-- tcp://host:port). An incident alerts a destination when its severity
-- rank is at least min_rank, its state is in states (comma-separated;
-- empty: every state), and, when set, its rule is rule and its Mac's
-- hostname is host.
CREATE TABLE alert_destinations (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    secret     TEXT,
    min_rank   BIGINT  NOT NULL,
    states     TEXT    NOT NULL,
    rule       TEXT,
    host       TEXT,
    created_at BIGINT  NOT NULL
);

-- One row per (destination, incident, state): an incident's state change
-- alerts each destination once, however many events it took. status is
-- pending, sent or dead (gave up after the last attempt). The body is
-- fixed when queued, so it says what the incident was at that change.
CREATE TABLE alert_queue (
    id             INTEGER PRIMARY KEY,
    destination_id BIGINT  NOT NULL REFERENCES alert_destinations (id) ON DELETE CASCADE,
    incident_id    BIGINT  NOT NULL,
    state          TEXT    NOT NULL,
    event_id       BIGINT  NOT NULL,
    body           TEXT    NOT NULL,
    queued_at      BIGINT  NOT NULL,
    status         TEXT    NOT NULL,
    attempts       BIGINT  NOT NULL,
    next_attempt   BIGINT  NOT NULL,
    last_error     TEXT,
    sent_at        BIGINT
);
CREATE UNIQUE INDEX alert_queue_once ON alert_queue (destination_id, incident_id, state);
CREATE INDEX alert_queue_due ON alert_queue (status, next_attempt, id);

-- Events up to quiet_through never alert: those stored before alerting
-- existed, and those regrouped by `incidents rebuild` (which moves it up),
-- were told, or not, once already.
CREATE TABLE alert_quiet (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    quiet_through BIGINT  NOT NULL
);
INSERT INTO alert_quiet (id, quiet_through) SELECT 1, COALESCE(MAX(id), 0) FROM events;
