-- lenscap collector schema, SQLite dialect. postgres/0001_init.sql is the
-- same schema in PostgreSQL's dialect: keep the two in step (a test
-- compares their tables and columns).

CREATE TABLE hosts (
    id             INTEGER PRIMARY KEY,
    identity_field TEXT    NOT NULL,
    identity_value TEXT    NOT NULL,
    hostname       TEXT    NOT NULL,
    hardware_uuid  TEXT,
    serial         TEXT,
    machine_id     TEXT,
    enrolled_at    BIGINT  NOT NULL,
    last_seen      BIGINT,
    agent_version  TEXT,
    mode           TEXT,
    max_seq        BIGINT  NOT NULL DEFAULT 0,
    last_hash      TEXT,
    event_count    BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (identity_field, identity_value)
);

CREATE TABLE tokens (
    hash       TEXT   PRIMARY KEY,
    role       TEXT   NOT NULL CHECK (role IN ('enroll', 'reader', 'admin', 'host')),
    host_id    BIGINT REFERENCES hosts (id),
    created_at BIGINT NOT NULL,
    note       TEXT
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    uid         TEXT   NOT NULL,
    host_id     BIGINT NOT NULL REFERENCES hosts (id),
    seq         BIGINT NOT NULL,
    time        BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    verdict     TEXT,
    rule        TEXT,
    severity    TEXT,
    hash        TEXT   NOT NULL,
    prev_hash   TEXT   NOT NULL,
    body        TEXT   NOT NULL
);
CREATE INDEX events_time         ON events (time, id);
CREATE INDEX events_host_time    ON events (host_id, time, id);
-- An event is identified by its uid, and a uid belongs to one host and one
-- seq: keying uniqueness by (host, seq, uid) gives idempotence on uid with
-- keys that grow in order, where an index of random UUIDs alone would touch
-- a random page for every insert.
CREATE UNIQUE INDEX events_host_seq_uid ON events (host_id, seq, uid);
CREATE INDEX events_kind_time    ON events (kind, time, id);
CREATE INDEX events_verdict_time ON events (verdict, time, id) WHERE verdict IS NOT NULL;
CREATE INDEX events_rule_time    ON events (rule, time, id) WHERE rule IS NOT NULL;

CREATE TABLE gaps (
    host_id     BIGINT NOT NULL REFERENCES hosts (id),
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    detected_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, first_seq)
);

CREATE TABLE chain_breaks (
    id          INTEGER PRIMARY KEY,
    host_id     BIGINT NOT NULL REFERENCES hosts (id),
    seq         BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    uid         TEXT   NOT NULL,
    expected    TEXT,
    actual      TEXT,
    detected_at BIGINT NOT NULL
);
CREATE INDEX chain_breaks_host ON chain_breaks (host_id, seq);

CREATE TABLE findings (
    host_id     BIGINT  NOT NULL REFERENCES hosts (id),
    finding_uid TEXT    NOT NULL,
    last_seq    BIGINT  NOT NULL,
    is_open     BOOLEAN NOT NULL,
    verdict     TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    rule        TEXT,
    title       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (host_id, finding_uid)
);
CREATE INDEX findings_rule ON findings (rule);

CREATE TABLE policy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    body       TEXT   NOT NULL,
    etag       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
