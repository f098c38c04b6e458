-- Re-enrolment needs an admin, tokens can be revoked.
-- postgres/0003_enroll_approval.sql is the same change in PostgreSQL's
-- dialect: keep the two in step.

-- A revoked token stays listed (who had what, until when) but no longer
-- authenticates.
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
CREATE INDEX tokens_host ON tokens (host_id);
-- SHA-256 of the enroll key the installation holding the host's current
-- token sent. The same key may enrol again without an admin (it is the
-- same installation); any other enrolment of the identity is held.
-- Revoking a host's token clears it.
ALTER TABLE hosts ADD COLUMN enroll_key_hash TEXT;

-- Enrolments of an identity that already exists, waiting for (or decided
-- by) an admin: one row per host and enroll key ('' for agents that send
-- none).
CREATE TABLE enroll_requests (
    id              INTEGER PRIMARY KEY,
    host_id         BIGINT NOT NULL REFERENCES hosts (id),
    key_hash        TEXT   NOT NULL,
    state           TEXT   NOT NULL CHECK (state IN ('held', 'approved', 'refused', 'issued')),
    hostname        TEXT   NOT NULL,
    hardware_uuid   TEXT,
    serial          TEXT,
    machine_id      TEXT,
    agent_version   TEXT,
    peer            TEXT,
    requested_at    BIGINT NOT NULL,
    last_attempt_at BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 1,
    decided_at      BIGINT,
    UNIQUE (host_id, key_hash)
);
